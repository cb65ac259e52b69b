"""Locks of the finance domain.

Order: (whatever the caller holds: ... -> order -> payment) -> ledger
reference advisory lock -> guarded accounts by ascending id (taken by the
conditional UPDATEs in finance.services.ledger) -> settlement / payout rows.
Hot accounts are never locked. Every helper runs inside the caller's
transaction; its lock lasts until that transaction ends.
"""

from __future__ import annotations

import hashlib

from django.db import connection, transaction

from finance.models import Payout, Settlement


def _assert_atomic() -> None:
    assert transaction.get_connection().in_atomic_block, "locks last until commit: take them in a transaction"


def lock_ledger_reference(reference: str) -> None:
    """Serialize postings that read earlier postings of the same business
    object (the refunds of one payment, the settlements of one event) without
    locking any row a sale writes. PostgreSQL: a transaction-level advisory
    lock; SQLite serializes writers anyway."""
    _assert_atomic()
    if connection.vendor != "postgresql":
        return
    digest = hashlib.blake2b(f"finance:{reference}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def lock_settlement(*, settlement_id: int) -> Settlement:
    _assert_atomic()
    return Settlement.objects.select_for_update().get(pk=settlement_id)


def lock_payout(*, payout_id: int) -> Payout:
    _assert_atomic()
    return Payout.objects.select_for_update().get(pk=payout_id)
