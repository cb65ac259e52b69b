"""Row-lock helpers, shared by every domain.

Lock order, everywhere: event -> order -> seats (by id) -> seat hold ->
ticket type -> capacity hold -> payment session -> payment. The ticket type is
the hot row of a rush, so it comes last and is held only until commit; it is
locked FOR NO KEY UPDATE so rows that reference it (tickets, holds) can still
be inserted. A lock that cannot be taken within
settings.LOCK_TIMEOUT_MS becomes `Busy` ("try again") instead of a hung request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction

from ticketing.exceptions import Busy

T = TypeVar("T")

# SQLSTATEs: lock_not_available (lock_timeout), deadlock_detected, serialization_failure.
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


def is_retryable_lock_error(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    # SQLite reports a busy database as an OperationalError without a SQLSTATE.
    return connection.vendor == "sqlite" and "locked" in str(exc).lower()


def _session_lock_timeout() -> int | None:
    """The lock_timeout every session of the connection starts with, if set."""
    options = str(connection.settings_dict.get("OPTIONS", {}).get("options", ""))
    match = re.search(r"lock_timeout=(\d+)", options)
    return int(match.group(1)) if match else None


@contextmanager
def lock_timeout(milliseconds: int | None = None) -> Iterator[None]:
    """Bound how long statements in the current transaction wait for row locks,
    and turn a lock wait that timed out into Busy. PostgreSQL sessions start
    with settings.LOCK_TIMEOUT_MS (config.settings), so only another bound
    costs a statement."""
    assert transaction.get_connection().in_atomic_block, "lock_timeout needs a transaction"
    if connection.vendor == "postgresql":
        ms = int(milliseconds if milliseconds is not None else settings.LOCK_TIMEOUT_MS)
        if ms != _session_lock_timeout():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {ms}")
    try:
        yield
    except OperationalError as exc:
        if is_retryable_lock_error(exc):
            raise Busy(detail={"reason": "lock_timeout"}) from exc
        raise


def run_with_lock_retry(fn: Callable[[], T], *, attempts: int = 3) -> T:
    """Run `fn` (which opens its own transaction) and retry it when it reports
    Busy, so a brief lock wait becomes a retry before it becomes an error."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Busy:
            if attempt == attempts:
                raise
        except OperationalError as exc:
            if attempt == attempts or not is_retryable_lock_error(exc):
                if is_retryable_lock_error(exc):
                    raise Busy(detail={"reason": "lock_conflict"}) from exc
                raise
    raise AssertionError("unreachable")
