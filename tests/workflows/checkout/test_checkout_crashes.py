"""A worker SIGKILLed in the middle of a checkout leaves it resumable; the
resumed run reserves once, sells once and sends one e-mail."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.workflows.checkout.conftest import complete_run, pay
from tests.workflows.helpers import advance_until_killed, fresh, rewind, wait_for_row_release
from ticketing.models import CapacityHold, EmailDelivery, Order, OrderStatus, Ticket
from workflows.checkout import complete as complete_module
from workflows.checkout.start import WORKFLOW, checkout_input, checkout_outcome
from workflows.engine import start
from workflows.engine.leases import lease_duration
from workflows.engine.sweepers import reap_expired_leases
from workflows.models import RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres", "check_inventory")]


def _resume(run) -> None:
    assert wait_for_row_release(run) is None
    rewind(run, seconds=lease_duration().total_seconds() + 1)
    assert reap_expired_leases() == 1  # eager Celery: the run advances right here


def test_a_worker_killed_mid_checkout_resumes_and_sells_once(ga, broker, monkeypatch):
    # given a checkout nobody in this process advances (a request that queued
    # it and died), and completions left to the workers too
    broker.mode = "hold"
    data, cart = checkout_input(
        event_id=ga.event_id,
        buyer_name="Grace Hopper",
        buyer_email="grace@example.com",
        tickets=[{"ticket_type": ga.pk, "quantity": 2}],
    )
    run = start(WORKFLOW, f"order:{data['order_code']}", data, organization=cart.organization_id)
    monkeypatch.setattr(complete_module, "run_in_one_transaction", lambda *args, **kwargs: None)
    monkeypatch.setattr(complete_module, "start_claimed", lambda *args, **kwargs: (start(*args, **kwargs), None))

    # when a worker dies right after placing the order, before recording it
    advance_until_killed(run, step="place_order")
    wait_for_row_release(run)
    ga.refresh_from_db()
    assert ga.held == 0  # the order and its reservation died with their record
    assert not Order.objects.exists()

    # then the resumed run reserves exactly once and opens the payment page
    broker.mode = "deliver"
    _resume(run)
    started = checkout_outcome(fresh(run))
    ga.refresh_from_db()
    assert ga.held == 2
    assert CapacityHold.objects.count() == 1

    # when the completion's worker dies after issuing tickets, before recording it
    broker.mode = "hold"
    pay(started)
    completion = complete_run(started.order_code)
    advance_until_killed(completion, step="complete_order")
    wait_for_row_release(completion)
    assert not Ticket.objects.exists()
    assert Order.objects.get(code=started.order_code).status == OrderStatus.PENDING

    # then the resumed completion sells once, with one e-mail
    broker.mode = "deliver"
    _resume(completion)
    assert fresh(completion).status == RunStatus.COMPLETED
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert Ticket.objects.filter(order=order).count() == 2
    assert EmailDelivery.objects.filter(order=order).count() == 1
    assert len(mail.outbox) == 1
    ga.refresh_from_db()
    assert (ga.sold, ga.held) == (2, 0)
