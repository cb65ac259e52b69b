"""Control flow of the engine, raised through workflow code.

All derive from BaseException so that a workflow's own `except Exception`
can never swallow them: they must reach the runner.
"""

from __future__ import annotations

from datetime import datetime


class Interrupt(BaseException):
    pass


class Suspend(Interrupt):
    """Stop this pass: the run waits until `wake_at` (None: until an event)."""

    def __init__(self, wake_at: datetime | None) -> None:
        self.wake_at = wake_at
        super().__init__(wake_at)


class StopReplay(Interrupt):
    """Replay-only pass reached work that is not recorded as done."""


class LeaseLost(Interrupt):
    """Another worker owns the run now: abandon this pass, write nothing."""


class Cancelled(Interrupt):
    """Cancellation was requested while the run was moving forward."""
