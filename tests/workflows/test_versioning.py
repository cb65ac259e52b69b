"""A run finishes on the version it started with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workflows.helpers import fresh, rewind, steps
from workflows.engine import Context, advance, start, workflow
from workflows.engine.sweepers import wake_due_runs
from workflows.models import RunStatus, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)


@workflow("test.versioned", version=1)
def versioned_v1(ctx: Context) -> str:
    ctx.step("reserve", lambda: "reserved")
    ctx.sleep("clearing period", timedelta(days=2))
    ctx.step("settle", lambda: "settled")
    return "v1"


def test_a_version_1_run_resumes_on_version_1_after_version_2_is_deployed() -> None:
    # given a version-1 run asleep in the middle
    old = fresh(start("test.versioned", "settlement:old"))
    assert (old.version, old.status) == (1, RunStatus.WAITING)

    # when version 2 is deployed, with its steps in another order
    @workflow("test.versioned", version=2)
    def versioned_v2(ctx: Context) -> str:
        ctx.step("check balance", lambda: "ok")
        ctx.step("settle", lambda: "settled")
        return "v2"

    # then new runs take version 2
    new = fresh(start("test.versioned", "settlement:new"))
    assert (new.version, new.status, new.output) == (2, RunStatus.COMPLETED, "v2")

    # and the old run wakes up on its own path
    rewind(old, seconds=2 * 86400 + 1)
    wake_due_runs()
    old = fresh(old)
    assert (old.status, old.output) == (RunStatus.COMPLETED, "v1")
    assert [s.name for s in steps(old)] == ["reserve", "clearing period", "settle"]


def test_a_worker_without_the_runs_version_leaves_it_for_one_that_has_it() -> None:
    # A rolling deploy: the run was started by newer code than this worker's.
    run = WorkflowRun.objects.create(
        workflow_type="test.versioned", version=7, business_key="from-the-future", wake_at=timezone.now()
    )

    assert advance(run.pk) is True

    run = fresh(run)
    assert run.status == RunStatus.WAITING and run.lease_owner == ""
    assert run.wake_at > timezone.now() + timedelta(seconds=30)
    assert steps(run) == []
