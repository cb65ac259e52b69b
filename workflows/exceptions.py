"""Errors of the workflows layer.

Two families. `DomainError` subclasses are raised to callers of the public
API (start, signal, cancel) and render like every other domain error.
`StepFailed` and its subclasses are raised *inside* a workflow function, by
the context, when a step, a signal wait or a child run has failed for good; a
workflow may catch them (to take another path) or let them escape, which
fails the run and compensates what it did. On replay they are raised again
from the recorded outcome, so catching them stays deterministic.
"""

from __future__ import annotations

from typing import Any

from ticketing.exceptions import DomainError, InvalidState, NotFound


class UnknownWorkflow(NotFound):
    code = "unknown_workflow"
    message = "No workflow of this type is registered."


class RunNotFound(NotFound):
    code = "workflow_run_not_found"
    message = "This workflow run does not exist."


class RunFinished(InvalidState):
    code = "workflow_run_finished"
    message = "This workflow run has already finished."


class StepFailed(Exception):
    """A step failed after its retries; `error` is what was recorded."""

    def __init__(self, step: str, error: dict[str, Any]) -> None:
        self.step = step
        self.error = error
        super().__init__(f"step {step!r} failed: {error.get('message', '')}")


class SignalTimeout(StepFailed):
    """`ctx.wait_signal` reached its timeout without the signal."""


class ChildFailed(StepFailed):
    """A child run ended in a status other than completed."""


class NonDeterministicWorkflow(Exception):
    """Replay met a different step than the one recorded at this sequence:
    the workflow's code changed under a running version (register a new
    version instead) or it branches on something that is not recorded."""


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The JSON we store for an exception: stable code, type and message."""
    if isinstance(exc, StepFailed):
        return {**exc.error, "step": exc.step}
    if isinstance(exc, DomainError):
        # Status and detail travel with the code, so a caller can hand the
        # recorded error back to its client as if it had been raised there.
        return {
            "code": exc.code,
            "type": type(exc).__name__,
            "message": str(exc)[:1000],
            "status": exc.status,
            "detail": _jsonable_detail(exc.detail),
        }
    return {"code": "error", "type": type(exc).__name__, "message": str(exc)[:1000]}


def _jsonable_detail(detail: Any) -> Any:
    import json

    try:
        json.dumps(detail)
    except (TypeError, ValueError):
        return str(detail)
    return detail
