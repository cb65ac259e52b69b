"""The payment state services, called directly (as the workflows layer may):
idempotent, forward-only, and their signals only ever describe committed state."""

from __future__ import annotations

import pytest
from django.db import transaction

from payments.exceptions import PaymentAmountMismatch, PaymentReferenceConflict
from payments.models import Payment, PaymentSessionStatus, PaymentStatus
from payments.services import (
    payment_mark_cancelled,
    payment_mark_failed,
    payment_mark_pending,
    payment_mark_succeeded,
)
from payments.signals import payment_succeeded
from ticketing.models import AuditLogEntry


@pytest.fixture
def payment(sandbox_session) -> Payment:
    return sandbox_session.payment


def succeed(payment: Payment, **kwargs):
    return payment_mark_succeeded(payment_id=payment.pk, amount_cents=2500, currency="EUR", **kwargs)


def test_each_change_happens_once(payment, django_capture_on_commit_callbacks, signal_log):
    with django_capture_on_commit_callbacks(execute=True):
        assert payment_mark_pending(payment_id=payment.pk, provider_payment_id="sbx_pi_1")[1] is True
        assert payment_mark_pending(payment_id=payment.pk)[1] is False
        assert succeed(payment, provider_payment_id="sbx_pi_1")[1] is True
        assert succeed(payment)[1] is False
    assert signal_log.names() == ["payment_pending", "payment_succeeded"]


@pytest.mark.parametrize(
    "late",
    [
        lambda p: payment_mark_pending(payment_id=p.pk),
        lambda p: payment_mark_failed(payment_id=p.pk, failure_code="card_declined"),
        lambda p: payment_mark_cancelled(payment_id=p.pk),
    ],
)
def test_nothing_moves_a_succeeded_payment_back(payment, late):
    succeed(payment)
    updated, changed = late(payment)
    assert (updated.status, changed) == (PaymentStatus.SUCCEEDED, False)
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


def test_money_that_arrives_after_we_gave_up_is_still_recorded(payment, sandbox_session):
    payment_mark_cancelled(payment_id=payment.pk, reason="hold expired")
    sandbox_session.refresh_from_db()
    assert sandbox_session.status == PaymentSessionStatus.EXPIRED

    updated, changed = succeed(payment)

    assert (updated.status, changed, updated.captured_cents) == (PaymentStatus.SUCCEEDED, True, 2500)
    sandbox_session.refresh_from_db()
    assert sandbox_session.status == PaymentSessionStatus.COMPLETE


def test_another_amount_or_payment_id_is_refused_and_changes_nothing(payment):
    with pytest.raises(PaymentAmountMismatch):
        payment_mark_succeeded(payment_id=payment.pk, amount_cents=2499, currency="EUR")
    with pytest.raises(PaymentAmountMismatch):
        payment_mark_succeeded(payment_id=payment.pk, amount_cents=2500, currency="USD")
    payment_mark_pending(payment_id=payment.pk, provider_payment_id="sbx_pi_1")
    with pytest.raises(PaymentReferenceConflict):
        succeed(payment, provider_payment_id="sbx_pi_2")
    payment.refresh_from_db()
    assert (payment.status, payment.provider_payment_id, payment.captured_cents) == ("pending", "sbx_pi_1", 0)


def test_a_rolled_back_change_sends_no_signal_and_leaves_no_audit_row(
    payment, django_capture_on_commit_callbacks, signal_log
):
    audit_rows = AuditLogEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ZeroDivisionError), transaction.atomic():
        succeed(payment)
        _ = 1 / 0
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.CREATED
    assert AuditLogEntry.objects.count() == audit_rows
    assert signal_log.calls == []


def test_a_failing_receiver_neither_undoes_the_change_nor_starves_the_others(
    payment, django_capture_on_commit_callbacks, signal_log
):
    def broken(sender, **kwargs):
        raise RuntimeError("a receiver bug")

    payment_succeeded.connect(broken, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            succeed(payment)
    finally:
        payment_succeeded.disconnect(broken)
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
