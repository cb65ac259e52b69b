"""The saga engine: recorded, resumable workflows on the database, with Celery
as the executor and alarm clock.

    from workflows.engine import Context, RetryPolicy, start, signal, cancel, workflow

    @workflow("order.refund", version=1)
    def refund_order(ctx: Context) -> dict:
        hold = ctx.step("reserve", lambda: ..., compensate=lambda result: ...)
        charge = ctx.step("charge", lambda key: provider.charge(key=key), external=True,
                          retry=RetryPolicy(max_attempts=5))
        payload = ctx.wait_signal("payment.confirmed", timeout=timedelta(minutes=15))
        return {"charge": charge}

Modules: registry (definitions by type and version), context (what a workflow
calls), attempts (running one step), leases (who may advance a run), runner
(advance), runs (start, cancel, retry_now), one_transaction (a fresh run of
local steps done whole in one transaction by its caller), signals (signal),
outbox (enqueue, relay), sweepers (wake due runs, reap leases, prune).
"""

from workflows.engine.context import Child, Context, Step
from workflows.engine.outbox import enqueue
from workflows.engine.registry import workflow
from workflows.engine.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from workflows.engine.runner import advance, advance_claimed
from workflows.engine.runs import cancel, retry_now, start, start_claimed
from workflows.engine.signals import signal

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "Child",
    "Context",
    "RetryPolicy",
    "Step",
    "advance",
    "advance_claimed",
    "cancel",
    "enqueue",
    "retry_now",
    "signal",
    "start",
    "start_claimed",
    "workflow",
]
