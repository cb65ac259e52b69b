"""The outbox: written with the change, published after commit, relayed when that failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from tests.workflows.helpers import fresh, rewind_outbox
from workflows.engine import Context, enqueue, start, workflow
from workflows.engine.outbox import relay
from workflows.models import OutboxMessage, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@workflow("test.one_step")
def one_step(ctx: Context) -> str:
    return ctx.step("only", lambda: "done")


def test_a_failed_after_commit_publish_is_delivered_by_the_relay(broker) -> None:
    # given a broker that is down when the run starts
    broker.mode = "fail"
    run = start("test.one_step", "order:outbox")

    # then the run and its message are committed, the publish is recorded as failed
    assert broker.failures == 1
    message = OutboxMessage.objects.get()
    assert message.task_name == "workflows.tasks.advance_run" and message.args == [run.pk]
    assert message.published_at is None and message.attempts == 1
    assert "broker unreachable" in message.last_error
    assert fresh(run).status == RunStatus.PENDING

    # the relay leaves it alone during the grace period, and retries while the broker is down
    assert relay() == 0
    rewind_outbox(seconds=11)
    assert relay() == 0
    message.refresh_from_db()
    assert message.attempts == 2 and message.available_at > timezone.now() + timedelta(seconds=50)

    # when the broker is back, the relay delivers it, once
    broker.mode = "deliver"
    rewind_outbox(seconds=61)
    assert relay() == 1
    assert fresh(run).status == RunStatus.COMPLETED
    message.refresh_from_db()
    assert message.published_at is not None and message.attempts == 3
    assert relay() == 0


def test_enqueue_is_idempotent_on_its_dedup_key_and_needs_a_transaction(broker) -> None:
    broker.mode = "hold"
    with transaction.atomic():
        first = enqueue("workflows.tasks.relay_outbox", [], dedup_key="relay:once")
        second = enqueue("workflows.tasks.relay_outbox", [], dedup_key="relay:once")

    assert first.pk == second.pk
    assert broker.held == [("workflows.tasks.relay_outbox", [])]
    with pytest.raises(AssertionError, match="caller's transaction"):
        enqueue("workflows.tasks.relay_outbox", [], dedup_key="relay:outside")


def test_nothing_is_published_for_a_rolled_back_transaction(broker) -> None:
    broker.mode = "hold"
    with pytest.raises(ValueError, match="changed my mind"), transaction.atomic():
        enqueue("workflows.tasks.relay_outbox", [], dedup_key="relay:rolled-back")
        raise ValueError("changed my mind")

    assert broker.held == []
    assert not OutboxMessage.objects.exists()
