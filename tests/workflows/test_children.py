"""Child runs: parallel fan-out with fan-in, and a failing child compensating its parent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.helpers import fresh, steps
from ticketing.exceptions import SoldOut
from workflows.engine import Child, Context, Step, cancel, signal, start, workflow
from workflows.models import RunStatus, StepKind, StepStatus, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

undone: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    undone.clear()


@workflow("test.child_waits_for_go")
def child_waits_for_go(ctx: Context) -> int:
    go = ctx.wait_signal("go")
    return ctx.input["n"] * go["factor"]


@workflow("test.fan_out")
def fan_out(ctx: Context) -> dict[str, Any]:
    results = ctx.parallel(
        [
            Child("test.child_waits_for_go", f"{ctx.business_key}:a", {"n": 1}),
            Child("test.child_waits_for_go", f"{ctx.business_key}:b", {"n": 2}),
            Step("local", lambda: 100),
        ]
    )
    return {"results": results, "total": ctx.step("sum", lambda: sum(results))}


def _refuse() -> None:
    raise SoldOut()


@workflow("test.failing_child")
def failing_child(ctx: Context) -> None:
    ctx.step("child step", lambda: "x", compensate=lambda r: undone.append("child step"))
    ctx.step("child refusal", _refuse)


@workflow("test.parent_of_napping_child")
def parent_of_napping_child(ctx: Context) -> Any:
    ctx.step("parent step", lambda: "a", compensate=lambda r: undone.append("parent step"))
    return ctx.child("test.nap", f"{ctx.business_key}:nap")


@workflow("test.parent_of_failing_child")
def parent_of_failing_child(ctx: Context) -> str:
    ctx.step("parent step", lambda: "a", compensate=lambda r: undone.append("parent step"))
    ctx.child("test.failing_child", f"{ctx.business_key}:child")
    return ctx.step("after the child", lambda: "never")


def test_parallel_children_fan_in_when_all_have_finished() -> None:
    parent = start("test.fan_out", "settlement:1")

    # then both children run on their own and the parent waits for them
    parent = fresh(parent)
    assert parent.status == RunStatus.WAITING
    child_a, child_b = WorkflowRun.objects.filter(parent=parent).order_by("business_key")
    assert (child_a.status, child_b.status) == (RunStatus.WAITING, RunStatus.WAITING)
    group, branch_a, branch_b, local = steps(parent)
    assert (group.kind, group.status) == (StepKind.PARALLEL, StepStatus.WAITING)
    assert (branch_a.child_run_id, branch_b.child_run_id) == (child_a.pk, child_b.pk)
    assert local.status == StepStatus.COMPLETED

    # when the second child finishes first, the parent still waits for the other
    signal(child_b, "go", {"factor": 10}, dedup_key="go-b")
    assert fresh(child_b).status == RunStatus.COMPLETED
    assert fresh(parent).status == RunStatus.WAITING

    # and once the first finishes too, the parent continues with every result
    signal(child_a, "go", {"factor": 10}, dedup_key="go-a")
    parent = fresh(parent)
    assert parent.status == RunStatus.COMPLETED
    assert parent.output == {"results": [10, 20, 100], "total": 130}
    assert steps(parent)[0].status == StepStatus.COMPLETED
    assert steps(parent)[0].result == [10, 20, 100]


def test_a_failed_child_compensates_itself_then_its_parent() -> None:
    parent = fresh(start("test.parent_of_failing_child", "refund:1"))

    child = WorkflowRun.objects.get(parent=parent)
    assert child.status == RunStatus.COMPENSATED
    assert parent.status == RunStatus.COMPENSATED
    assert parent.error["code"] == "child_compensated"
    assert undone == ["child step", "parent step"]
    assert [s.name for s in steps(parent)] == [
        "parent step",
        "test.failing_child",
        "compensate:parent step",
    ]


def test_cancelling_a_parent_cancels_its_unfinished_child() -> None:
    parent = start("test.parent_of_napping_child", "transfer:1")
    child = WorkflowRun.objects.get(parent=parent)
    assert fresh(child).status == RunStatus.WAITING

    assert cancel(parent, reason="customer changed their mind") is True

    assert fresh(parent).status == RunStatus.CANCELLED
    assert fresh(child).status == RunStatus.CANCELLED
    assert undone == ["parent step"]
