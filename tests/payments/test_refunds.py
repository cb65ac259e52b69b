"""Refunds never exceed what was captured, even when they race, and a retried
request never refunds twice."""

from __future__ import annotations

import pytest

from payments.exceptions import (
    IdempotencyKeyReused,
    InvalidRefundAmount,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from payments.models import Payment, PaymentStatus, Refund, RefundStatus, SandboxRefund, SandboxSession
from payments.services import payment_session_create, refund_create, webhook_receive
from tests.concurrency import run_concurrently
from tests.payments.factories import SANDBOX_SECRET, hmac_header, make_order, sandbox_event
from ticketing.models import AuditLogEntry


def pay(session) -> Payment:
    """Deliver a signed success webhook for `session` and mark the sandbox paid."""
    SandboxSession.objects.filter(session_id=session.provider_session_id).update(status="succeeded")
    body = sandbox_event(session, event_id=f"evt_paid_{session.pk}")
    webhook_receive(
        provider="sandbox", raw_body=body, headers={"Sandbox-Signature": hmac_header(body=body, secret=SANDBOX_SECRET)}
    )
    payment = Payment.objects.get(session=session)
    assert payment.status == PaymentStatus.SUCCEEDED
    return payment


@pytest.fixture
def paid(sandbox_session) -> Payment:
    return pay(sandbox_session)


def test_partial_then_full_refund(paid, signal_log, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = refund_create(payment=paid, amount_cents=1000, idempotency_key="r1", reason="one ticket")
    paid.refresh_from_db()
    assert (first.status, first.amount_cents, first.currency) == (RefundStatus.SUCCEEDED, 1000, "EUR")
    assert first.provider_refund_id == SandboxRefund.objects.get().refund_id
    assert (paid.status, paid.refunded_cents, paid.refund_pending_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 1000, 0)

    with django_capture_on_commit_callbacks(execute=True):
        second = refund_create(payment=paid, amount_cents=1500, idempotency_key="r2")
    paid.refresh_from_db()
    assert second.status == RefundStatus.SUCCEEDED
    assert (paid.status, paid.refunded_cents, paid.refundable_cents) == (PaymentStatus.REFUNDED, 2500, 0)
    assert SandboxSession.objects.get().refunded_cents == 2500

    assert signal_log.names() == ["refund_succeeded", "refund_succeeded"]
    assert signal_log.of("refund_succeeded")[1] == {
        "sender": Refund,
        "refund_id": second.pk,
        "payment_id": paid.pk,
        "order_id": paid.order_id,
        "organization_id": paid.organization_id,
        "provider": "sandbox",
        "amount_cents": 1500,
        "currency": "EUR",
        "payment_status": "refunded",
        "refunded_cents": 2500,
    }
    transitions = AuditLogEntry.objects.filter(object_id=str(paid.pk), content_type__model="payment")
    assert list(transitions.order_by("id").values_list("target_state", flat=True)) == [
        "succeeded",
        "partially_refunded",
        "refunded",
    ]


def test_more_than_is_left_is_refused_and_changes_nothing(paid):
    refund_create(payment=paid, amount_cents=2000, idempotency_key="r1")
    with pytest.raises(RefundExceedsCaptured) as excinfo:
        refund_create(payment=paid, amount_cents=501, idempotency_key="r2")
    assert excinfo.value.detail["refundable_cents"] == 500
    paid.refresh_from_db()
    assert (paid.refunded_cents, paid.refund_pending_cents, Refund.objects.count()) == (2000, 0, 1)


def test_the_same_key_returns_the_same_refund_and_refunds_once(paid):
    first = refund_create(payment=paid, amount_cents=700, idempotency_key="refund:order-1")
    again = refund_create(payment=paid, amount_cents=700, idempotency_key="refund:order-1")
    assert again.pk == first.pk
    assert SandboxRefund.objects.count() == 1
    paid.refresh_from_db()
    assert paid.refunded_cents == 700


def test_a_key_reused_for_another_amount_or_payment_is_refused(paid, order):
    refund_create(payment=paid, amount_cents=700, idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        refund_create(payment=paid, amount_cents=800, idempotency_key="k")
    other = pay(payment_session_create(order=make_order(), provider="sandbox", idempotency_key="other"))
    with pytest.raises(IdempotencyKeyReused):
        refund_create(payment=other, amount_cents=700, idempotency_key="k")
    other.refresh_from_db()
    assert other.refunded_cents == 0


@pytest.mark.parametrize("amount", [0, -100, 10.5, True, "100"])
def test_invalid_amounts_are_refused(paid, amount):
    with pytest.raises(InvalidRefundAmount):
        refund_create(payment=paid, amount_cents=amount, idempotency_key="bad")
    assert not Refund.objects.exists()


def test_an_unpaid_payment_cannot_be_refunded(sandbox_session):
    with pytest.raises(RefundNotAllowed):
        refund_create(payment=sandbox_session.payment, amount_cents=100, idempotency_key="r")
    assert not Refund.objects.exists()


def test_a_refund_the_provider_declines_is_failed_and_releases_its_reservation(
    paid, signal_log, django_capture_on_commit_callbacks
):
    # Someone refunded most of it directly at the provider's dashboard.
    SandboxSession.objects.update(refunded_cents=2000)

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_create(payment=paid, amount_cents=1000, idempotency_key="r")

    assert (refund.status, refund.failure_code) == (RefundStatus.FAILED, "provider_rejected")
    paid.refresh_from_db()
    assert (paid.status, paid.refunded_cents, paid.refund_pending_cents) == (PaymentStatus.SUCCEEDED, 0, 0)
    assert signal_log.names() == ["refund_failed"]
    # Asking again with the same key reports the same failure; it does not retry.
    assert refund_create(payment=paid, amount_cents=1000, idempotency_key="r").status == RefundStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refunds_of_the_last_amount_exactly_one_wins(signal_log):
    payment = pay(payment_session_create(order=make_order(), provider="sandbox", idempotency_key="race"))
    refund_create(payment=payment, amount_cents=1000, idempotency_key="first")

    results = run_concurrently(
        [
            lambda: refund_create(payment=payment, amount_cents=1500, idempotency_key="left-a"),
            lambda: refund_create(payment=payment, amount_cents=1500, idempotency_key="left-b"),
        ]
    )

    winners = [refund for refund, exc in results if exc is None]
    losers = [exc for _, exc in results if exc is not None]
    assert len(winners) == 1 and winners[0].status == RefundStatus.SUCCEEDED
    assert len(losers) == 1 and isinstance(losers[0], RefundExceedsCaptured)
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents, payment.refund_pending_cents) == (PaymentStatus.REFUNDED, 2500, 0)
    assert Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 2
    assert SandboxSession.objects.get().refunded_cents == 2500
    # Outside a test transaction, signals go out as each change commits.
    assert signal_log.names() == ["payment_succeeded", "refund_succeeded", "refund_succeeded"]


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_refunds_never_exceed_the_captured_amount():
    payment = pay(payment_session_create(order=make_order(), provider="sandbox", idempotency_key="race"))

    results = run_concurrently(
        [(lambda i=i: refund_create(payment=payment, amount_cents=1000, idempotency_key=f"r{i}")) for i in range(6)]
    )

    assert sum(1 for _, exc in results if exc is None) == 2
    assert all(isinstance(exc, RefundExceedsCaptured) for _, exc in results if exc is not None)
    payment.refresh_from_db()
    assert (payment.refunded_cents, payment.refund_pending_cents) == (2000, 0)


@pytest.mark.django_db(transaction=True)
def test_the_same_refund_requested_twice_at_once_refunds_once():
    payment = pay(payment_session_create(order=make_order(), provider="sandbox", idempotency_key="race"))

    results = run_concurrently([lambda: refund_create(payment=payment, amount_cents=900, idempotency_key="same")] * 2)

    assert [exc for _, exc in results] == [None, None]
    assert results[0][0].pk == results[1][0].pk
    assert SandboxRefund.objects.count() == 1
    payment.refresh_from_db()
    assert payment.refunded_cents == 900
