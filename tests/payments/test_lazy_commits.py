"""The sandbox's own writes commit without waiting for the disk, and never
leave that to anyone else's transaction: the charge is flushed before the
buyer is told it was made whenever no delivery reached our endpoint, and a
failed flush fails the request rather than tell a charge that may be lost."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from payments.models import PaymentSession, SandboxSession, SandboxWebhook
from payments.sandbox import webhooks as sandbox_webhooks
from payments.sandbox.gateway import ChargeOutcome, sandbox_charge
from ticketing import rows

pytestmark = pytest.mark.django_db(transaction=True)
SUCCESS, DELAYED = "4242424242424242", "4000000000000077"


def _setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = rows.flush_commits

    def counted() -> None:
        calls.append(1)
        original()

    monkeypatch.setattr(rows, "flush_commits", counted)
    return calls


def _token(session: PaymentSession) -> str:
    return SandboxSession.objects.get(session_id=session.provider_session_id).token


def test_a_lazy_commit_is_this_transactions_alone() -> None:
    with transaction.atomic():
        rows.execute_together(*rows.lazy_commit_statements())
        assert _setting() == "off"
        with transaction.atomic():
            assert rows.lazy_commit_statements() == [], "never from inside a savepoint"

    assert _setting() == "on", "the next transaction waits for the disk again"


def test_the_delivery_record_is_lazy_in_its_own_statement_and_leaks_nothing() -> None:
    lazy_from = rows.lazy_commit_from()
    assert "set_config('synchronous_commit', 'off', true)" in lazy_from
    assert lazy_from in sandbox_webhooks._delivery_sql(connection.vendor, lazy_from)
    with transaction.atomic():
        assert rows.lazy_commit_from() == "", "never inside a caller's transaction"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT current_setting('synchronous_commit'){lazy_from}")
        assert cursor.fetchone()[0] == "off"

    assert _setting() == "on"


def test_a_charge_delivered_to_our_endpoint_needs_no_flush_of_its_own(
    sandbox_session: PaymentSession, flushes: list[int]
) -> None:
    result = sandbox_charge(token=_token(sandbox_session), card_number=SUCCESS)

    assert result.outcome == ChargeOutcome.SUCCEEDED
    assert SandboxWebhook.objects.get().delivered_at is not None, "our endpoint took it (its commit waits for the disk)"
    assert flushes == []
    assert _setting() == "on"


def test_a_charge_whose_webhook_waits_is_flushed_before_the_buyer_hears_of_it(
    sandbox_session: PaymentSession, flushes: list[int], settings: Any
) -> None:
    settings.SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False

    result = sandbox_charge(token=_token(sandbox_session), card_number=SUCCESS)

    assert result.outcome == ChargeOutcome.SUCCEEDED
    assert flushes == [1]


def test_a_delayed_confirmation_is_flushed_too(sandbox_session: PaymentSession, flushes: list[int]) -> None:
    result = sandbox_charge(token=_token(sandbox_session), card_number=DELAYED)

    assert result.outcome == ChargeOutcome.PROCESSING
    assert flushes == [1], "its confirmation is due later, not delivered now"


def test_a_charge_that_cannot_be_flushed_is_not_told_as_made(
    sandbox_session: PaymentSession, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False

    def database_gone() -> None:
        raise OperationalError("the server closed the connection")

    monkeypatch.setattr(rows, "flush_commits", database_gone)

    with pytest.raises(OperationalError):
        sandbox_charge(token=_token(sandbox_session), card_number=SUCCESS)
