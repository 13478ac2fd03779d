"""The `ticket_systems` and `notify` sections of rules.yaml: where tickets live and who hears of events.

URLs and secret references take `${VAR}` (read from the environment at start-up; unset is an
error naming it). Secrets themselves never sit in the file: `secret_env` names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import Field

from bridge.domain.tickets import EVENTS, NotifyTarget, TicketSystem
from bridge.rules.templates import TemplateError, compile_template
from bridge.validation import StrictModel

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class TicketSystemModel(StrictModel):
    kind: Literal["webhook", "rt"] = "webhook"
    url: str = Field(min_length=1)
    secret_env: str | None = None
    close_on_release: bool = True
    queue: str | None = Field(default=None, min_length=1)
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None


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
        if not re.match(NAME_PATTERN, name):
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
        )
    return built


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
                template = compile_template(model.body_template)
            except TemplateError as exc:
                problems.append(f"{where} key body_template: template does not compile: {exc}")
        if url is None or secret is None:
            continue
        built.append(NotifyTarget(model.name, url, secret, frozenset(model.events), template))
    return tuple(built)
