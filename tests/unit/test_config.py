"""Environment settings: one mapping table, bad values refused, secrets masked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.config import TOKEN_GROUPS, Secret, SettingsError, check_exposure, load_settings


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


ALL_TOKENS = {
    "BRIDGE_TOKEN_ALERTMANAGER": "a",
    "BRIDGE_TOKEN_ZABBIX": "z",
    "BRIDGE_TOKEN_GRAFANA": "g",
    "BRIDGE_TOKEN_RELEASE": "r",
    "BRIDGE_TOKEN_TICKETS": "t",
    "BRIDGE_TOKEN_HEARTBEATS": "h",
    "BRIDGE_TOKEN_API": "p",
    "BRIDGE_TOKEN_OPERATE": "o",
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
        load_settings({"BRIDGE_BIND": "0.0.0.0:8080", "BRIDGE_ALLOW_ANONYMOUS": "1", "BRIDGE_TOKEN_API": "p"})
    )
