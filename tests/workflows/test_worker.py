"""With a real Celery worker on Redis: messages through the broker, timers
through the database."""

from __future__ import annotations

import pytest
import redis
from django.db import connection

from tests.workflows.flows import FakeProvider, note_backend
from tests.workflows.helpers import WorkerProcess, fresh, rewind, steps, wait_until
from workflows.engine import signal, start
from workflows.engine.sweepers import wake_due_runs
from workflows.models import OutboxMessage, RunStatus

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_advances_a_run_to_completion(
    celery_worker: WorkerProcess, ticket_type, provider: FakeProvider, check_inventory
) -> None:
    # when a run starts in this (web) process, its message goes through Redis to the worker
    run = start("test.checkout_like", "order:worker", {"ticket_type": ticket_type.pk, "quantity": 2, "amount": 4000})
    assert wait_until(lambda: fresh(run).status == RunStatus.WAITING), celery_worker.output()[-3000:]
    assert [s.name for s in steps(run)] == ["reserve", "charge", "payment.confirmed"]

    # and the provider's webhook arrives as a signal
    signal(run, "payment.confirmed", {"event": "evt_9"}, dedup_key="evt_9")

    assert wait_until(lambda: fresh(run).status == RunStatus.COMPLETED), celery_worker.output()[-3000:]
    run = fresh(run)
    assert run.output["confirmation"] == {"event": "evt_9"}
    ticket_type.refresh_from_db()
    assert ticket_type.held == 2
    assert provider.charged_total() == 4000
    # the messages were published after commit, not left to the relay
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()


def test_redis_flushed_while_a_run_sleeps_the_sweeper_still_fires_it(
    celery_worker: WorkerProcess, test_redis: redis.Redis
) -> None:
    # given a run asleep on an hour-long timer
    run = start("test.nap", "nap:flush", {"seconds": 3600})
    assert wait_until(lambda: fresh(run).status == RunStatus.WAITING), celery_worker.output()[-3000:]

    # when Redis loses everything
    test_redis.flushdb()
    assert test_redis.dbsize() == 0

    # then, once the hour has passed, the beat's sweeper finds the timer in the database
    rewind(run, seconds=3601)
    assert wake_due_runs() == 1

    assert wait_until(lambda: fresh(run).status == RunStatus.COMPLETED), celery_worker.output()[-3000:]
    assert fresh(run).output == "woke up"


def test_the_worker_keeps_its_database_connection_across_tasks(
    celery_worker: WorkerProcess, test_redis: redis.Redis
) -> None:
    def backends(key: str, n: int) -> set[int]:
        assert wait_until(lambda: test_redis.llen(key) == n), celery_worker.output()[-3000:]
        return {int(pid) for pid in test_redis.lrange(key, 0, -1)}

    # when the worker runs five tasks
    for _ in range(5):
        note_backend.delay("before")

    # then one connection served them all (not one each, as Celery's fixup would have it)
    before = backends("before", 5)
    assert len(before) == 1

    # and when the database drops that connection (as a restart does)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [next(iter(before))])
    for _ in range(3):
        note_backend.delay("after")

    # then the next tasks still run, on one new connection
    after = backends("after", 3)
    assert len(after) == 1 and after != before
