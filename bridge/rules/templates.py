"""Operator templates (problem keys, summaries, descriptions, JSON bodies), sandboxed and strict.

Jinja2's SandboxedEnvironment with StrictUndefined: a template cannot reach the
environment, files or Python internals, and a missing label is an error rather than
an empty string. A JSON body template (a notify target's) writes every `{{ value }}` as a
JSON literal, so no text an alert carries can close a string and add keys of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateRuntimeError, Undefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import htmlsafe_json_dumps

from adapters import SOURCES
from bridge.domain.incidents import Alert
from bridge.domain.problems import Renderer


def _json_literal(value: Any) -> str:
    """A `{{ value }}` of a JSON body template, as JSON: strings quoted and escaped (control characters,
    quotes, backslashes, `<`, `>`, `&`, `'` and every non-ASCII character as \\u escapes), numbers,
    true/false/null, and lists and mappings whole."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined: raises the undefined-name error
    try:
        return str(htmlsafe_json_dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TemplateRuntimeError(f"a value cannot be written as JSON: {exc}") from exc


_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_JSON_ENVIRONMENT = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_json_literal
)
# Bounded output: a template must not be able to build huge strings into keys or Jira fields.
MAX_RENDERED_LENGTH = 32_000


class TemplateError(Exception):
    """A template does not compile or fails to render."""


def compile_template(source: str, json_values: bool = False) -> Renderer:
    """Compile once; the returned function renders a context to text. With `json_values` (a JSON body),
    every `{{ value }}` is written as a JSON literal: `{"text": {{ problem.summary }}}`, no quotes.

    Raises:
        TemplateError: syntax error (at compile) or undefined name / sandbox violation (at render).
    """
    try:
        template = (_JSON_ENVIRONMENT if json_values else _ENVIRONMENT).from_string(source)
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

    reads = _reads(source)
    if reads is None:
        return render
    rendered: dict[tuple[Any, ...], str] = {}

    def render_once(context: Mapping[str, Any]) -> str:
        """The text for what the template reads, rendered the first time those values come."""
        key = tuple(
            context.get(name, _MISSING) if item is None else context.get(name, {}).get(item, _MISSING)
            for name, item in reads
        )
        text = rendered.get(key)
        if text is None:
            text = render(context)
            if sum(len(value) for value in key if isinstance(value, str)) <= MAX_CACHED_KEY_TEXT:
                if len(rendered) >= MAX_CACHED_RENDERS:
                    rendered.clear()
                rendered[key] = text
        return text

    return render_once


def is_json(text: str) -> bool:
    """Whether a rendered JSON body parses as JSON (a template's own text can still break it)."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


# Renders remembered per template (a storm opens thousands of incidents of one failure, one key).
MAX_CACHED_RENDERS = 4096
# Values longer than this in all (characters) are rendered every time: the cache stays a few MB.
MAX_CACHED_KEY_TEXT = 1024
# Context values a cached template may read whole; labels and annotations only item by item.
_SCALARS = frozenset({"source", "summary", "priority", "line", "dedup_key"})
_MAPPINGS = frozenset({"labels", "annotations"})
_MISSING = object()


def _reads(source: str) -> tuple[tuple[str, str | None], ...] | None:
    """What a template reads of its context, when that alone decides its text: scalar names, and
    `labels.x` / `labels["x"]` items. None (render every time) for anything else: loops, assignments,
    calls, the random filter, another name, a mapping read whole or by a name its methods use."""
    reads: set[tuple[str, str | None]] = set()

    def visit(node: nodes.Node, parent: nodes.Node | None) -> bool:
        if isinstance(node, nodes.Call | nodes.For | nodes.Assign | nodes.AssignBlock | nodes.Macro):
            return False
        if isinstance(node, nodes.Filter) and node.name == "random":
            return False
        if isinstance(node, nodes.Name):
            if node.ctx != "load":
                return False
            if node.name in _SCALARS:
                reads.add((node.name, None))
            elif node.name in _MAPPINGS:
                item = _item_of(parent, node)
                if item is None or hasattr(dict, item):
                    return False
                reads.add((node.name, item))
            else:
                return False
        return all(visit(child, node) for child in node.iter_child_nodes())

    try:
        tree = _ENVIRONMENT.parse(source)
    except JinjaTemplateError:
        return None
    return tuple(sorted(reads, key=lambda read: (read[0], read[1] or ""))) if visit(tree, None) else None


def _item_of(parent: nodes.Node | None, name: nodes.Name) -> str | None:
    """The item `parent` reads of the mapping `name` (`labels.x` or `labels["x"]`), else None."""
    if isinstance(parent, nodes.Getattr) and parent.node is name:
        return str(parent.attr)
    if (
        isinstance(parent, nodes.Getitem)
        and parent.node is name
        and isinstance(parent.arg, nodes.Const)
        and isinstance(parent.arg.value, str)
    ):
        return parent.arg.value
    return None


@functools.cache
def example_alerts() -> tuple[Alert, ...]:
    """The example payloads shipped in adapters/examples, parsed by their adapters."""
    alerts: list[Alert] = []
    for source in SOURCES.values():
        for body in source.example_payloads():
            alerts.extend(source.parse(body).alerts)
    return tuple(alerts)
