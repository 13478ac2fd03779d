"""JiraPort is exactly what the bridge calls on Jira, and both implementations fit it."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest

import bridge.jira.identity
import bridge.jira.webhook
import bridge.problems.actions
import bridge.problems.releases
import bridge.worker
import jira_link.identity
import jira_link.linker
from jira_link.client import JiraClient
from jira_link.port import JiraPort
from tests.jira_memory import MemoryJira

PORT_METHODS = sorted(
    name for name, value in vars(JiraPort).items() if inspect.isfunction(value) and not name.startswith("_")
)


def _conforms(client: JiraClient, memory: MemoryJira) -> list[JiraPort]:
    """Never called: mypy rejects this function if either class stops fitting the port."""
    return [client, memory]


def shape(function: object) -> tuple[list[tuple[str, object, object, bool]], object]:
    """Parameters (name, kind, annotation, has a default) and return annotation; default values may differ."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return (
        [
            (p.name, p.kind, p.annotation, p.default is not inspect.Parameter.empty)
            for p in signature.parameters.values()
        ],
        signature.return_annotation,
    )


def jira_calls(module: ModuleType) -> set[str]:
    """Methods called as `jira.<name>(...)` in a module's source."""
    return {
        node.func.attr
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "jira"
    }


def test_the_port_holds_exactly_the_methods_the_linker_worker_and_use_cases_call():
    used = set().union(
        *(
            jira_calls(module)
            for module in (
                jira_link.linker,
                jira_link.identity,
                bridge.jira.identity,
                bridge.worker,
                bridge.problems.actions,
                bridge.problems.releases,
                bridge.jira.webhook,
            )
        )
    )
    assert sorted(used) == PORT_METHODS


@pytest.mark.parametrize("implementation", [JiraClient, MemoryJira], ids=["JiraClient", "MemoryJira"])
@pytest.mark.parametrize("method", PORT_METHODS)
def test_implementation_has_the_ports_signature(implementation, method):
    assert shape(getattr(implementation, method)) == shape(getattr(JiraPort, method))
