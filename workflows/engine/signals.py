"""Delivering events to runs (webhooks, staff decisions).

Not Django signals: a workflow signal is a row the run consumes with
`ctx.wait_signal(name)`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from workflows.engine.runs import wake
from workflows.exceptions import RunNotFound
from workflows.models import WorkflowRun, WorkflowSignal


def signal(run: WorkflowRun | int, name: str, payload: Any = None, *, dedup_key: str | None = None) -> bool:
    """Deliver `name` with `payload` to a run.

    Idempotent on (run, name, dedup_key): a repeated delivery (the provider
    retrying a webhook) returns False and changes nothing. Signals may arrive
    before the run waits for them or out of order; they are stored and
    consumed in arrival order, per name. The signal row and the run's wake-up
    commit together; the run advances after commit. A signal for a finished
    run is kept (for the record) and never consumed."""
    run_id = run.pk if isinstance(run, WorkflowRun) else run
    if not WorkflowRun.objects.filter(pk=run_id).exists():
        raise RunNotFound(detail={"run": run_id})
    with transaction.atomic():
        received, created = WorkflowSignal.objects.get_or_create(
            run_id=run_id, name=name, dedup_key=dedup_key or uuid.uuid4().hex, defaults={"payload": payload}
        )
        if created:
            wake(run_id, reason=f"signal:{received.pk}")
    return created
