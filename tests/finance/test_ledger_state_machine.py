"""A Hypothesis state machine over the money's life: sell, capture now and
book later (reordered webhooks), partial and full refunds, chargebacks,
settlements, reserve releases, payouts that are paid or fail, and replays of
every posting. After every step: each transaction and the whole ledger
balance, stored balances equal a recomputation, no guarded account is
negative, refunds never exceed captures, payouts never exceed what became
available, and the ledger reconciles with payments, refunds and payouts."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import InsufficientFunds, RefundExceedsSale
from finance.models import JournalEntry, JournalTransaction, Payout, PayoutStatus, Settlement
from finance.selectors import account_balance_by_ref, ledger_differences, reconciliation_differences
from finance.services import (
    ledger_record_chargeback_closed,
    ledger_record_chargeback_opened,
    ledger_record_refund,
    ledger_record_sale,
    payout_mark_failed,
    payout_mark_in_transit,
    payout_mark_paid,
    payout_request,
    settlement_create,
    settlement_reserve_release,
)
from payments.models import Payment, Refund, RefundStatus
from tests.factories import EventFactory, OrganizationFactory
from tests.finance.factories import make_paid_payment, sale_kwargs, snapshot

_keys = itertools.count(1)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()  # every example rolls back to a clean database
        org = OrganizationFactory()
        now = timezone.now()
        # The event ended 10 days ago: its clearing period (3 days) is over,
        # and the machine's clock runs from before the cutoff onwards.
        self.event = EventFactory(
            organization=org, starts_at=now - timedelta(days=10, hours=3), ends_at=now - timedelta(days=10)
        )
        self.clock = now - timedelta(days=12)
        self.booked: list[int] = []  # payments whose sale is posted
        self.unbooked: list[int] = []  # captured, sale not posted yet (its webhook is late)
        self.refunds: list[int] = []
        self.disputed: set[int] = set()
        self.available_credited = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def tick(self) -> Any:
        self.clock += timedelta(minutes=7)
        return self.clock

    # --- sales -------------------------------------------------------------------------

    @rule(
        price=st.sampled_from([0, 999, 2500, 5000]),
        quantity=st.integers(1, 4),
        donation=st.sampled_from([0, 0, 300]),
        book_now=st.booleans(),
    )
    def sell(self, price: int, quantity: int, donation: int, book_now: bool) -> None:
        if price == 0 and donation == 0:
            return  # a free order has no payment
        payment = make_paid_payment(
            event=self.event, fee_snapshot=snapshot(unit_price_cents=price, quantity=quantity, donation_cents=donation)
        )
        (self.booked if book_now else self.unbooked).append(payment.pk)
        if book_now:
            self._book_sale(payment.pk)

    def _book_sale(self, payment_id: int) -> None:
        payment = Payment.objects.select_related("order").get(pk=payment_id)
        kwargs = sale_kwargs(payment) | {"occurred_at": self.tick()}
        with transaction.atomic():
            ledger_record_sale(**kwargs)

    @precondition(lambda self: self.unbooked)
    @rule(data=st.data())
    def late_sale_webhook(self, data: st.DataObject) -> None:
        payment_id = data.draw(st.sampled_from(self.unbooked))
        self.unbooked.remove(payment_id)
        self.booked.append(payment_id)
        self._book_sale(payment_id)

    @precondition(lambda self: self.booked or self.refunds)
    @rule(data=st.data())
    def replay_a_webhook(self, data: st.DataObject) -> None:
        before = JournalTransaction.objects.count()
        if self.refunds and (not self.booked or data.draw(st.booleans())):
            self._book_refund(data.draw(st.sampled_from(self.refunds)))
        else:
            self._book_sale(data.draw(st.sampled_from(self.booked)))
        assert JournalTransaction.objects.count() == before

    # --- refunds and chargebacks ----------------------------------------------------

    @precondition(lambda self: self.booked or self.unbooked)
    @rule(data=st.data(), full=st.booleans())
    def refund(self, data: st.DataObject, full: bool) -> None:
        payment = Payment.objects.get(pk=data.draw(st.sampled_from(self.booked + self.unbooked)))
        refundable = payment.captured_cents - payment.refunded_cents
        if refundable <= 0 or payment.pk in self.disputed:
            return
        amount = refundable if full else data.draw(st.integers(1, refundable))
        # What payments.services.refund_create leaves behind once the provider paid.
        Payment.objects.filter(pk=payment.pk).update(refunded_cents=F("refunded_cents") + amount)
        refund = Refund.objects.create(
            organization_id=payment.organization_id,
            payment=payment,
            provider="sandbox",
            amount_cents=amount,
            currency=payment.currency,
            idempotency_key=f"sm-refund-{next(_keys)}",
            status=RefundStatus.SUCCEEDED,
        )
        self.refunds.append(refund.pk)
        self._book_refund(refund.pk)

    def _book_refund(self, refund_id: int) -> None:
        refund = Refund.objects.select_related("payment__order").get(pk=refund_id)
        order = refund.payment.order
        ledger_record_refund(
            refund_id=refund.pk,
            payment_id=refund.payment_id,
            organization_id=order.organization_id,
            event_id=order.event_id,
            currency=order.currency,
            amount_cents=refund.amount_cents,
            fee_snapshot=order.fee_snapshot,
            occurred_at=self.tick(),
        )

    @precondition(lambda self: self.booked)
    @rule(data=st.data(), won=st.booleans(), replay=st.booleans())
    def chargeback(self, data: st.DataObject, won: bool, replay: bool) -> None:
        payment = Payment.objects.get(pk=data.draw(st.sampled_from(self.booked)))
        if payment.refunded_cents or payment.pk in self.disputed:
            return
        self.disputed.add(payment.pk)
        common = {
            "dispute_id": f"dp_{payment.pk}",
            "payment_id": payment.pk,
            "organization_id": payment.organization_id,
            "currency": payment.currency,
            "amount_cents": payment.captured_cents,
        }
        for _ in range(2 if replay else 1):
            ledger_record_chargeback_opened(fee_cents=1500, occurred_at=self.tick(), **common)
            ledger_record_chargeback_closed(won=won, event_id=self.event.pk, occurred_at=self.tick(), **common)

    # --- settlements and payouts --------------------------------------------------------

    @rule(twice=st.booleans())
    def settle(self, twice: bool) -> None:
        cutoff = self.tick()
        for _ in range(2 if twice else 1):
            settlement, _created = settlement_create(event_id=self.event.pk, cutoff=cutoff)
        assert Settlement.objects.filter(cutoff=cutoff).count() <= 1
        if settlement is not None:
            self.available_credited = self._credited_to_available()

    @precondition(
        lambda self: Settlement.objects.filter(reserve_cents__gt=0, reserve_released_at__isnull=True).exists()
    )
    @rule()
    def release_reserve(self) -> None:
        settlement = Settlement.objects.filter(reserve_cents__gt=0, reserve_released_at__isnull=True).first()
        assert settlement is not None and settlement.reserve_release_at is not None
        settlement_reserve_release(settlement_id=settlement.pk, now=settlement.reserve_release_at)

    @rule(ask=st.sampled_from([None, 1, 10_000_000]))
    def payout(self, ask: int | None) -> None:
        try:
            payout = payout_request(
                organization_id=self.event.organization_id,
                currency="EUR",
                amount_cents=ask,
                idempotency_key=f"sm-payout-{next(_keys)}",
            )
        except InsufficientFunds:
            assert ask is not None
            return
        if payout is not None:
            payout_mark_in_transit(payout_id=payout.pk, provider_payout_id=f"po_{payout.pk}")

    @precondition(lambda self: Payout.objects.filter(status=PayoutStatus.IN_TRANSIT).exists())
    @rule(fails=st.booleans(), replay=st.booleans())
    def payout_outcome(self, fails: bool, replay: bool) -> None:
        payout = Payout.objects.filter(status=PayoutStatus.IN_TRANSIT).first()
        assert payout is not None
        for _ in range(2 if replay else 1):
            if fails:
                payout_mark_failed(payout_id=payout.pk, failure_code="account_closed")
            else:
                payout_mark_paid(payout_id=payout.pk)

    @precondition(lambda self: Payout.objects.filter(status__in=[PayoutStatus.PAID, PayoutStatus.FAILED]).exists())
    @rule(fails=st.booleans(), replay=st.booleans())
    def payout_late_news(self, fails: bool, replay: bool) -> None:
        """News after the outcome: a bank returns a paid payout (it fails, the
        money comes back once), or a late "paid" for a failed one (nothing)."""
        payout = Payout.objects.filter(status__in=[PayoutStatus.PAID, PayoutStatus.FAILED]).order_by("pk").first()
        assert payout is not None
        before = payout.status
        for _ in range(2 if replay else 1):
            if fails:
                payout_mark_failed(payout_id=payout.pk, failure_code="account_closed")
            else:
                payout_mark_paid(payout_id=payout.pk)
        payout.refresh_from_db()
        assert payout.status == (PayoutStatus.FAILED if fails else before)

    # --- invariants --------------------------------------------------------------------

    def _credited_to_available(self) -> int:
        code = chart.org(AccountKind.ORG_AVAILABLE, self.event.organization_id, "EUR").code
        rows = JournalEntry.objects.filter(account__code=code, side="C").exclude(transaction__kind="payout_failed")
        return int(rows.aggregate(s=Sum("amount_cents"))["s"] or 0)

    @invariant()
    def the_ledger_is_sound(self) -> None:
        assert ledger_differences() == []

    @invariant()
    def the_ledger_reconciles_except_for_late_sale_webhooks(self) -> None:
        late = {f"payment {pk}" for pk in self.unbooked}
        assert [d for d in reconciliation_differences() if d.subject not in late] == []

    @invariant()
    def refunds_never_exceed_captures(self) -> None:
        for payment in Payment.objects.filter(organization_id=self.event.organization_id):
            assert payment.refunded_cents <= payment.captured_cents
            booked = JournalTransaction.objects.filter(reference=f"payment:{payment.pk}", kind="refund")
            assert sum(t.data["amount_cents"] for t in booked) <= payment.captured_cents

    @invariant()
    def payouts_never_exceed_available(self) -> None:
        paid_out = Payout.objects.exclude(status=PayoutStatus.FAILED).aggregate(s=Sum("amount_cents"))["s"] or 0
        assert paid_out <= self._credited_to_available()
        available = chart.org(AccountKind.ORG_AVAILABLE, self.event.organization_id, "EUR")
        assert account_balance_by_ref(ref=available) >= 0


# No shrinking phase: each step hits the database, and shrinking a long run
# takes minutes; the failing sequence printed as it is is readable enough.
LedgerMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=18,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


@pytest.mark.django_db
def test_the_ledger_state_machine() -> None:
    LedgerMachine.TestCase().runTest()


@pytest.mark.django_db
def test_a_refund_beyond_the_sale_is_refused_even_when_booked_directly(event) -> None:
    payment = make_paid_payment(event=event)
    order = payment.order
    with pytest.raises(RefundExceedsSale):
        ledger_record_refund(
            refund_id=10**9,
            payment_id=payment.pk,
            organization_id=order.organization_id,
            event_id=order.event_id,
            currency="EUR",
            amount_cents=order.total_cents + 1,
            fee_snapshot=order.fee_snapshot,
            occurred_at=timezone.now(),
        )
