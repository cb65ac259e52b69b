"""Prometheus metrics at /metrics: counters from the engine, backlog gauges from the database."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from ticketing.exceptions import SoldOut
from workflows.engine import Context, start, workflow
from workflows.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def _refuse() -> None:
    raise SoldOut()


@workflow("test.metered_ok")
def metered_ok(ctx: Context) -> str:
    return ctx.step("work", lambda: "ok")


@workflow("test.metered_undo")
def metered_undo(ctx: Context) -> None:
    ctx.step("work", lambda: "ok", compensate=lambda r: None)
    ctx.step("refused", _refuse)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_runs_steps_and_compensations(client) -> None:
    before = {
        "started": _sample("workflow_runs_started_total", workflow_type="test.metered_ok"),
        "completed": _sample("workflow_runs_finished_total", workflow_type="test.metered_ok", status="completed"),
        "compensated": _sample("workflow_runs_finished_total", workflow_type="test.metered_undo", status="compensated"),
        "errors": _sample(
            "workflow_step_attempts_total", workflow_type="test.metered_undo", kind="action", outcome="error"
        ),
        "undone": _sample("workflow_compensations_total", workflow_type="test.metered_undo", outcome="completed"),
        "durations": _sample(
            "workflow_run_duration_seconds_count", workflow_type="test.metered_ok", status="completed"
        ),
    }

    start("test.metered_ok", "m:1")
    start("test.metered_ok", "m:2")
    start("test.metered_undo", "m:3")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert 'workflow_runs_finished_total{status="completed",workflow_type="test.metered_ok"}' in body
    assert "workflow_step_duration_seconds_bucket" in body
    assert _sample("workflow_runs_started_total", workflow_type="test.metered_ok") == before["started"] + 2
    assert (
        _sample("workflow_runs_finished_total", workflow_type="test.metered_ok", status="completed")
        == before["completed"] + 2
    )
    assert (
        _sample("workflow_runs_finished_total", workflow_type="test.metered_undo", status="compensated")
        == before["compensated"] + 1
    )
    assert (
        _sample("workflow_step_attempts_total", workflow_type="test.metered_undo", kind="action", outcome="error")
        == before["errors"] + 1
    )
    assert (
        _sample("workflow_compensations_total", workflow_type="test.metered_undo", outcome="completed")
        == before["undone"] + 1
    )
    assert (
        _sample("workflow_run_duration_seconds_count", workflow_type="test.metered_ok", status="completed")
        == before["durations"] + 2
    )


def test_backlog_gauges_come_from_the_database(client, broker) -> None:
    # given two runs whose start messages never reached the broker, long ago
    broker.mode = "fail"
    start("test.metered_ok", "m:stuck-1")
    start("test.metered_ok", "m:stuck-2")
    from datetime import timedelta

    from django.db.models import F

    from workflows.models import WorkflowRun

    WorkflowRun.objects.update(wake_at=F("wake_at") - timedelta(minutes=10))
    OutboxMessage.objects.update(created_at=F("created_at") - timedelta(minutes=10))

    body = client.get("/metrics").content.decode()

    assert "workflow_runs_overdue 2.0" in body
    assert 'workflow_runs_active{status="pending",workflow_type="test.metered_ok"} 2.0' in body
    assert "workflow_outbox_pending 2.0" in body
    age = next(line for line in body.splitlines() if line.startswith("workflow_outbox_oldest_age_seconds "))
    assert 600 <= float(age.split()[1]) < 700


def test_metrics_can_require_a_token(client, settings) -> None:
    settings.METRICS_TOKEN = "s3cret"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
