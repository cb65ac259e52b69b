"""Opening and closing payment sessions: idempotent, never inside a caller's
transaction, and "ask the provider before releasing an expired hold"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from payments.exceptions import (
    IdempotencyKeyReused,
    OrderNotPayable,
    ProviderRejected,
    ProviderUnavailable,
    ProviderUnknown,
)
from payments.models import (
    Payment,
    PaymentSession,
    PaymentSessionStatus,
    PaymentStatus,
    SandboxSession,
)
from payments.providers.base import ProviderStatus, SessionRequest
from payments.providers.sandbox import SandboxProvider
from payments.sandbox import gateway
from payments.selectors import payment_for_order, payment_list_succeeded_for_unpaid_orders
from payments.services import payment_session_create, payment_session_expire, payment_status_fetch
from tests.payments.factories import make_order
from ticketing.exceptions import InvalidInput
from ticketing.models import AuditLogEntry, Order, OrderStatus


def test_a_session_is_opened_at_the_sandbox(order):
    session = payment_session_create(
        order=order,
        provider="sandbox",
        idempotency_key="checkout:1",
        success_url="https://tickets.example/orders/x/",
    )

    assert (session.status, session.amount_cents, session.currency) == (PaymentSessionStatus.OPEN, 2500, "EUR")
    assert session.expires_at == order.expires_at
    sandbox = SandboxSession.objects.get()
    assert session.provider_session_id == sandbox.session_id
    assert session.payment_url == f"https://tickets.example/pay/sandbox/{sandbox.token}/"
    assert (sandbox.amount_cents, sandbox.order_reference, sandbox.session_reference) == (
        2500,
        order.code,
        session.reference,
    )
    assert sandbox.success_url == "https://tickets.example/orders/x/"
    payment = Payment.objects.get()
    assert (payment.session_id, payment.order_id, payment.status) == (session.pk, order.pk, PaymentStatus.CREATED)
    audit = AuditLogEntry.objects.get(object_id=str(session.pk), content_type__model="paymentsession")
    assert (audit.source_state, audit.target_state) == ("created", "open")


def _writes(queries: CaptureQueriesContext) -> list[tuple[str, str]]:
    """(statement, table) of every write captured."""
    writes = []
    for query in queries.captured_queries:
        words = query["sql"].replace('"', "").split()
        if words[0] in ("INSERT", "DELETE"):
            writes.append((words[0], words[2]))
        elif words[0] == "UPDATE":
            writes.append((words[0], words[1]))
    return writes


def _opening_audit(session: PaymentSession) -> list[tuple[str, str, str, str, str, int | None]]:
    return list(
        AuditLogEntry.objects.filter(object_id=str(session.pk), content_type__model="paymentsession").values_list(
            "transition", "source_state", "target_state", "reason", "actor_repr", "organization_id"
        )
    )


def test_an_in_process_session_is_written_once_already_open_with_the_audit_row_of_its_opening(order, monkeypatch):
    # when: the sandbox (in process) opens a session
    with CaptureQueriesContext(connection) as queries:
        session = payment_session_create(order=order, provider="sandbox", idempotency_key="k")

    # then: our session is inserted open, with the sandbox's id and URL, and never updated
    assert _writes(queries) == [
        ("INSERT", "payments_paymentsession"),
        ("INSERT", "payments_payment"),
        ("INSERT", "payments_sandboxsession"),
        ("INSERT", "ticketing_auditlogentry"),
    ]
    stored = PaymentSession.objects.get()
    sandbox = SandboxSession.objects.get()
    assert (stored.status, stored.provider_session_id, stored.payment_url, stored.expires_at) == (
        PaymentSessionStatus.OPEN,
        sandbox.session_id,
        f"https://tickets.example/pay/sandbox/{sandbox.token}/",
        sandbox.expires_at,
    )
    assert (session.status, session.provider_session_id, session.payment_url, session.created_at) == (
        stored.status,
        stored.provider_session_id,
        stored.payment_url,
        stored.created_at,
    )
    assert sandbox.session_reference == stored.reference

    # ...and its audit trail is the one the two phases leave (the session
    # inserted created, then opened): the created -> open transition, once
    two_phase_order = make_order(organization=order.organization)
    monkeypatch.setattr(SandboxProvider, "in_process", False)
    two_phase = payment_session_create(order=two_phase_order, provider="sandbox", idempotency_key="k2")
    assert _opening_audit(session) == _opening_audit(two_phase)
    assert _opening_audit(session) == [
        ("open", "created", "open", "opened at sandbox", "system", order.organization_id)
    ]


def test_the_same_key_returns_the_same_session(order):
    first = payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    with CaptureQueriesContext(connection) as queries:
        again = payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    assert again.pk == first.pk
    assert (again.status, again.payment_url) == (PaymentSessionStatus.OPEN, first.payment_url)
    assert (PaymentSession.objects.count(), Payment.objects.count(), SandboxSession.objects.count()) == (1, 1, 1)
    # The insert under the key found the row: no sandbox session drawn for the replay is written.
    assert _writes(queries) == [("INSERT", "payments_paymentsession")]
    assert len(_opening_audit(first)) == 1


def test_a_sandbox_key_used_before_without_our_session_refuses_the_new_one(order):
    # given: the sandbox has a session under the key that none of ours names
    gateway.sandbox_session_create(
        request=SessionRequest(
            reference="ps_someone_else",
            order_code=order.code,
            amount_cents=2500,
            currency="EUR",
            description="",
            buyer_email="",
            success_url="",
            cancel_url="",
            expires_at=order.expires_at,
            created_at=order.created_at,
        ),
        idempotency_key="k",
    )

    # when / then: ours is refused and nothing of it is written
    with pytest.raises(ProviderRejected), transaction.atomic():
        payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    assert not PaymentSession.objects.exists()
    assert not Payment.objects.exists()
    assert SandboxSession.objects.count() == 1


def test_an_in_process_session_left_created_is_resumed_with_the_same_key(order, monkeypatch):
    # given: a sandbox session left created, as the two-phase way leaves one
    # when the provider call fails
    def unavailable(*args: object, **kwargs: object) -> None:
        raise ProviderUnavailable()

    monkeypatch.setattr(SandboxProvider, "in_process", False)
    monkeypatch.setattr(SandboxProvider, "create_session", unavailable)
    with pytest.raises(ProviderUnavailable):
        payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    assert PaymentSession.objects.get().status == PaymentSessionStatus.CREATED
    monkeypatch.undo()

    # when
    session = payment_session_create(order=order, provider="sandbox", idempotency_key="k")

    # then
    assert session.status == PaymentSessionStatus.OPEN
    assert session.provider_session_id == SandboxSession.objects.get().session_id
    assert PaymentSession.objects.get().status == PaymentSessionStatus.OPEN
    assert len(_opening_audit(session)) == 1


def test_a_key_reused_for_another_order_or_provider_is_refused(order, stripe_http):
    payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        payment_session_create(order=make_order(), provider="sandbox", idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        payment_session_create(order=order, provider="stripe", idempotency_key="k")
    assert PaymentSession.objects.count() == 1
    assert stripe_http.requests == []


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: make_order(status=OrderStatus.CANCELLED), OrderNotPayable),
        (lambda: make_order(status=OrderStatus.PAID), OrderNotPayable),
        (lambda: make_order(total_cents=0), OrderNotPayable),
    ],
)
def test_orders_that_cannot_be_paid_are_refused(db, make, error):
    with pytest.raises(error):
        payment_session_create(order=make(), provider="sandbox", idempotency_key="k")
    assert not PaymentSession.objects.exists()
    assert not SandboxSession.objects.exists()


def test_bad_arguments_are_refused_before_anything_is_written(order):
    with pytest.raises(ProviderUnknown):
        payment_session_create(order=order, provider="paypal", idempotency_key="k")
    with pytest.raises(InvalidInput):
        payment_session_create(order=order, provider="sandbox", idempotency_key="")
    with pytest.raises(InvalidInput):
        payment_session_create(
            order=make_order(expires_in=-timedelta(minutes=1)), provider="sandbox", idempotency_key="k"
        )
    assert not PaymentSession.objects.exists()


def test_a_disabled_provider_is_unknown(order, settings):
    settings.PAYMENT_PROVIDERS = ("stripe",)
    with pytest.raises(ProviderUnknown):
        payment_session_create(order=order, provider="sandbox", idempotency_key="k")


def test_providers_are_never_called_inside_a_callers_transaction(order, monkeypatch):
    # A provider behind a network (the sandbox, pretending to be one).
    monkeypatch.setattr(SandboxProvider, "in_process", False)
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    assert not SandboxSession.objects.exists()


def test_an_in_process_provider_opens_its_session_in_the_callers_transaction(order):
    # The sandbox lives in our database: its session commits (or rolls back)
    # with the caller's transaction.
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        session = payment_session_create(order=order, provider="sandbox", idempotency_key="k")
        assert session.status == PaymentSessionStatus.OPEN and session.payment_url
        1 / 0  # noqa: B018 - the caller fails after the session was opened
    assert not SandboxSession.objects.exists()
    assert not PaymentSession.objects.exists()

    session = payment_session_create(order=order, provider="sandbox", idempotency_key="k")
    assert session.status == PaymentSessionStatus.OPEN
    assert SandboxSession.objects.count() == 1


def test_a_refusal_leaves_the_callers_transaction_usable(order):
    # The in-process session has no savepoint of its own: its refusals must
    # have written nothing and be raised outside its block.
    with transaction.atomic():
        payment_session_create(order=order, provider="sandbox", idempotency_key="k")
        with pytest.raises(OrderNotPayable):
            payment_session_create(
                order=make_order(status=OrderStatus.CANCELLED), provider="sandbox", idempotency_key="other"
            )
        with pytest.raises(IdempotencyKeyReused):
            payment_session_create(order=make_order(), provider="sandbox", idempotency_key="k")
        assert PaymentSession.objects.count() == 1  # still usable

    assert PaymentSession.objects.get().status == PaymentSessionStatus.OPEN
    assert SandboxSession.objects.count() == 1


def test_the_order_is_read_again_unless_the_caller_vouches_for_it(order):
    # given: the order was cancelled since the caller read it
    stale = Order.objects.get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)

    # then: its state is read again, and the session refused
    with pytest.raises(OrderNotPayable):
        payment_session_create(order=stale, provider="sandbox", idempotency_key="k")
    assert not PaymentSession.objects.exists()

    # given: an order the caller has just made, in its own transaction
    fresh = make_order()
    with CaptureQueriesContext(connection) as captured:
        session = payment_session_create(
            order=fresh, provider="sandbox", idempotency_key="fresh", order_is_current=True
        )

    # then: it is not read again
    assert session.status == PaymentSessionStatus.OPEN
    assert not [q for q in captured.captured_queries if 'FROM "ticketing_order"' in q["sql"]]


def test_expiring_an_unpaid_session_closes_it_everywhere(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = payment_session_expire(session_id=sandbox_session.pk, reason="hold expired")

    assert payment.status == PaymentStatus.CANCELLED
    sandbox_session.refresh_from_db()
    assert sandbox_session.status == PaymentSessionStatus.EXPIRED
    assert SandboxSession.objects.get().status == "expired"
    # Once by our call, and the sandbox's own "cancelled" webhook is then a no-op.
    assert signal_log.names() == ["payment_cancelled"]
    # The buyer can no longer pay.
    response = client.post(pay_url(sandbox_session), {"card_number": "4242424242424242", "action": "pay"})
    assert response.status_code == 410
    # Idempotent.
    assert payment_session_expire(session_id=sandbox_session.pk).status == PaymentStatus.CANCELLED


def test_expiring_a_session_the_buyer_just_paid_records_the_payment(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    # The buyer paid, but the webhook has not arrived (the worker is down).
    with django_capture_on_commit_callbacks(execute=False):
        client.post(pay_url(sandbox_session), {"card_number": "4242424242424242", "action": "pay"})

    with django_capture_on_commit_callbacks(execute=True):
        payment = payment_session_expire(session_id=sandbox_session.pk)

    assert (payment.status, payment.captured_cents) == (PaymentStatus.SUCCEEDED, 2500)
    assert signal_log.names() == ["payment_succeeded"]
    assert list(payment_list_succeeded_for_unpaid_orders()) == [payment]
    assert payment_for_order(order_id=sandbox_session.order_id) == payment


def test_status_fetch_reports_open_and_then_the_delayed_payment(
    client, sandbox_session, pay_url, django_capture_on_commit_callbacks
):
    payment, status = payment_status_fetch(payment_id=sandbox_session.payment.pk)
    assert (payment.status, status.status) == (PaymentStatus.CREATED, ProviderStatus.OPEN)

    with django_capture_on_commit_callbacks(execute=False):
        client.post(pay_url(sandbox_session), {"card_number": "4000000000000077", "action": "pay"})
    payment, status = payment_status_fetch(payment_id=sandbox_session.payment.pk)
    assert (payment.status, status.status) == (PaymentStatus.PENDING, ProviderStatus.PENDING)

    SandboxSession.objects.update(settles_at=SandboxSession.objects.get().created_at)
    payment, status = payment_status_fetch(payment_id=sandbox_session.payment.pk)
    assert (payment.status, status.status) == (PaymentStatus.SUCCEEDED, ProviderStatus.SUCCEEDED)


def test_a_session_the_provider_never_confirmed_is_cancelled_without_asking(order):
    session = PaymentSession.objects.create(
        organization=order.organization,
        order=order,
        provider="sandbox",
        amount_cents=2500,
        currency="EUR",
        expires_at=order.expires_at,
        idempotency_key="crashed",
    )
    payment = Payment.objects.create(
        organization=order.organization,
        order=order,
        session=session,
        provider="sandbox",
        amount_cents=2500,
        currency="EUR",
    )
    assert payment_status_fetch(payment_id=payment.pk) == (payment, None)
    assert payment_session_expire(session_id=session.pk).status == PaymentStatus.CANCELLED
