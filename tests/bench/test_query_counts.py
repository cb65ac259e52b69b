"""The SQL statements of the two hot paths of a rush, pinned (PERFORMANCE.md:
each statement costs about 0.45 ms of machine CPU; 2 cores, 150 orders/s).

- checkout start: start_checkout for 2 general-admission tickets, as the web
  request runs it (the run is started and advanced in the request: no message
  to a worker);
- payment confirmation: what happens for a paid order until it is paid with
  tickets: the sandbox charges the card and, right after that commits,
  delivers its signed webhook to our endpoint (verify, record, mark the
  payment succeeded), which starts CompleteCheckout and does it right there
  (lock the order, mark it paid, convert the hold, issue the tickets, book the
  sale, record the e-mail).

Messages to Celery are captured instead of sent, so each phase is counted
alone, and the tests commit for real (transaction=True), so the transactions
are those of production: every BEGIN, COMMIT, SAVEPOINT and RELEASE counts as
a statement (Django logs them), as every one is a round trip. Caches are
warmed by one earlier order. If a change makes a path cheaper, lower the pin; raise it only
knowingly, with the reason in the commit message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.app.task import Task

from tests.factories import EventFactory, TicketTypeFactory
from tests.round_trips import counting_round_trips
from tests.workflows.checkout.conftest import buy_ga, pay
from ticketing.models import Order, OrderStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]

# Measured on PostgreSQL 15 (Django 5.2, psycopg 3) at 3c39ae8, where the pins
# were set (cc866ea had 82 and 112: the order-paid subscription lookup for
# outbound webhooks added one SELECT). BEGIN, COMMIT and SAVEPOINT/RELEASE are
# statements too (Django logs them): checkout start is 10 transactions and 8
# savepoints, payment confirmation 6 transactions and 15 savepoints.
# python -m bench.profile prints the statements of each path by kind and table.
#
# Then StartCheckout v2 and CompleteCheckout v2 (runs started and advanced by
# their caller, the order and its holds as one step, no waiting run to
# signal), the sandbox session in the step's transaction, set-wise hold
# conversion, the outbox insert as one statement, the lock timeout set per
# connection: 82 -> 41 and 113 + 23 -> 64 + 9. Then the webhook event row
# inserted with ON CONFLICT DO NOTHING and the e-mail's signing key read once
# per e-mail: 61 + 6. Then both runs done whole in one transaction by their
# caller (workflows.engine.one_transaction: no per-step transactions, fences
# or lease bookkeeping): 30 and 52. Then the payment session's and the
# sandbox's rows inserted with ON CONFLICT DO NOTHING on their idempotency
# keys instead of SELECT, SAVEPOINT, INSERT, RELEASE: checkout start 24.
# Then the sandbox delivers its webhook right after the charge commits, in
# the same process, without a Celery hop or reading the row back: payment
# confirmation now counts from the card's charge (5 statements of the
# sandbox's own) to the order paid: 56. Then the session and the payment
# locked in one statement by the webhook's match, with the order's code read
# along (no re-read of the order for its run, nor of the pair to lock it);
# the order locked once (mark paid gets the locked row); its lines read once
# and no seat holds looked for when it has no seats; one statement fewer to
# lock the holds' ticket types; no savepoint around marking the payment
# succeeded; the funnel's "paid" without BEGIN and COMMIT: 45.
# Checkout start: the event read with its ticket types in one statement; in
# the request's pass in one transaction, the cart's rows and the order just
# made handed to the steps instead of read again; no savepoint around the
# in-process payment session (refusals raised after the block): 24 -> 17.
# Then (sixth round) every statement of both paths cached or hand-written
# (ticketing.rows), bound on the server and prepared by psycopg, and the
# writes nobody answers deferred to travel with the transaction's next
# statement in one pipeline (ticketing.rows.deferred): Django logs each of
# them, so the pins count statements, and round trips are pinned apart
# (tests.round_trips: BEGIN and COMMIT are one each, a pipeline is one). The cart's read brings the fee rules
# along; the sale's entries find their accounts in their own INSERT; the
# sandbox's charge is one locking UPDATE; a payment event's row is inserted
# with its outcome (no UPDATE after); the funnel's "paid" travels in
# CompleteCheckout's transaction instead of an autocommit of its own:
# checkout start 17 -> 14 statements in 10 round trips, payment confirmation
# 45 -> 31 statements in 21 round trips, the e-mail 5 -> 3. Then reads sent
# together (the order with its lines, the holds' ticket types with the holds)
# and a transaction's BEGIN with its first statement: 9 and 16 round trips.
# Then the sandbox's charge and its delivery record commit without waiting
# for the disk (payments.sandbox: the charge is made durable by our
# endpoint's commit, or flushed): one statement more, SET LOCAL, sent with
# the charge: 32 in 16 round trips.
CHECKOUT_START_MAX_QUERIES = 14
CHECKOUT_START_MAX_ROUND_TRIPS = 9
PAYMENT_CONFIRMATION_MAX_QUERIES = 32
PAYMENT_CONFIRMATION_MAX_ROUND_TRIPS = 16
# The rest of the worker's work for one order, after it is paid: send the
# ticket e-mail (its delivery read with its order and event: 6 -> 5; claimed,
# read with its tickets, signing key and order in one statement, marked sent: 3;
# then by the e-mail bell's drain, whose claim of one comes back short: 3).
AFTER_CONFIRMATION_MAX_QUERIES = 3

Message = tuple[str, list[Any], dict[str, Any]]


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "https://tickets.example"


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """Celery messages, captured in order instead of published."""
    sent: list[Message] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append((self.name, list(args or []), dict(kwargs or {})))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return sent


def run_tasks(broker: list[Message], *, limit: int | None = None) -> list[str]:
    """Run the captured messages as a worker would, including the ones they
    send, until none is left (or `limit` ran). Returns the task names."""
    from celery import current_app

    ran: list[str] = []
    while broker and (limit is None or len(ran) < limit):
        name, args, kwargs = broker.pop(0)
        current_app.tasks[name](*args, **kwargs)
        ran.append(name)
    return ran


@pytest.fixture
def ga(organization: Any) -> Any:
    event = EventFactory(organization=organization)
    return TicketTypeFactory(event=event, capacity=1000, price_cents=2500, max_per_order=10)


@pytest.fixture
def warm(ga: Any, broker: list[Message]) -> Iterator[None]:
    """One whole order first: the event's signing key, fee policy and the
    other per-process caches exist, as in a running rush."""
    started = buy_ga(ga, buyer=0)
    pay(started)
    run_tasks(broker)
    assert Order.objects.get(code=started.order_code).status == OrderStatus.PAID
    broker.clear()
    yield


@pytest.mark.usefixtures("warm")
def test_checkout_start_statements(
    ga: Any, broker: list[Message], django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # when
    with (
        counting_round_trips(monkeypatch) as trips,
        django_assert_max_num_queries(CHECKOUT_START_MAX_QUERIES) as captured,
    ):
        started = buy_ga(ga, buyer=1)

    # then
    assert started.payment_url
    print(f"checkout start: {len(captured)} statements, {trips.count} round trips")
    assert trips.count <= CHECKOUT_START_MAX_ROUND_TRIPS
    assert broker == []  # nothing left to a worker


@pytest.mark.usefixtures("warm")
def test_payment_confirmation_statements(
    ga: Any, broker: list[Message], django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a checkout
    started = buy_ga(ga, buyer=1)

    # when: the card is paid on the pay page, and the sandbox delivers its
    # webhook right after that commit, which starts and completes CompleteCheckout
    with (
        counting_round_trips(monkeypatch) as trips,
        django_assert_max_num_queries(PAYMENT_CONFIRMATION_MAX_QUERIES) as captured,
    ):
        pay(started)

    # then: paid, with tickets, and only the e-mail left to a worker
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert order.tickets.count() == 2
    print(f"payment confirmation: {len(captured)} statements, {trips.count} round trips")
    assert trips.count <= PAYMENT_CONFIRMATION_MAX_ROUND_TRIPS
    assert [name for name, _, _ in broker] == ["ticketing.tasks.send_pending_emails"]

    with django_assert_max_num_queries(AFTER_CONFIRMATION_MAX_QUERIES) as rest:
        after = run_tasks(broker)
    print(f"after confirmation: {len(rest)} statements in {after}")
    assert order.email_deliveries.get().status == "sent"
