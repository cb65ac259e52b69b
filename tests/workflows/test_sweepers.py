"""The sweepers and `manage.py run_due_workflows` (the embedded default's beat)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.workflows.helpers import fresh, rewind
from workflows.engine import Context, start, workflow
from workflows.engine.sweepers import prune_finished_runs, wake_due_runs
from workflows.models import OutboxMessage, RunStatus, WorkflowRun, WorkflowStep

pytestmark = pytest.mark.django_db(transaction=True)


@workflow("test.quick_done")
def quick_done(ctx: Context) -> str:
    return ctx.step("only", lambda: "done")


@workflow("test.parent_waits")
def parent_waits(ctx: Context) -> str:
    return ctx.child("test.nap", f"{ctx.business_key}:nap")


def test_run_due_workflows_fires_due_timers_in_one_pass() -> None:
    run = start("test.nap", "nap:command", {"seconds": 600})
    assert fresh(run).status == RunStatus.WAITING

    out = StringIO()
    call_command("run_due_workflows", stdout=out)
    assert fresh(run).status == RunStatus.WAITING  # not due yet
    assert "woke 0 runs" in out.getvalue()

    rewind(run, seconds=601)
    out = StringIO()
    call_command("run_due_workflows", stdout=out)
    assert fresh(run).status == RunStatus.COMPLETED
    assert "woke 1 runs" in out.getvalue()


def test_the_wake_sweeper_does_not_requeue_a_run_it_just_queued(broker) -> None:
    broker.mode = "hold"
    run = start("test.quick_done", "quick:nudge")

    assert wake_due_runs() == 1
    assert wake_due_runs() == 0  # its message is queued; a worker backlog does not grow
    rewind(run, seconds=61)
    assert wake_due_runs() == 1
    assert [task for task, _ in broker.held].count("workflows.tasks.advance_run") == 3  # start + 2 nudges


def test_prune_deletes_old_finished_runs_and_keeps_the_rest() -> None:
    done = start("test.quick_done", "prune:done")
    # a parent that ran out of time: it finished, its child still sleeps
    waiting_parent = start("test.parent_waits", "prune:parent", deadline=timezone.now() + timedelta(minutes=5))
    nap = WorkflowRun.objects.get(parent=waiting_parent)
    rewind(waiting_parent, seconds=301)
    wake_due_runs()
    assert fresh(waiting_parent).is_finished and not fresh(nap).is_finished
    recent = start("test.quick_done", "prune:recent")
    gave_up = start("test.quick_done", "prune:gave-up")
    long_ago = timezone.now() - timedelta(days=31)
    WorkflowRun.objects.exclude(pk=recent.pk).filter(finished_at__isnull=False).update(finished_at=long_ago)
    WorkflowRun.objects.filter(pk=gave_up.pk).update(status=RunStatus.COMPENSATION_FAILED)
    OutboxMessage.objects.update(published_at=long_ago)

    assert prune_finished_runs() == 1

    remaining = set(WorkflowRun.objects.values_list("business_key", flat=True))
    assert remaining == {"prune:parent", nap.business_key, "prune:recent", "prune:gave-up"}
    assert not WorkflowStep.objects.filter(run_id=done.pk).exists()
    assert not OutboxMessage.objects.exists()
