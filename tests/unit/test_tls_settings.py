"""BRIDGE_TLS_CERT and BRIDGE_TLS_KEY: both or neither, files that load as a pair, Granian's options from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from bridge.config import SettingsError, load_settings
from bridge.web.server import check_tls_files, granian_tls


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, str]:
    served = trustme.CA().issue_cert("127.0.0.1")
    files = {"cert": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}
    served.cert_chain_pems[0].write_to_path(files["cert"])
    served.private_key_pem.write_to_path(files["key"])
    return files


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BRIDGE_TLS_CERT": "/etc/bridge/cert.pem"}, "BRIDGE_TLS_CERT is set: serving HTTPS needs BRIDGE_TLS_KEY"),
        ({"BRIDGE_TLS_KEY": "/etc/bridge/key.pem"}, "BRIDGE_TLS_KEY is set: serving HTTPS needs BRIDGE_TLS_CERT"),
    ],
)
def test_a_certificate_without_its_key_or_a_key_without_its_certificate_is_refused(environ, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_a_certificate_and_its_key_load_and_become_granians_tls_options(pair: dict[str, str]):
    settings = load_settings({"BRIDGE_TLS_CERT": pair["cert"], "BRIDGE_TLS_KEY": pair["key"]})
    check_tls_files(settings)
    options = granian_tls(settings)
    assert (str(options["ssl_cert"]), str(options["ssl_key"]), options["ssl_protocol_min"].value) == (
        pair["cert"],
        pair["key"],
        "tls1.2",
    )
    assert granian_tls(load_settings({})) == {}, "plain HTTP without them"


def test_an_unreadable_file_or_a_key_of_another_certificate_is_named(pair: dict[str, str], tmp_path: Path):
    missing = load_settings({"BRIDGE_TLS_CERT": str(tmp_path / "nope.pem"), "BRIDGE_TLS_KEY": pair["key"]})
    with pytest.raises(ValueError, match=r"BRIDGE_TLS_CERT: cannot read .*nope\.pem"):
        check_tls_files(missing)
    other = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
    mismatched = load_settings({"BRIDGE_TLS_CERT": pair["cert"], "BRIDGE_TLS_KEY": str(other)})
    with pytest.raises(ValueError, match="not a PEM certificate chain and its private key"):
        check_tls_files(mismatched)


def test_serve_stops_at_once_naming_a_certificate_it_cannot_read(pair: dict[str, str], tmp_path: Path):
    from click.testing import CliRunner

    from bridge.cli import main
    from tests.conftest import ROOT

    env = {
        "BRIDGE_RULES": str(ROOT / "rules.yaml"),
        "BRIDGE_TLS_CERT": str(tmp_path / "nope.pem"),
        "BRIDGE_TLS_KEY": pair["key"],
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 1 and "BRIDGE_TLS_CERT: cannot read" in result.output
