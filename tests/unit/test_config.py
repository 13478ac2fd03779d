"""Environment settings: one mapping table, bad values refused, secrets masked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.config import MIN_TOKEN_LENGTH, TOKEN_GROUPS, Secret, SettingsError, check_exposure, load_settings


def test_defaults_match_the_documented_ones():
    settings = load_settings({})
    assert (settings.database_url, settings.rules_path, settings.token_api) == (
        "sqlite:///bridge.db",
        "rules.yaml",
        None,
    )


def test_environment_values_are_parsed():
    settings = load_settings({"BRIDGE_HTTP_WORKERS": "4", "BRIDGE_RUN_WORKER": "no", "BRIDGE_TOKEN_API": "t0k"})
    assert (settings.http_workers, settings.run_worker, settings.token_api) == (4, False, Secret("t0k"))


@pytest.mark.parametrize(
    "variable, value",
    [
        ("BRIDGE_HTTP_WORKERS", "many"),
        ("BRIDGE_HTTP_WORKERS", "0"),
        ("BRIDGE_RUN_WORKER", "maybe"),
        ("BRIDGE_MAX_BODY_BYTES", "-5"),
        ("BRIDGE_TOKEN_API", ""),
        ("BRIDGE_TOKEN_ZABBIX", "  "),
        ("BRIDGE_TOKEN_ALERTMANAGER", ""),
        ("BRIDGE_TOKEN_RELEASE", ""),
        ("BRIDGE_MAX_BODY_BYTES", "-5"),
        ("BRIDGE_RETENTION", "0d"),
        ("BRIDGE_RETENTION", "a month"),
        ("BRIDGE_MAINTENANCE_MAX", "0s"),
        ("BRIDGE_TOKEN_HEARTBEATS", ""),
        ("BRIDGE_LOG_FORMAT", "xml"),
        ("BRIDGE_LOG_LEVEL", "chatty"),
    ],
)
def test_bad_values_are_errors_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


def test_retention_takes_the_rules_duration_syntax():
    assert load_settings({}).retention == timedelta(days=30)
    assert load_settings({"BRIDGE_RETENTION": "1d12h"}).retention == timedelta(days=1, hours=12)


def test_secrets_never_show_in_repr_or_str():
    settings = load_settings({"BRIDGE_TOKEN_ZABBIX": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.token("zabbix"))


# Each its own, each long enough for a network address (check_token_strength).
ALL_TOKENS = {
    "BRIDGE_TOKEN_ALERTMANAGER": "alertmanager-token-0001",
    "BRIDGE_TOKEN_ZABBIX": "zabbix-token-0000000002",
    "BRIDGE_TOKEN_GRAFANA": "grafana-token-000000003",
    "BRIDGE_TOKEN_RELEASE": "release-token-000000004",
    "BRIDGE_TOKEN_TICKETS": "tickets-token-000000005",
    "BRIDGE_TOKEN_HEARTBEATS": "heartbeats-token-000006",
    "BRIDGE_TOKEN_API": "read-api-token-00000007",
    "BRIDGE_TOKEN_OPERATE": "operate-token-000000008",
}


@pytest.mark.parametrize("unset", sorted(ALL_TOKENS))
def test_network_bind_with_one_token_unset_is_refused_naming_it(unset):
    tokens = {name: value for name, value in ALL_TOKENS.items() if name != unset}
    with pytest.raises(SettingsError) as refused:
        check_exposure(load_settings({"BRIDGE_BIND": "0.0.0.0:8080", **tokens}))
    assert f"without {unset}:" in str(refused.value)


def test_every_token_group_is_in_the_test_table():
    assert set(ALL_TOKENS) == set(TOKEN_GROUPS.values())


def test_network_bind_with_no_token_names_them_all():
    with pytest.raises(SettingsError) as refused:
        check_exposure(load_settings({"BRIDGE_BIND": "10.1.2.3:8080"}))
    assert (
        "without BRIDGE_TOKEN_ALERTMANAGER, BRIDGE_TOKEN_ZABBIX, BRIDGE_TOKEN_GRAFANA, BRIDGE_TOKEN_RELEASE, "
        "BRIDGE_TOKEN_TICKETS, BRIDGE_TOKEN_HEARTBEATS, BRIDGE_TOKEN_API, BRIDGE_TOKEN_OPERATE:" in str(refused.value)
    )


def test_network_bind_with_every_token_or_anonymous_allowed_starts():
    check_exposure(load_settings({"BRIDGE_BIND": "0.0.0.0:8080", **ALL_TOKENS}))
    check_exposure(
        load_settings(
            {"BRIDGE_BIND": "0.0.0.0:8080", "BRIDGE_ALLOW_ANONYMOUS": "1", "BRIDGE_TOKEN_API": "p" * MIN_TOKEN_LENGTH}
        )
    )


@pytest.mark.parametrize("anonymous", ["0", "1"])
def test_a_short_token_on_a_network_bind_is_refused_naming_its_variable_not_its_value(anonymous):
    short = "s3cr3t-but-short"[: MIN_TOKEN_LENGTH - 1]
    environ = {"BRIDGE_BIND": "10.1.2.3:8080", "BRIDGE_ALLOW_ANONYMOUS": anonymous, **ALL_TOKENS}
    with pytest.raises(SettingsError) as refused:
        check_exposure(load_settings({**environ, "BRIDGE_TOKEN_OPERATE": short}))
    message = str(refused.value)
    assert f"BRIDGE_TOKEN_OPERATE shorter than {MIN_TOKEN_LENGTH} characters" in message
    assert short not in message and "refusing to listen on 10.1.2.3:8080" in message
    check_exposure(load_settings({**environ, "BRIDGE_TOKEN_OPERATE": "x" * MIN_TOKEN_LENGTH}))


@pytest.mark.parametrize("bind", ["127.0.0.1:8080", "[::1]:8080", "localhost:8080", "unix:/run/bridge.sock"])
def test_short_and_shared_tokens_are_taken_on_loopback(bind):
    check_exposure(load_settings({"BRIDGE_BIND": bind, "BRIDGE_TOKEN_API": "p", "BRIDGE_TOKEN_OPERATE": "p"}))


def test_a_token_shared_between_groups_on_a_network_bind_is_refused_naming_both():
    shared = "one-token-for-two-groups"
    environ = {**ALL_TOKENS, "BRIDGE_TOKEN_ALERTMANAGER": shared, "BRIDGE_TOKEN_OPERATE": shared}
    with pytest.raises(SettingsError) as refused:
        check_exposure(load_settings({"BRIDGE_BIND": "0.0.0.0:8080", **environ}))
    message = str(refused.value)
    assert "BRIDGE_TOKEN_ALERTMANAGER and BRIDGE_TOKEN_OPERATE hold the same token" in message
    assert shared not in message
