"""The docs are true where a machine can tell.

Every setting, rules key, metric family, endpoint, command and migration the code has is in
its reference page (and every one documented exists); every endpoint takes the token its
row names; every link, repository path, module and test the docs name exists. A reference
row is a table row whose first cell is the name in backquotes, so the tests can read it.
"""

from __future__ import annotations

import importlib
import re
import shlex
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from bridge import metrics
from bridge.api.openapi.document import build_document
from bridge.cli import main as cli_main
from bridge.config import ENVIRONMENT, TOKEN_GROUPS
from bridge.rules.load import RulesModel
from bridge.web.throttle import EXTENSION as THROTTLE
from bridge.web.throttle import AuthThrottle
from tests.conftest import ROOT, build_app

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
REFERENCE = DOCS / "reference"

# Variables read outside bridge/config.py's table, each by the code constant that names it.
READ_OUTSIDE_CONFIG = {metrics.MULTIPROC_ENV: "bridge/metrics.py and bridge/cli.py (prometheus-client's directory)"}

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_ROW_NAME = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)$", re.M)
_PLACEHOLDER = re.compile(r"<[^>]*>|\{[^}]*\}")


def rows(page: Path) -> dict[str, str]:
    """A reference page's rows: the name in backquotes of each table row's first cell -> the rest of the row.

    Raises:
        AssertionError: a name has two rows (one home per fact).
    """
    found = _ROW_NAME.findall(_FENCE.sub("", page.read_text()))
    names = [name for name, _ in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert twice == [], f"{page.name}: two rows for one name"
    return dict(found)


def prose(page: Path) -> str:
    """A page without its fenced code blocks."""
    return _FENCE.sub("", page.read_text())


# Environment variables ------------------------------------------------------------------


def documented_variables() -> set[str]:
    return set(rows(REFERENCE / "environment.md"))


def test_every_variable_the_code_reads_is_in_the_environment_reference():
    read = {*ENVIRONMENT, *TOKEN_GROUPS.values(), *READ_OUTSIDE_CONFIG}
    assert sorted(read - documented_variables()) == []


def test_every_variable_the_environment_reference_documents_is_read_by_the_code():
    read = {*ENVIRONMENT, *TOKEN_GROUPS.values(), *READ_OUTSIDE_CONFIG}
    assert sorted(documented_variables() - read) == []


# rules.yaml -------------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models a field's type holds, each with how its keys are written: `[]` in a list, `.<>` in a map."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin is list:
        yield from (("[]" + suffix, model) for suffix, model in _models_in(typing.get_args(annotation)[0]))
    elif origin is dict:
        yield from ((".<>" + suffix, model) for suffix, model in _models_in(typing.get_args(annotation)[1]))
    elif origin in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            yield from _models_in(argument)


def rules_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of rules.yaml the model accepts, under the name the file uses (its alias if it has one)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        yield key
        for suffix, inner in _models_in(field.annotation):
            yield from rules_keys(inner, f"{key}{suffix}.")


def documented_rules_keys() -> set[str]:
    """`sla.calendars.<name>.timezone` is written `sla.calendars.<>.timezone` to compare."""
    return {_PLACEHOLDER.sub("<>", name) for name in rows(REFERENCE / "rules.md")}


def test_the_walk_of_the_rules_models_finds_nested_keys():
    keys = set(rules_keys(RulesModel))
    assert {"routes[].match.labels_regex", "sla.calendars.<>.holidays.country", "notify[].events"} <= keys
    assert "problems[].jira.outcomes.wont_do.close_incidents" in keys


def test_every_rules_key_is_in_the_rules_reference():
    assert sorted(set(rules_keys(RulesModel)) - documented_rules_keys()) == []


def test_every_key_the_rules_reference_documents_is_accepted():
    assert sorted(documented_rules_keys() - set(rules_keys(RulesModel))) == []


# Metrics ----------------------------------------------------------------------------------


def exported_name(family: Any) -> str:
    """The name a PromQL query uses: prometheus-client keeps a counter's family without its `_total`."""
    return f"{family.name}_total" if family.type == "counter" else family.name


def registered_families() -> set[str]:
    """The bridge's own families (prometheus-client's process and platform collectors are not ours)."""
    return {exported_name(family) for family in REGISTRY.collect() if family.name.startswith("bridge_")}


def test_every_registered_metric_family_is_in_the_metrics_reference():
    assert registered_families(), "bridge.metrics registers its families when imported"
    assert sorted(registered_families() - set(rows(REFERENCE / "metrics.md"))) == []


def test_every_gauge_read_from_the_database_is_in_the_metrics_reference(store, example_rules):
    gauges = {exported_name(family) for family in metrics.StoreGauges(store, example_rules).collect()}
    assert "bridge_incidents_open" in gauges
    assert sorted(gauges - set(rows(REFERENCE / "metrics.md"))) == []


def test_every_metric_the_reference_documents_is_exported(store, example_rules):
    gauges = {exported_name(family) for family in metrics.StoreGauges(store, example_rules).collect()}
    assert sorted(set(rows(REFERENCE / "metrics.md")) - registered_families() - gauges) == []


# HTTP API ---------------------------------------------------------------------------------

_ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")


def documented_endpoints() -> dict[tuple[str, str], str]:
    """(method, path) -> the row's token cell, for every endpoint row of the HTTP reference."""
    found = {}
    for name, rest in rows(REFERENCE / "http-api.md").items():
        match = _ENDPOINT.match(name)
        assert match, f"http-api.md: {name!r} is not `METHOD /path`"
        found[(match.group(1), match.group(2))] = rest.split("|")[0].strip()
    return found


def _shape(path: str) -> str:
    """A path with its parameters blanked, so `<id>`, `<int:problem_id>` and `{problem_id}` compare equal."""
    return _PLACEHOLDER.sub("{}", path)


def _concrete(path: str) -> str:
    return _PLACEHOLDER.sub("1", path)


def test_every_operation_of_the_openapi_document_is_in_the_http_reference():
    documented = {(method, _shape(path)) for method, path in documented_endpoints()}
    operations = {
        (method.upper(), _shape(path))
        for path, item in build_document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert sorted(operations - documented) == []


@pytest.fixture
def app(tmp_path: Path):
    """The bridge with every token set, each to its own value, the Jira webhook secret and the bench endpoint."""
    environ = {variable: f"token-of-{variable}" for variable in TOKEN_GROUPS.values()}
    environ |= {"BRIDGE_JIRA_WEBHOOK_SECRET": "jira-secret", "BRIDGE_BENCH_NOOP_ENDPOINT": "1"}
    app = build_app(tmp_path, environ)
    app.extensions[THROTTLE] = AuthThrottle(allowance=1_000_000)  # these tests send wrong tokens by the hundred
    return app


def test_every_endpoint_the_http_reference_documents_is_routed(app):
    urls = app.url_map.bind("localhost")
    unrouted = []
    for method, path in documented_endpoints():
        try:
            urls.match(_concrete(path), method=method)
        except Exception as exc:  # werkzeug's NotFound or MethodNotAllowed
            unrouted.append(f"{method} {path}: {type(exc).__name__}")
    assert unrouted == []


def _call(client: Any, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {} if method == "GET" else {"data": b"{}", "content_type": "application/json"}
    return client.open(_concrete(path), method=method, headers=headers, **body).status_code


def test_each_endpoint_takes_the_token_its_row_names(app):
    """The token column is true: the named token is let through, any other token is a 401."""
    client = app.test_client()
    variables = set(TOKEN_GROUPS.values())
    wrong = []
    for (method, path), cell in documented_endpoints().items():
        named = cell.strip("`")
        if named in variables:
            others = sorted(variables - {named})
            if _call(client, method, path, f"token-of-{named}") == 401:
                wrong.append(f"{method} {path} refuses {named}")
            wrong += [
                f"{method} {path} takes {other}"
                for other in others
                if _call(client, method, path, f"token-of-{other}") != 401
            ]
        elif cell == "none" and _call(client, method, path, None) == 401:
            wrong.append(f"{method} {path} wants a token, documented as none")
    assert wrong == []


def test_the_jira_webhook_takes_the_secret_its_row_names(app):
    client = app.test_client()
    cell = documented_endpoints()[("POST", "/api/v1/jira/webhook")]
    assert cell.startswith("`BRIDGE_JIRA_WEBHOOK_SECRET`")
    assert _call(client, "POST", "/api/v1/jira/webhook", None) == 401
    assert _call(client, "POST", "/api/v1/jira/webhook?secret=jira-secret", None) != 401


# Curl examples ----------------------------------------------------------------------------

ACTING = ("POST", "PUT", "PATCH", "DELETE")
# Pages whose examples run against `make run`, which sets no token: their calls send none.
OPEN_BRIDGE_PAGES = ("README.md", "tutorial.md")
_DATA_OPTIONS = ("-d", "--data", "--data-binary", "--data-raw", "--json", "-F", "--form")
_VARIABLE = re.compile(r"\$\{?(\w+)")


def curl_commands(block: str) -> Iterator[list[str]]:
    """The words of each curl command of a code block, continued lines and quoted newlines included."""
    lines = block.replace("\\\n", " ").splitlines()
    for number, line in enumerate(lines):
        if "curl " not in line:
            continue
        command = line[line.index("curl ") :]
        following = iter(lines[number + 1 :])
        while True:
            try:
                yield shlex.split(command, comments=True)
                break
            except ValueError:  # a quote spans lines (a JSON body): read on
                command += "\n" + next(following)


def curl_examples() -> Iterator[tuple[Path, str, str, dict[str, str]]]:
    """(page, method, URL, headers by lower-case name) of every curl command in the docs' code blocks."""
    for page in PAGES:
        for block in _FENCE.findall(page.read_text()):
            for words in curl_commands(block):
                line = " ".join(words)
                method, url, headers, data = None, None, {}, False
                for option, value in zip(words, [*words[1:], ""], strict=True):
                    if option in ("-X", "--request"):
                        method = value
                    elif option in ("-H", "--header"):
                        name, _, given = value.partition(":")
                        headers[name.strip().lower()] = given.strip()
                    elif option in _DATA_OPTIONS:
                        data = True
                    elif option.startswith(("http://", "https://")):
                        url = option
                assert url is not None, f"{page.name}: no URL in {line.strip()!r}"
                yield page, method or ("POST" if data else "GET"), url, headers


def test_the_curl_examples_are_found():
    found = [(page.name, method) for page, method, _, _ in curl_examples()]
    assert ("releases.md", "POST") in found and ("jira.md", "DELETE") in found and len(found) > 20


def test_every_acting_curl_example_sends_its_endpoints_token_and_declares_json(app):
    """An example that acts through the API uses the token its endpoint takes (the app says which:
    any other is a 401) and declares JSON, as every acting request must, with a body or without."""
    client = app.test_client()
    wrong = []
    for page, method, url, headers in curl_examples():
        path = urlsplit(url).path
        if method not in ACTING or not path.startswith(("/api/", "/v2/")):
            continue
        where = f"{page.relative_to(ROOT)}: {method} {path}"
        if headers.get("content-type") != "application/json":
            wrong.append(f"{where}: no Content-Type: application/json")
        variable = _VARIABLE.search(headers.get("authorization", ""))
        token = f"token-of-{variable.group(1)}" if variable else None
        answer = _call(client, method, path, token)
        if answer == 401 and (token or page.name not in OPEN_BRIDGE_PAGES):
            wrong.append(f"{where}: {variable.group(1) if variable else 'no token'} is refused")
        elif answer == 404 and client.open(path, method=method).json["message"] == "no such endpoint":
            wrong.append(f"{where}: no such endpoint")
    assert wrong == []


# Command line -----------------------------------------------------------------------------


def commands(group: click.Group, prefix: str = "incident-bridge") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


def parameter_names(command: click.Command) -> list[str]:
    """How the reference writes each parameter: `--bind` for options, `PATH` for arguments."""
    return [
        param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
        for param in command.params
        if param.name != "help"
    ]


def test_every_command_and_option_is_in_the_cli_reference():
    documented = rows(REFERENCE / "cli.md")
    missing = [path for path, _ in commands(cli_main) if path not in documented]
    missing += [
        f"{path} {name}"
        for path, command in commands(cli_main)
        if path in documented
        for name in parameter_names(command)
        if f"`{name}" not in documented[path]
    ]
    assert missing == []


def test_every_command_the_cli_reference_documents_exists():
    known = {path for path, _ in commands(cli_main)}
    assert sorted(set(rows(REFERENCE / "cli.md")) - known) == []


# Upgrading --------------------------------------------------------------------------------


def test_upgrading_has_one_heading_per_migration_in_order():
    migrations = sorted(path.name[:4] for path in (ROOT / "bridge" / "migrations" / "versions").glob("[0-9]*.py"))
    headings = re.findall(r"^## (\d{4})\b", prose(DOCS / "upgrading.md"), re.M)
    assert headings == migrations


# Links, paths, modules, tests -------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
_HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.M)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as dashes."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(prose(page)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_relative_link_between_the_docs_resolves_anchors_included():
    broken = []
    for page in PAGES:
        for match in _LINK.finditer(prose(page)):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def failing_mentions(pattern: re.Pattern[str], holds: Callable[[str], bool], pages: list[Path] = PAGES) -> list[str]:
    """`page: mention` for each text of the pages the pattern finds (its groups joined by `::`) that does not hold."""
    found = []
    for page in pages:
        for match in pattern.finditer(page.read_text()):
            mention = "::".join(match.groups()) if match.groups() else match.group(0)
            if not holds(mention):
                found.append(f"{page.relative_to(ROOT)}: {mention}")
    return found


_REPOSITORY_PATH = re.compile(r"(?<![\w./:-])((?:bridge|adapters|jira_link|tests|bench|dashboards|docs)/[\w./-]*)")


def test_every_repository_path_the_docs_name_exists():
    assert failing_mentions(_REPOSITORY_PATH, lambda path: (ROOT / path.rstrip(".")).exists()) == []


_DOTTED = re.compile(r"`((?:bridge|adapters|jira_link)(?:\.\w+)+)(?:\(\))?`")


def resolves(dotted: str) -> bool:
    """Whether `a.b.c` is a module, or an attribute of the longest module it starts with."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_module_and_function_the_docs_name_exists():
    """Logger names before a move are history: upgrading.md names them on purpose."""
    pages = [page for page in PAGES if page.name != "upgrading.md"]
    assert failing_mentions(_DOTTED, resolves, pages) == []


_TEST = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def defines_test(mention: str) -> bool:
    path, name = mention.split("::")
    return re.search(rf"^\s*(async )?def {name}\(", (ROOT / path).read_text(), re.M) is not None


def test_every_test_the_docs_name_exists():
    assert failing_mentions(_TEST, defines_test) == []


def test_user_docs_name_no_issue_numbers():
    assert failing_mentions(re.compile(r"\bissues? #?\d+", re.I), lambda _: False) == []
