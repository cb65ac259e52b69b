"""StartCheckout done whole in one transaction reads nothing twice: the rows
the cart read and the order it placed are used as they are. The recorded way
(after that pass failed) reads what it needs itself."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.exceptions import ProviderUnavailable
from payments.models import PaymentSession
from payments.providers.sandbox import SandboxProvider
from tests.workflows.checkout.conftest import buy_ga, checkout_run
from ticketing.models import Order, OrderStatus
from workflows.models import RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("check_inventory")]


def _tables_read(captured: CaptureQueriesContext) -> list[str]:
    """Every table a SELECT reads from, subqueries' too."""
    return sorted(
        table
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT")
        for table in re.findall(r'FROM "(\w+)"', q["sql"])
    )


def test_the_start_reads_the_cart_once_and_its_order_never(ga):
    buy_ga(ga, buyer=0)  # per-process caches (content types) are warm in a rush

    with CaptureQueriesContext(connection) as captured:
        started = buy_ga(ga, buyer=1)

    # the cart's reads come before the run's transaction, which reads nothing
    # and has no savepoint
    statements = [q["sql"] for q in captured.captured_queries]
    assert "ticketing_tickettype" in _tables_read(captured)
    assert not [sql for sql in statements[statements.index("BEGIN") :] if sql.startswith(("SELECT", "SAVEPOINT"))]
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PENDING
    session = PaymentSession.objects.get(order=order)
    assert (session.amount_cents, session.currency, session.payment_url) == (
        order.total_cents,
        order.currency,
        started.payment_url,
    )
    assert checkout_run(order.code).status == RunStatus.COMPLETED


def test_after_a_failed_pass_the_recorded_way_reads_the_order_itself(ga, monkeypatch):
    # given: the first attempt at the payment page fails (the one-transaction
    # pass is rolled back), the next one works
    attempts: list[str] = []
    plan_session = SandboxProvider.plan_session

    def flaky(self, request, *, idempotency_key):
        attempts.append(idempotency_key)
        if len(attempts) == 1:
            raise ProviderUnavailable("a hiccup")
        return plan_session(self, request, idempotency_key=idempotency_key)

    monkeypatch.setattr(SandboxProvider, "plan_session", flaky)

    # when
    with CaptureQueriesContext(connection) as captured:
        started = buy_ga(ga, buyer=1)

    # then: one order, with its session, opened by the recorded way
    assert len(attempts) == 2
    order = Order.objects.get()
    assert (order.code, order.status) == (started.order_code, OrderStatus.PENDING)
    assert PaymentSession.objects.get().order_id == order.pk
    assert PaymentSession.objects.get().payment_url == started.payment_url
    assert checkout_run(order.code).status == RunStatus.COMPLETED
    assert "ticketing_order" in _tables_read(captured)
