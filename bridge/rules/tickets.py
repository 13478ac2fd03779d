"""The `ticket_systems` and `notify` sections of rules.yaml: where tickets live and who hears of events.

URLs and secret references take `${VAR}` (read from the environment at start-up; unset is an
error naming it). Secrets themselves never sit in the file: `secret_env` names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import Field

from bridge.domain.problems import Renderer
from bridge.domain.tickets import EVENTS, NotifyTarget, TicketSync, TicketSystem
from bridge.rules.samples import sample_event
from bridge.rules.templates import TemplateError, compile_template, is_json
from bridge.validation import StrictModel, parse_duration

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
# Keys only a kind reads: set on another kind, they would be silently ignored.
KIND_KEYS = {"sync": "rt", "project": "jira", "close_transition": "jira", "problem_field": "jira", "flavour": "jira"}


class TicketSyncModel(StrictModel):
    interval: str = "1m"
    queues: list[str] = Field(min_length=1)
    problem_field: str | None = Field(default=None, min_length=1, max_length=200)
    overlap: str = "1m"


class TicketSystemModel(StrictModel):
    kind: Literal["webhook", "rt", "jira"] = "webhook"
    url: str = Field(min_length=1)
    secret_env: str | None = None
    close_on_release: bool = True
    queue: str | None = Field(default=None, min_length=1)
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    sync: TicketSyncModel | None = None
    project: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,46}$")
    close_transition: str | None = Field(default=None, min_length=1, max_length=200)
    problem_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    flavour: Literal["cloud", "datacenter"] = "cloud"


class NotifyTargetModel(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(min_length=1)
    secret_env: str = Field(min_length=1)
    events: list[Literal[EVENTS]] = Field(min_length=1)  # type: ignore[valid-type]
    body_template: str | None = Field(default=None, min_length=1)


# rules.expand_variables, the one `${VAR}` reader (passed in: rules.py imports this module).
Expand = Callable[[str, Mapping[str, str]], str]


def _url(where: str, text: str, expand: Expand, environ: Mapping[str, str], problems: list[str]) -> str | None:
    try:
        url = expand(text, environ).strip()
    except ValueError as exc:
        problems.append(f"{where} key url: {exc}")
        return None
    if not url.startswith(("http://", "https://")):
        problems.append(f"{where} key url: expected an http:// or https:// URL, got {url!r}")
        return None
    return url.rstrip("/")


def _secret(
    where: str, key: str, name: str | None, expand: Expand, environ: Mapping[str, str], problems: list[str]
) -> str | None:
    """The value of the environment variable `name` (itself `${VAR}`-expanded); unset or empty is an error."""
    if name is None:
        return None
    try:
        variable = expand(name, environ).strip()
    except ValueError as exc:
        problems.append(f"{where} key {key}: {exc}")
        return None
    value = environ.get(variable)
    if not value:
        problems.append(f"{where} key {key}: environment variable not set: {variable}")
        return None
    return value


def build_ticket_systems(
    models: Mapping[str, TicketSystemModel], expand: Expand, environ: Mapping[str, str], problems: list[str]
) -> dict[str, TicketSystem]:
    """Ticket systems with their URLs and credentials read from the environment."""
    built: dict[str, TicketSystem] = {}
    for name, model in models.items():
        where = f'ticket system "{name}"'
        if not re.fullmatch(NAME_PATTERN, name):
            problems.append(f"{where}: a name is letters, digits, dots, dashes and underscores (at most 64)")
            continue
        url = _url(where, model.url, expand, environ, problems)
        secret = _secret(where, "secret_env", model.secret_env, expand, environ, problems)
        username = _secret(where, "username_env", model.username_env, expand, environ, problems)
        password = _secret(where, "password_env", model.password_env, expand, environ, problems)
        token = _secret(where, "token_env", model.token_env, expand, environ, problems)
        if model.kind == "webhook" and model.secret_env is None:
            problems.append(f"{where} key secret_env: required for kind webhook (the key that signs deliveries)")
        if (
            model.kind == "rt"
            and model.token_env is None
            and (model.username_env is None or model.password_env is None)
        ):
            problems.append(f"{where}: kind rt needs token_env, or username_env and password_env (RT's credentials)")
        problems.extend(_kind_problems(where, model))
        sync = _sync(where, model.sync, problems) if model.sync is not None else None
        if url is None:
            continue
        built[name] = TicketSystem(
            name=name,
            kind=model.kind,
            url=url,
            secret=secret,
            close_on_release=model.close_on_release,
            queue=model.queue,
            username=username,
            password=password if token is None else None,
            token=token,
            sync=sync,
            project=model.project,
            close_transition=model.close_transition,
            problem_field=model.problem_field,
            flavour=model.flavour,
        )
    return built


def _kind_problems(where: str, model: TicketSystemModel) -> list[str]:
    """What a system's kind requires, and keys of another kind set on it."""
    found = [
        f"{where} key {key}: only for kind {kind}"
        for key, kind in KIND_KEYS.items()
        if model.kind != kind and key in model.model_fields_set
    ]
    if model.kind == "jira":
        if model.project is None:
            found.append(f"{where} key project: required for kind jira (the service project's key, e.g. SD)")
        if model.token_env is None or (model.flavour == "cloud" and model.username_env is None):
            found.append(
                f"{where}: kind jira needs token_env (a personal access token on datacenter), and username_env "
                "(the account's email) with it on cloud"
            )
    if model.kind == "rt" and model.queue is None and model.sync is None:
        found.append(
            f"{where} key queue: required for kind rt (the bridge changes only tickets of its queues: "
            "queue and sync.queues)"
        )
    for queue in [model.queue or "", *(model.sync.queues if model.sync else [])]:
        if "'" in queue or "\\" in queue:
            found.append(f"{where}: queue {queue!r}: quotes and backslashes cannot be searched in RT")
    return found


