"""What PostgreSQL itself enforces, and the ledger under concurrency.

These tests commit (transaction=True), because the balance check is a
deferred constraint trigger that only fires at commit."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import AlreadyReversed, IdempotencyConflict, InsufficientFunds
from finance.models import Account, JournalEntry, JournalTransaction
from finance.selectors import account_balance_by_ref, ledger_differences
from finance.services.ledger import credit, debit, ledger_post, ledger_record_sale, ledger_reverse
from tests.concurrency import run_concurrently
from tests.factories import EventFactory
from tests.finance.factories import make_paid_payment, sale_kwargs

_INSERT_TXN = (
    "INSERT INTO finance_journaltransaction"
    " (idempotency_key, input_hash, kind, source_type, source_id, reference, effective_at, posted_at, memo, data)"
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]


def _clearing_and_revenue() -> tuple[Account, Account]:
    clearing = Account.objects.create(
        code="processor_clearing:EUR", kind="processor_clearing", type="asset", normal_balance="debit", currency="EUR"
    )
    revenue = Account.objects.create(
        code="platform_fee_revenue:EUR",
        kind="platform_fee_revenue",
        type="revenue",
        normal_balance="credit",
        currency="EUR",
    )
    return clearing, revenue


def _sale(payment):
    with transaction.atomic():
        return ledger_record_sale(**sale_kwargs(payment))


def test_an_entry_cannot_be_updated_or_deleted_with_raw_sql() -> None:
    _sale(make_paid_payment(event=EventFactory()))
    entry_id = JournalEntry.objects.values_list("pk", flat=True).first()
    txn_id = JournalTransaction.objects.values_list("pk", flat=True).first()
    for sql, param in [
        ("UPDATE finance_journalentry SET amount_cents = amount_cents + 1 WHERE id = %s", entry_id),
        ("DELETE FROM finance_journalentry WHERE id = %s", entry_id),
        ("UPDATE finance_journaltransaction SET memo = 'edited' WHERE id = %s", txn_id),
        ("DELETE FROM finance_journaltransaction WHERE id = %s", txn_id),
    ]:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [param])
    assert ledger_differences() == []


def test_an_unbalanced_transaction_inserted_with_raw_sql_fails_at_commit() -> None:
    clearing, revenue = _clearing_and_revenue()
    now = timezone.now()

    with pytest.raises(DatabaseError, match="does not balance"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _INSERT_TXN + " VALUES ('raw', '', 'adjustment', '', '', '', %s, %s, '', '{}') RETURNING id",
            [now, now],
        )
        txn_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO finance_journalentry (transaction_id, account_id, side, amount_cents, currency) VALUES"
            " (%s, %s, 'D', 100, 'EUR'), (%s, %s, 'C', 99, 'EUR')",
            [txn_id, clearing.pk, txn_id, revenue.pk],
        )
        # nothing complains until the commit at the end of this block

    assert not JournalTransaction.objects.exists()


def test_an_entry_added_after_a_check_is_checked_again() -> None:
    # given: the balance check made at once, not at commit
    clearing, revenue = _clearing_and_revenue()
    now = timezone.now()
    entry = "INSERT INTO finance_journalentry (transaction_id, account_id, side, amount_cents, currency) VALUES "

    with pytest.raises(DatabaseError, match="does not balance"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS finance_journalentry_balanced IMMEDIATE")
        cursor.execute(
            _INSERT_TXN + " VALUES ('raw-2', '', 'adjustment', '', '', '', %s, %s, '', '{}') RETURNING id",
            [now, now],
        )
        txn_id = cursor.fetchone()[0]
        # when: a balanced pair, checked, then one more entry that unbalances it
        cursor.execute(
            entry + "(%s, %s, 'D', 100, 'EUR'), (%s, %s, 'C', 100, 'EUR')", [txn_id, clearing.pk, txn_id, revenue.pk]
        )
        cursor.execute(entry + "(%s, %s, 'D', 1, 'EUR')", [txn_id, clearing.pk])

    # then: the last entry was checked with the others, and nothing committed
    assert not JournalTransaction.objects.exists()


def test_a_transaction_without_entries_fails_at_commit() -> None:
    now = timezone.now()
    with pytest.raises(DatabaseError, match="no entries"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _INSERT_TXN + " VALUES ('empty', '', 'adjustment', '', '', '', %s, %s, '', '{}')",
            [now, now],
        )


def test_a_sale_outside_a_transaction_is_refused() -> None:
    payment = make_paid_payment(event=EventFactory())
    with pytest.raises(AssertionError, match="caller's transaction"):
        ledger_record_sale(**sale_kwargs(payment))
    assert not JournalTransaction.objects.exists()


def test_concurrent_sales_of_one_event_neither_block_nor_deadlock_and_all_balance() -> None:
    event = EventFactory()
    _sale(make_paid_payment(event=event))  # the accounts exist, as after the event's first sale
    payments = [make_paid_payment(event=event) for _ in range(12)]

    def sell(payment):
        def run():
            with transaction.atomic():
                # A short lock timeout: a sale that waited on another's row lock would fail here.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '200ms'")
                return ledger_record_sale(**sale_kwargs(payment)).pk

        return run

    results = run_concurrently([sell(p) for p in payments])

    assert [exc for _, exc in results if exc] == []
    assert JournalTransaction.objects.filter(kind="sale").count() == 13
    assert account_balance_by_ref(ref=chart.pending(event.organization_id, event.pk, "EUR")) == 13 * 10000
    assert ledger_differences() == []


def test_concurrent_first_sales_create_each_account_once() -> None:
    event = EventFactory(currency="CHF")
    payments = [make_paid_payment(event=event) for _ in range(6)]
    results = run_concurrently([lambda p=p: _sale(p).pk for p in payments])
    assert [exc for _, exc in results if exc] == []
    assert Account.objects.filter(code=chart.pending(event.organization_id, event.pk, "CHF").code).count() == 1
    assert ledger_differences() == []


@pytest.mark.ledger_unverified(reason="reverses a sale at the ledger alone: its payment stays captured")
def test_concurrent_reversals_of_one_transaction_one_wins() -> None:
    txn = _sale(make_paid_payment(event=EventFactory()))
    assert txn is not None
    results = run_concurrently([lambda i=i: ledger_reverse(transaction_id=txn.pk, key=f"rev-{i}").pk for i in range(4)])

    wins = [pk for pk, exc in results if exc is None]
    losses = [exc for _, exc in results if exc is not None]
    assert len(wins) == 1
    assert all(isinstance(exc, AlreadyReversed) for exc in losses)
    assert JournalTransaction.objects.filter(reverses=txn).count() == 1
    assert ledger_differences() == []


def test_concurrent_draws_on_a_guarded_account_never_overdraw_it() -> None:
    event = EventFactory()
    org = event.organization_id
    available = chart.org(AccountKind.ORG_AVAILABLE, org, "EUR")
    transit = chart.org(AccountKind.PAYOUT_IN_TRANSIT, org, "EUR")
    pending = chart.pending(org, event.pk, "EUR")
    _sale(make_paid_payment(event=event))
    ledger_post(
        key="fund",
        kind="settlement",
        entries=[debit(pending, 10000), credit(available, 10000)],
        source=None,
        effective_at=timezone.now(),
    )

    def draw(i: int):
        return lambda: (
            ledger_post(
                key=f"draw-{i}",
                kind="adjustment",  # not a payout: there is no Payout row to reconcile with
                entries=[debit(available, 3000), credit(transit, 3000)],
                source=None,
                effective_at=timezone.now(),
            ).pk
        )

    results = run_concurrently([draw(i) for i in range(6)])

    assert sum(1 for _, exc in results if exc is None) == 3
    assert all(isinstance(exc, InsufficientFunds) for _, exc in results if exc is not None)
    assert account_balance_by_ref(ref=available) == 1000
    assert ledger_differences() == []


def _entries(txn_id: int) -> list[tuple[str, str, int]]:
    return list(
        JournalEntry.objects.filter(transaction_id=txn_id)
        .order_by("id")
        .values_list("account__code", "side", "amount_cents")
    )


def test_concurrent_first_sales_of_a_new_event_book_every_entry_once_in_order() -> None:
    # given: the system accounts exist (another event of the organization
    # sold), the new event's pending account does not: each sale's entries
    # INSERT finds all accounts but one and must insert nothing
    first = EventFactory()
    _sale(make_paid_payment(event=first))
    event = EventFactory(organization=first.organization)
    payments = [make_paid_payment(event=event) for _ in range(6)]

    # when
    results = run_concurrently([lambda p=p: _sale(p).pk for p in payments])

    # then: one pending account; every sale has its six entries once, in the posting's order
    assert [exc for _, exc in results if exc] == []
    pending = chart.pending(event.organization_id, event.pk, "EUR").code
    assert Account.objects.filter(code=pending).count() == 1
    expected = [
        ("processor_clearing:EUR", "D", 10894),
        (pending, "C", 10000),
        ("platform_fee_revenue:EUR", "C", 548),
        ("processor_fee_recovered:EUR", "C", 346),
        ("processor_fee_expense:EUR", "D", 346),
        ("processor_clearing:EUR", "C", 346),
    ]
    assert all(_entries(pk) == expected for pk, _ in results)
    assert account_balance_by_ref(ref=chart.pending(event.organization_id, event.pk, "EUR")) == 6 * 10000
    assert ledger_differences() == []


def test_a_sale_delivered_concurrently_is_booked_once() -> None:
    payment = make_paid_payment(event=EventFactory())

    results = run_concurrently([lambda: _sale(payment).pk for _ in range(5)])

    assert [exc for _, exc in results if exc] == []
    assert len({pk for pk, _ in results}) == 1
    assert JournalTransaction.objects.count() == 1
    assert JournalEntry.objects.count() == 6
    assert ledger_differences() == []


def test_one_key_posted_concurrently_with_two_inputs_books_one_and_refuses_the_other() -> None:
    clearing = chart.system(AccountKind.PROCESSOR_CLEARING, "EUR")
    revenue = chart.system(AccountKind.PLATFORM_FEE_REVENUE, "EUR")

    def post(amount: int):
        return lambda: (
            ledger_post(
                key="one-key",
                kind="adjustment",
                entries=[debit(clearing, amount), credit(revenue, amount)],
                source=None,
                effective_at=timezone.now(),
            ).pk
        )

    results = run_concurrently([post(100 if i % 2 else 200) for i in range(6)])

    # whichever committed first is the transaction; the same input gets it
    # back, the other input is refused
    txn = JournalTransaction.objects.get()
    amount = JournalEntry.objects.filter(transaction=txn).values_list("amount_cents", flat=True).first()
    for i, (pk, exc) in enumerate(results):
        if (100 if i % 2 else 200) == amount:
            assert (pk, exc) == (txn.pk, None)
        else:
            assert isinstance(exc, IdempotencyConflict)
    assert JournalEntry.objects.count() == 2
    assert ledger_differences() == []
