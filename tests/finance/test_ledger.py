"""The ledger's templates, idempotency, reversals and verification (any database)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import (
    AlreadyReversed,
    IdempotencyConflict,
    ImmutableLedger,
    InsufficientFunds,
    InvalidFeeSnapshot,
    RefundExceedsSale,
    UnbalancedTransaction,
)
from finance.models import Account, JournalEntry, JournalTransaction
from finance.selectors import account_balance_by_ref, ledger_differences, reconciliation_differences
from finance.services.ledger import (
    credit,
    debit,
    ledger_post,
    ledger_record_chargeback_closed,
    ledger_record_chargeback_opened,
    ledger_record_refund,
    ledger_record_sale,
    ledger_reverse,
)
from payments.models import Refund, RefundStatus
from tests.factories import EventFactory
from tests.finance.factories import make_paid_payment, sale_kwargs, snapshot

pytestmark = pytest.mark.django_db


def balance(ref: chart.AccountRef) -> int:
    return account_balance_by_ref(ref=ref)


def record_sale(payment):
    with transaction.atomic():
        return ledger_record_sale(**sale_kwargs(payment))


def test_a_sale_books_the_finance_md_example_and_balances(event) -> None:
    # given two 50.00 tickets, platform 3.5 % + 0.99 and processor 2.9 % + 0.30, both passed on
    payment = make_paid_payment(event=event)
    org = event.organization_id

    # when
    txn = record_sale(payment)

    # then: 108.94 charged; 100.00 to the organizer, 5.48 platform, 3.46 processor
    assert txn is not None
    assert balance(chart.system(AccountKind.PROCESSOR_CLEARING, "EUR")) == 10894 - 346
    assert balance(chart.pending(org, event.pk, "EUR")) == 10000
    assert balance(chart.system(AccountKind.PLATFORM_FEE_REVENUE, "EUR")) == 548
    assert balance(chart.system(AccountKind.PROCESSOR_FEE_RECOVERED, "EUR")) == 346
    assert balance(chart.system(AccountKind.PROCESSOR_FEE_EXPENSE, "EUR")) == 346
    assert ledger_differences() == []
    assert reconciliation_differences() == []


def test_absorbed_fees_and_a_donation_come_out_of_the_organizers_share(event) -> None:
    from finance.fees import FeeRules

    rules = FeeRules(
        platform_rate_bp=500,
        processor_rate_bp=290,
        processor_fixed_cents=30,
        platform_fee_passed_on=False,
        processor_fee_passed_on=False,
    )
    snap = snapshot(unit_price_cents=2000, quantity=3, donation_cents=500, rules=rules)
    payment = make_paid_payment(event=event, fee_snapshot=snap)

    record_sale(payment)

    assert snap["total_cents"] == 6500
    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) == snap["organizer_net_cents"]
    assert snap["organizer_net_cents"] == 6000 - 300 - snap["processor_fee_cents"]
    assert balance(chart.org(AccountKind.DONATIONS_PAYABLE, event.organization_id, "EUR")) == 500
    txn = JournalTransaction.objects.get(kind="sale")
    assert txn.data["platform_absorbed_cents"] == 300
    assert txn.data["processor_absorbed_cents"] == snap["processor_fee_cents"]
    assert ledger_differences() == []


def test_a_sale_costs_two_statements_and_locks_nothing(event) -> None:
    payment = make_paid_payment(event=event)
    record_sale(make_paid_payment(event=event))  # the accounts exist now, as after any event's first sale

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ledger_record_sale(**sale_kwargs(payment))

    statements = [q["sql"] for q in queries]
    assert len(statements) == 2, statements
    assert statements[0].startswith('INSERT INTO "finance_journaltransaction"')
    # The accounts are looked up by the entries' INSERT itself: no read of them.
    assert statements[1].startswith("INSERT INTO finance_journalentry")
    # Hot accounts are never locked or updated on a sale.
    assert not any("FOR UPDATE" in sql or sql.startswith("UPDATE") for sql in statements)


# The finance.md example's sale, in its posting order.
EXAMPLE_ENTRIES = [
    ("processor_clearing:EUR", "D", 10894),
    ("org_pending:{org}:{event}:EUR", "C", 10000),
    ("platform_fee_revenue:EUR", "C", 548),
    ("processor_fee_recovered:EUR", "C", 346),
    ("processor_fee_expense:EUR", "D", 346),
    ("processor_clearing:EUR", "C", 346),
]


def entries_of(txn: JournalTransaction) -> list[tuple[str, str, int]]:
    return list(
        JournalEntry.objects.filter(transaction=txn).order_by("id").values_list("account__code", "side", "amount_cents")
    )


def expected_entries(event) -> list[tuple[str, str, int]]:
    return [(code.format(org=event.organization_id, event=event.pk), s, a) for code, s, a in EXAMPLE_ENTRIES]


def test_the_first_sale_creates_its_accounts_from_the_chart_and_books_every_entry_once(event) -> None:
    # given: no account exists yet
    payment = make_paid_payment(event=event)

    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        txn = ledger_record_sale(**sale_kwargs(payment))

    # then: the entries' INSERT found no accounts and inserted nothing; the
    # accounts were created and the entries inserted in the posting's order
    assert txn is not None
    assert len(queries) <= 6, [q["sql"] for q in queries]
    assert entries_of(txn) == expected_entries(event)
    for account in Account.objects.all():
        spec = chart.CHART[AccountKind(account.kind)]
        assert (account.type, account.normal_balance) == (spec.type, spec.normal_balance)
        assert (account.tracks_balance, account.may_go_negative) == (spec.tracks_balance, spec.may_go_negative)
        assert (account.posted_debits_cents, account.posted_credits_cents, account.version) == (0, 0, 0)
    assert Account.objects.count() == 5


def test_an_events_first_sale_creates_only_its_own_account_and_inserts_no_entry_twice(organization) -> None:
    # given: the system accounts exist (another event sold), this event's pending account does not
    record_sale(make_paid_payment(event=EventFactory(organization=organization)))
    event = EventFactory(organization=organization)
    accounts_before = Account.objects.count()

    # when
    txn = record_sale(make_paid_payment(event=event))
    again = record_sale(make_paid_payment(event=event))

    # then: every entry once, in the posting's order, for the first sale and the next
    assert txn is not None and again is not None
    assert entries_of(txn) == expected_entries(event)
    assert entries_of(again) == expected_entries(event)
    assert Account.objects.count() == accounts_before + 1
    assert balance(chart.pending(organization.pk, event.pk, "EUR")) == 2 * 10000
    assert ledger_differences() == []


def test_a_replayed_sale_returns_the_stored_transaction_as_it_was_booked(event) -> None:
    payment = make_paid_payment(event=event)
    first = record_sale(payment)

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        again = ledger_record_sale(**sale_kwargs(payment))

    assert first is not None and again is not None
    # one INSERT that inserts nothing, one read of the stored transaction; no entries
    assert len(queries) == 2, [q["sql"] for q in queries]
    stored = JournalTransaction.objects.get()
    for name in ("pk", "idempotency_key", "input_hash", "kind", "reference", "source_id", "memo", "data"):
        assert getattr(again, name) == getattr(stored, name) == getattr(first, name), name
    assert (again.effective_at, again.posted_at) == (stored.effective_at, stored.posted_at)
    assert JournalEntry.objects.count() == len(EXAMPLE_ENTRIES)
    with pytest.raises(ImmutableLedger):
        again.save()


def test_a_posting_to_a_guarded_account_keeps_its_running_total_and_hot_ones_keep_none(event) -> None:
    # given: a sale on hot accounts only
    record_sale(make_paid_payment(event=event))
    pending = chart.pending(event.organization_id, event.pk, "EUR")
    available = chart.org(AccountKind.ORG_AVAILABLE, event.organization_id, "EUR")

    # when: money moves from the hot pending account to the guarded available one
    with transaction.atomic():
        ledger_post(
            key="settle-test",
            kind="settlement",
            entries=[debit(pending, 7000), credit(available, 7000)],
            source=None,
            effective_at=timezone.now(),
        )

    # then: the guarded account's row carries the posting, hot rows carry nothing
    row = Account.objects.get(code=available.code)
    assert (row.posted_debits_cents, row.posted_credits_cents, row.version) == (0, 7000, 1)
    hot = Account.objects.exclude(code=available.code)
    assert all((a.posted_debits_cents, a.posted_credits_cents, a.version) == (0, 0, 0) for a in hot)
    assert balance(available) == 7000
    assert balance(pending) == 3000
    assert ledger_differences() == []


def test_the_same_sale_twice_is_one_transaction(event) -> None:
    payment = make_paid_payment(event=event)
    first = record_sale(payment)
    again = record_sale(payment)
    assert first is not None and again is not None
    assert first.pk == again.pk
    assert JournalTransaction.objects.count() == 1
    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) == 10000


def test_the_same_key_with_other_numbers_is_refused(event) -> None:
    payment = make_paid_payment(event=event)
    record_sale(payment)
    kwargs = sale_kwargs(payment)
    kwargs["fee_snapshot"] = snapshot(unit_price_cents=4000)
    with pytest.raises(IdempotencyConflict), transaction.atomic():
        ledger_record_sale(**kwargs)
    assert JournalTransaction.objects.count() == 1


def test_a_fee_snapshot_that_does_not_add_up_is_refused(event) -> None:
    payment = make_paid_payment(event=event)
    kwargs = sale_kwargs(payment)
    kwargs["fee_snapshot"] = {**kwargs["fee_snapshot"], "platform_fee_cents": 1}
    with pytest.raises(InvalidFeeSnapshot), transaction.atomic():
        ledger_record_sale(**kwargs)


def test_unbalanced_or_non_positive_postings_are_refused_in_python() -> None:
    clearing = chart.system(AccountKind.PROCESSOR_CLEARING, "EUR")
    revenue = chart.system(AccountKind.PLATFORM_FEE_REVENUE, "EUR")
    now = timezone.now()
    with pytest.raises(UnbalancedTransaction):
        ledger_post(
            key="x1", kind="adjustment", entries=[debit(clearing, 5), credit(revenue, 4)], source=None, effective_at=now
        )
    with pytest.raises(UnbalancedTransaction):
        usd = chart.system(AccountKind.PLATFORM_FEE_REVENUE, "USD")
        ledger_post(
            key="x2", kind="adjustment", entries=[debit(clearing, 5), credit(usd, 5)], source=None, effective_at=now
        )
    from finance.exceptions import InvalidPosting

    with pytest.raises(InvalidPosting):
        ledger_post(
            key="x3", kind="adjustment", entries=[debit(clearing, 0), credit(revenue, 0)], source=None, effective_at=now
        )
    assert not JournalTransaction.objects.exists()


def test_entries_and_transactions_cannot_be_changed_through_the_orm(event) -> None:
    record_sale(make_paid_payment(event=event))
    entry = JournalEntry.objects.first()
    assert entry is not None
    entry.amount_cents += 1
    with pytest.raises(ImmutableLedger):
        entry.save()
    with pytest.raises(ImmutableLedger):
        entry.delete()
    with pytest.raises(ImmutableLedger):
        JournalEntry.objects.filter(pk=entry.pk).update(amount_cents=1)
    with pytest.raises(ImmutableLedger):
        JournalTransaction.objects.all().delete()


@pytest.mark.ledger_unverified(reason="reverses a sale at the ledger alone: its payment stays captured")
def test_a_reversal_nets_to_zero_and_happens_at_most_once(event) -> None:
    txn = record_sale(make_paid_payment(event=event))
    assert txn is not None

    reversal = ledger_reverse(transaction_id=txn.pk)
    again = ledger_reverse(transaction_id=txn.pk)

    assert reversal.pk == again.pk
    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) == 0
    assert balance(chart.system(AccountKind.PROCESSOR_CLEARING, "EUR")) == 0
    with pytest.raises(AlreadyReversed):
        ledger_reverse(transaction_id=txn.pk, key="another-reversal-key")
    assert JournalTransaction.objects.filter(reverses=txn).count() == 1
    assert ledger_differences() == []


def _refund(payment, amount: int, n: int, *, status: str = RefundStatus.SUCCEEDED) -> Refund:
    return Refund.objects.create(
        organization=payment.organization,
        payment=payment,
        provider="sandbox",
        amount_cents=amount,
        currency=payment.currency,
        idempotency_key=f"refund-{payment.pk}-{n}",
        status=status,
    )


def _book_refund(payment, refund: Refund):
    order = payment.order
    return ledger_record_refund(
        refund_id=refund.pk,
        payment_id=payment.pk,
        organization_id=order.organization_id,
        event_id=order.event_id,
        currency=order.currency,
        amount_cents=refund.amount_cents,
        fee_snapshot=order.fee_snapshot,
        occurred_at=timezone.now(),
    )


def test_partial_refunds_that_add_up_to_the_charge_return_every_part_exactly(event) -> None:
    payment = make_paid_payment(event=event)
    record_sale(payment)
    # odd amounts: each split rounds, the last one takes exactly what remains
    for n, amount in enumerate([3333, 1, 5000, 10894 - 3333 - 1 - 5000]):
        _book_refund(payment, _refund(payment, amount, n))

    for kind in (AccountKind.PROCESSOR_CLEARING, AccountKind.PLATFORM_FEE_REVENUE, AccountKind.PROCESSOR_FEE_RECOVERED):
        assert balance(chart.system(kind, "EUR")) == 0
    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) == 0
    with pytest.raises(RefundExceedsSale):  # a cent more than was charged (the provider would refuse it too)
        _book_refund(payment, _refund(payment, 1, 99, status=RefundStatus.PENDING))
    assert ledger_differences() == []


def test_a_refund_replayed_is_booked_once_and_reconciles(event) -> None:
    payment = make_paid_payment(event=event)
    record_sale(payment)
    refund = _refund(payment, 2500, 1)
    first = _book_refund(payment, refund)
    second = _book_refund(payment, refund)
    assert first.pk == second.pk
    assert reconciliation_differences() == []
    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) < 10000


def test_a_lost_chargeback_is_borne_by_the_organizer_and_a_won_one_returns(event) -> None:
    payment = make_paid_payment(event=event)
    record_sale(payment)
    common = {
        "payment_id": payment.pk,
        "organization_id": event.organization_id,
        "currency": "EUR",
        "amount_cents": 10894,
    }
    now = timezone.now()
    ledger_record_chargeback_opened(dispute_id="dp_1", fee_cents=1500, occurred_at=now, **common)
    ledger_record_chargeback_closed(dispute_id="dp_1", won=False, event_id=event.pk, occurred_at=now, **common)

    assert balance(chart.pending(event.organization_id, event.pk, "EUR")) == 10000 - 10894
    assert balance(chart.system(AccountKind.DISPUTES_OPEN, "EUR")) == 0
    assert balance(chart.system(AccountKind.DISPUTE_FEE_EXPENSE, "EUR")) == 1500

    from ticketing.exceptions import InvalidState

    with pytest.raises(InvalidState):
        ledger_record_chargeback_closed(dispute_id="dp_1", won=True, event_id=event.pk, occurred_at=now, **common)
    assert ledger_differences() == []


def test_a_guarded_account_refuses_to_go_negative(organization) -> None:
    available = chart.org(AccountKind.ORG_AVAILABLE, organization.pk, "EUR")
    transit = chart.org(AccountKind.PAYOUT_IN_TRANSIT, organization.pk, "EUR")
    with pytest.raises(InsufficientFunds), transaction.atomic():
        ledger_post(
            key="p1",
            kind="payout_initiated",
            entries=[debit(available, 1), credit(transit, 1)],
            source=None,
            effective_at=timezone.now(),
        )
    assert not JournalTransaction.objects.exists()
    assert not Account.objects.filter(posted_debits_cents__gt=0).exists()


def test_verify_ledger_exits_zero_on_a_sound_ledger_and_non_zero_on_a_difference(event) -> None:
    payment = make_paid_payment(event=event)
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("verify_ledger", stdout=out, stderr=out)  # captured but not booked
    assert exc.value.code == 1
    assert f"payment {payment.pk}" in out.getvalue()

    record_sale(payment)
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "no differences" in out.getvalue()