def _sync(where: str, model: TicketSyncModel, problems: list[str]) -> TicketSync | None:
    """The sync of a Request Tracker: how often, which queues, which field names the problem."""
    try:
        interval, overlap = parse_duration(model.interval), parse_duration(model.overlap)
    except ValueError as exc:
        problems.append(f"{where} key sync: {exc}")
        return None
    if interval.total_seconds() < 1:
        problems.append(f"{where} key sync.interval: at least 1s")
    if overlap.total_seconds() > 86400:
        problems.append(f"{where} key sync.overlap: at most 1d (every pass reads that much again)")
    return TicketSync(interval, tuple(model.queues), model.problem_field, overlap)


def _body_template_problems(where: str, template: Renderer, events: list[str]) -> list[str]:
    """What a body template does wrong on a sample of each event it is for: fails, or renders no JSON."""
    found = []
    for event in events:
        try:
            text = template(sample_event(event))
        except TemplateError as exc:
            found.append(f"{where} key body_template: fails on a sample {event}: {exc}")
            continue
        if not is_json(text):
            found.append(
                f"{where} key body_template: renders no valid JSON on a sample {event} ({{{{ value }}}} writes "
                f'a JSON value, quotes included: write {{"text": {{{{ problem.summary }}}}}}, not in quotes)'
            )
    return found


def build_notify_targets(
    models: list[NotifyTargetModel], expand: Expand, environ: Mapping[str, str], problems: list[str]
) -> tuple[NotifyTarget, ...]:
    """Notify targets, their URL and secret read from the environment and their body template compiled."""
    built: list[NotifyTarget] = []
    names: set[str] = set()
    for model in models:
        where = f'notify target "{model.name}"'
        if model.name in names:
            problems.append(f"{where}: name used twice")
        names.add(model.name)
        url = _url(where, model.url, expand, environ, problems)
        secret = _secret(where, "secret_env", model.secret_env, expand, environ, problems)
        template = None
        if model.body_template is not None:
            try:
                template = compile_template(model.body_template, json_values=True)
            except TemplateError as exc:
                problems.append(f"{where} key body_template: template does not compile: {exc}")
            else:
                problems.extend(_body_template_problems(where, template, model.events))
        if url is None or secret is None:
            continue
        built.append(NotifyTarget(model.name, url, secret, frozenset(model.events), template))
    return tuple(built)
