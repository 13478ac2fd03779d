"""Operator templates (problem keys, summaries, descriptions), sandboxed and strict.

Jinja2's SandboxedEnvironment with StrictUndefined: a template cannot reach the
environment, files or Python internals, and a missing label is an error rather than
an empty string.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

from adapters import SOURCES
from bridge.domain import Alert, Renderer

_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
# Bounded output: a template must not be able to build huge strings into keys or Jira fields.
MAX_RENDERED_LENGTH = 32_000


class TemplateError(Exception):
    """A template does not compile or fails to render."""


def compile_template(source: str) -> Renderer:
    """Compile once; the returned function renders a context to text.

    Raises:
        TemplateError: syntax error (at compile) or undefined name / sandbox violation (at render).
    """
    try:
        template = _ENVIRONMENT.from_string(source)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc)) from exc

    def render(context: Mapping[str, Any]) -> str:
        try:
            text = template.render(**context)
        except JinjaTemplateError as exc:
            raise TemplateError(str(exc)) from exc
        if len(text) > MAX_RENDERED_LENGTH:
            raise TemplateError(f"rendered text longer than {MAX_RENDERED_LENGTH} characters")
        return text

    return render


@functools.cache
def example_alerts() -> tuple[Alert, ...]:
    """The example payloads shipped in adapters/examples, parsed by their adapters."""
    alerts: list[Alert] = []
    for source in SOURCES.values():
        for body in source.example_payloads():
            alerts.extend(source.parse(body).alerts)
    return tuple(alerts)
