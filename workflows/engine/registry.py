"""Workflow definitions by (type, version).

A workflow is a function taking a Context. It registers on import:

    @workflow("checkout.complete", version=1)
    def complete_checkout(ctx: Context) -> dict: ...

New runs start on the highest registered version; a run keeps the version it
started with, so released versions stay registered until their runs finish.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from workflows.exceptions import UnknownWorkflow

if TYPE_CHECKING:
    from workflows.engine.context import Context

WorkflowFn = Callable[["Context"], Any]
F = TypeVar("F", bound=WorkflowFn)


@dataclass(frozen=True)
class Definition:
    workflow_type: str
    version: int
    fn: WorkflowFn


_definitions: dict[tuple[str, int], Definition] = {}


def workflow(workflow_type: str, *, version: int = 1) -> Callable[[F], F]:
    """Register the decorated function as `workflow_type` at `version`."""

    def register(fn: F) -> F:
        key = (workflow_type, version)
        existing = _definitions.get(key)
        # Re-importing the same module is fine; two functions claiming one
        # (type, version) would make replay run the wrong code.
        if existing and (existing.fn.__module__, existing.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ImproperlyConfigured(f"workflow {workflow_type} v{version} is already registered")
        _definitions[key] = Definition(workflow_type, version, fn)
        return fn

    return register


def get(workflow_type: str, version: int) -> Definition | None:
    return _definitions.get((workflow_type, version))


def latest(workflow_type: str) -> Definition:
    versions = [d for (t, _), d in _definitions.items() if t == workflow_type]
    if not versions:
        raise UnknownWorkflow(detail={"workflow_type": workflow_type})
    return max(versions, key=lambda d: d.version)


# Subpackages of `workflows` that hold the engine, not workflow definitions.
_NOT_AREAS = frozenset({"api", "engine", "management", "migrations", "models"})


def autodiscover() -> None:
    """Import every module of every area package (workflows/checkout/, ...)."""
    import workflows

    for area in pkgutil.iter_modules(workflows.__path__):
        if not area.ispkg or area.name in _NOT_AREAS:
            continue
        package = import_module(f"workflows.{area.name}")
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            import_module(module.name)
