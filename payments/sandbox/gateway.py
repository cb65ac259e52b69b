"""What the sandbox payment service does on "its own servers".

Test cards decide what a charge does:
  4242 4242 4242 4242   succeeds
  4000 0000 0000 0002   declined (card_declined)
  4000 0000 0000 9995   declined (insufficient_funds)
  4000 0000 0000 0077   delayed confirmation: pending now, succeeded after
                        settings.SANDBOX_DELAYED_CONFIRMATION_SECONDS
Any other number is refused as a form error and changes nothing. Like a real
hosted checkout, a declined card leaves the session open for another try.

Test destinations decide what a payout does (any other destination is paid):
  000123456789   paid: payout.paid after settings.SANDBOX_PAYOUT_DELAY_SECONDS (30)
  000111111116   failed (no_account): payout.failed after the delay
  000111111113   failed (account_closed)
  000222222227   failed (insufficient_funds)
  000444444440   stuck in transit: no webhook ever; the status call says in_transit
  000555555559   returned: payout.paid after the delay, then payout.failed
                 (account_closed) as long again later, as banks return payouts
  000999999991   refused at once: the payout call raises ProviderRejected
Until its webhook is due a payout is in transit; the payout status call
(sandbox_payout_status) tells its state at any time.

Refunds settle at once, or, with settings.SANDBOX_REFUND_DELAY_SECONDS > 0,
are pending until then and confirmed by a refund.succeeded webhook. Disputes
(sandbox_dispute_open / sandbox_dispute_close) stand in for a card issuer:
they send dispute.opened and dispute.won / dispute.lost webhooks.

Every state change locks the sandbox session row and records its webhooks in
the same transaction (see payments.sandbox.webhooks). A card charged on an open
session is one conditional UPDATE that returns the row (the lock and the
change in one statement), then its webhook's INSERT: BEGIN, UPDATE, INSERT,
COMMIT. Only a charge that finds the session otherwise (paid, processing,
expired, unknown) or a card that is no test card reads the row under its lock
to tell why.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.exceptions import ProviderRejected, SandboxSessionNotFound
from payments.models import (
    SandboxDispute,
    SandboxPayout,
    SandboxPayoutStatus,
    SandboxRefund,
    SandboxSession,
    SandboxSessionStatus,
    SandboxWebhook,
)
from payments.providers.base import PayoutState, ProviderPayout, ProviderStatus, SessionRequest, SessionStatus
from payments.sandbox.webhooks import event_data, sandbox_webhook_record
from ticketing import rows
from ticketing.rows import insert_unless_exists

DEFAULT_DELAYED_CONFIRMATION_SECONDS = 20
# What the sandbox's "processor" charges for a dispute (Stripe: 15.00 in EUR).
DEFAULT_DISPUTE_FEE_CENTS = 1500


class ChargeOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    PROCESSING = "processing"  # delayed confirmation
    INVALID_CARD = "invalid_card"  # not a test card: nothing happened
    ALREADY_PAID = "already_paid"
    ALREADY_PROCESSING = "already_processing"
    EXPIRED = "expired"


@dataclass(frozen=True)
class TestCard:
    outcome: ChargeOutcome
    failure_code: str = ""
    message: str = ""


TEST_CARDS: dict[str, TestCard] = {
    "4242424242424242": TestCard(ChargeOutcome.SUCCEEDED, message="Payment successful."),
    "4000000000000002": TestCard(ChargeOutcome.DECLINED, "card_declined", "Your card was declined."),
    "4000000000009995": TestCard(ChargeOutcome.DECLINED, "insufficient_funds", "Your card has insufficient funds."),
    "4000000000000077": TestCard(
        ChargeOutcome.PROCESSING, message="Your payment is being processed; you will get a confirmation shortly."
    ),
}


@dataclass(frozen=True)
class ChargeResult:
    outcome: ChargeOutcome
    session: SandboxSession
    message: str = ""
    failure_code: str = ""


def refund_delay_seconds() -> int:
    return int(getattr(settings, "SANDBOX_REFUND_DELAY_SECONDS", 0))


def delayed_confirmation_seconds() -> int:
    return int(getattr(settings, "SANDBOX_DELAYED_CONFIRMATION_SECONDS", DEFAULT_DELAYED_CONFIRMATION_SECONDS))


def normalize_card_number(raw: str) -> str:
    return "".join(ch for ch in raw if ch not in " -")


def effective_status(session: SandboxSession, *, now: datetime) -> str:
    """A delayed confirmation counts as succeeded once its time has passed,
    whether or not the sweeper has written that down yet; an open session past
    its expiry counts as expired."""
    if session.status == SandboxSessionStatus.PENDING and session.settles_at and session.settles_at <= now:
        return SandboxSessionStatus.SUCCEEDED
    if session.status == SandboxSessionStatus.OPEN and session.expires_at <= now:
        return SandboxSessionStatus.EXPIRED
    return session.status


def _session_fields(request: SessionRequest) -> dict[str, object]:
    """What a session's idempotency key stands for."""
    return {
        "amount_cents": request.amount_cents,
        "currency": request.currency,
        "order_reference": request.order_code,
        "session_reference": request.reference,
    }


def sandbox_session_new(*, request: SessionRequest, idempotency_key: str) -> SandboxSession:
    """The session a create with this request writes, not written yet: its
    ids and page token are drawn already."""
    return SandboxSession(
        idempotency_key=idempotency_key,
        description=request.description[:300],
        success_url=request.success_url,
        cancel_url=request.cancel_url,
        expires_at=request.expires_at,
        **_session_fields(request),
    )


def sandbox_session_create(
    *, request: SessionRequest, idempotency_key: str, new: SandboxSession | None = None
) -> SandboxSession:
    """Open a hosted checkout. Idempotent on the key, as Stripe is: the same
    key with different parameters is refused. `new`: the session
    sandbox_session_new drew for this request, written if the key is new."""
    session = new or sandbox_session_new(request=request, idempotency_key=idempotency_key)
    if insert_unless_exists(session, conflict=("idempotency_key",)) is not None:
        return session
    # An earlier call with this key (a concurrent one waited on the unique
    # index until it committed).
    session = SandboxSession.objects.get(idempotency_key=idempotency_key)
    if any(getattr(session, name) != value for name, value in _session_fields(request).items()):
        raise ProviderRejected(
            "The idempotency key was used with different parameters.", detail={"idempotency_key": idempotency_key}
        )
    return session


def sandbox_session_by_token(*, token: str, lock: bool = False) -> SandboxSession:
    """The session of a pay page (`lock`: FOR UPDATE, in the caller's transaction)."""
    session = rows.select_one(SandboxSession, "token = %s", [token], lock=lock)
    if session is None:
        raise SandboxSessionNotFound()
    return session


def _expire_locked(session: SandboxSession) -> None:
    session.status = SandboxSessionStatus.EXPIRED
    session.save(update_fields=["status", "updated_at"])
    sandbox_webhook_record(session=session, event_type="payment.cancelled", data=event_data(session))


def _charge_changes(card: TestCard, *, now: datetime) -> dict[str, Any]:
    """What charging a test card sets on an open session (attempts counts up too)."""
    if card.outcome == ChargeOutcome.SUCCEEDED:
        return {"status": SandboxSessionStatus.SUCCEEDED, "failure_code": ""}
    if card.outcome == ChargeOutcome.DECLINED:
        # The session stays open: the buyer may try another card.
        return {"failure_code": card.failure_code}
    return {
        "status": SandboxSessionStatus.PENDING,
        "settles_at": now + timedelta(seconds=delayed_confirmation_seconds()),
    }


@cache
def _charge_sql(names: tuple[str, ...], vendor: str) -> tuple[str, tuple[Any, ...], rows.Columns]:
    """UPDATE the open, unexpired session of a token with `names` (and
    attempts + 1, updated_at), RETURNING the whole row; built once per shape."""
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    meta = SandboxSession._meta
    table = meta.db_table
    changed = tuple(meta.get_field(name) for name in (*names, "updated_at"))
    returned = rows.columns(SandboxSession, table)
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in changed)  # type: ignore[union-attr]
    attempts = quote("attempts")
    sql = (
        f"UPDATE {quote(table)} SET {assignments}, {attempts} = {attempts} + 1 "  # noqa: S608
        f"WHERE {quote('token')} = %s AND {quote('status')} = %s AND {quote('expires_at')} > %s "
        f"RETURNING {returned.sql}"
    )
    return sql, changed, returned


def _charge_open(
    *, token: str, card: TestCard, now: datetime, first: Sequence[tuple[str, list[Any]]] = ()
) -> SandboxSession | None:
    """Charge `card` on the token's session if it is open and unexpired, in
    one statement that locks and changes the row and returns it; None (and
    nothing changed) otherwise. A concurrent charge of the same session waits
    on the row and then finds it as that one left it (READ COMMITTED
    re-checks the condition on the new row): a double submit of a paying card
    charges once, and attempts count every charge, declined ones too.
    `first`: statements sent before it in the same round trip (the one that
    makes the transaction's commit lazy)."""
    changes = _charge_changes(card, now=now)
    connection = transaction.get_connection()
    sql, changed, returned = _charge_sql(tuple(changes), connection.vendor)
    values = {**changes, "updated_at": timezone.now()}
    params: list[Any] = [field.get_db_prep_save(values[field.name], connection) for field in changed]
    expires_at = SandboxSession._meta.get_field("expires_at")
    params += [token, SandboxSessionStatus.OPEN, expires_at.get_db_prep_value(now, connection)]
    *_, (_, found) = rows.execute_together(*first, (sql, params))
    if not found:
        return None
    row = found[0]
    return cast(SandboxSession, returned.build(row, connection))


def _record_charge_webhooks(session: SandboxSession, card: TestCard) -> list[SandboxWebhook]:
    if card.outcome == ChargeOutcome.SUCCEEDED:
        return [sandbox_webhook_record(session=session, event_type="payment.succeeded", data=event_data(session))]
    if card.outcome == ChargeOutcome.DECLINED:
        return [
            sandbox_webhook_record(
                session=session, event_type="payment.failed", data=event_data(session, failure_code=card.failure_code)
            )
        ]
    return [
        sandbox_webhook_record(session=session, event_type="payment.pending", data=event_data(session)),
        # The confirmation is a webhook row due later: delivered by the
        # sweeper (or the management command), never by a long ETA.
        sandbox_webhook_record(
            session=session, event_type="payment.succeeded", data=event_data(session), due_at=session.settles_at
        ),
    ]


def sandbox_charge(*, token: str, card_number: str, now: datetime | None = None) -> ChargeResult:
    """The buyer submits a card on the hosted page. A test card on an open
    session is charged by one conditional UPDATE (_charge_open), which locks
    the row, so a double submit charges once; the resulting webhooks are
    recorded with it. Anything else reads the session under its lock to tell
    the buyer why nothing was charged (and expires it if its time is up).

    A charge's commit does not wait for the disk (the sandbox stands in for
    a provider's own servers, whose writes cost our database nothing): its
    webhook, delivered right after, reaches our endpoint, whose synchronous
    commit makes the charge durable with it (the WAL is one sequence). Only
    when no delivery reached our endpoint is the charge flushed on its own
    before the buyer is told it was made; if that fails, so does the
    request, and the buyer pays again (a double submit charges once)."""
    now = now or timezone.now()
    card = TEST_CARDS.get(normalize_card_number(card_number))
    with transaction.atomic():
        lazy = rows.lazy_commit_statements()
        charged = _charge_open(token=token, card=card, now=now, first=lazy) if card is not None else None
        if charged is None:
            # Nothing was charged; what this may write (a lapsed session
            # marked expired) follows from the clock again if it is lost.
            return _not_charged(token=token, card=card, now=now)
        assert card is not None
        webhooks = _record_charge_webhooks(charged, card)
    if lazy and not all(webhook.delivered_inline for webhook in webhooks):
        rows.flush_commits()
    return ChargeResult(card.outcome, charged, card.message, card.failure_code)


def _not_charged(*, token: str, card: TestCard | None, now: datetime) -> ChargeResult:
    """Why a charge changed nothing, read under the session's lock."""
    session = sandbox_session_by_token(token=token, lock=True)
    status = effective_status(session, now=now)
    if status == SandboxSessionStatus.SUCCEEDED:
        return ChargeResult(ChargeOutcome.ALREADY_PAID, session, "This payment has already been made.")
    if status == SandboxSessionStatus.PENDING:
        return ChargeResult(ChargeOutcome.ALREADY_PROCESSING, session, "This payment is being processed.")
    if status == SandboxSessionStatus.EXPIRED:
        if session.status == SandboxSessionStatus.OPEN:
            _expire_locked(session)
        return ChargeResult(ChargeOutcome.EXPIRED, session, "This payment page has expired.")
    # Open and unexpired, so the card is no test card: _charge_open
    # charged any test card on such a session (a session never reopens,
    # and its expiry never moves).
    assert card is None, "an open session refused a test card"
    return ChargeResult(ChargeOutcome.INVALID_CARD, session, "Use one of the sandbox test card numbers listed below.")


def _status_of(session: SandboxSession, *, now: datetime) -> SessionStatus:
    status = effective_status(session, now=now)
    normalized = {
        SandboxSessionStatus.OPEN: ProviderStatus.OPEN,
        SandboxSessionStatus.PENDING: ProviderStatus.PENDING,
        SandboxSessionStatus.SUCCEEDED: ProviderStatus.SUCCEEDED,
        SandboxSessionStatus.EXPIRED: ProviderStatus.EXPIRED,
    }[SandboxSessionStatus(status)]
    return SessionStatus(
        status=normalized,
        provider_payment_id=session.payment_id,
        amount_cents=session.amount_cents,
        currency=session.currency,
        failure_code=session.failure_code,
    )


def sandbox_session_status(*, session_id: str, now: datetime | None = None) -> SessionStatus:
    session = SandboxSession.objects.filter(session_id=session_id).first()
    if session is None:
        raise ProviderRejected("No such sandbox session.", detail={"session_id": session_id})
    return _status_of(session, now=now or timezone.now())


def sandbox_session_expire(*, session_id: str, now: datetime | None = None) -> SessionStatus:
    """Close an open session (sending payment.cancelled); a paid one stays paid."""
    now = now or timezone.now()
    with transaction.atomic():
        session = SandboxSession.objects.select_for_update().filter(session_id=session_id).first()
        if session is None:
            raise ProviderRejected("No such sandbox session.", detail={"session_id": session_id})
        if session.status == SandboxSessionStatus.OPEN:
            _expire_locked(session)
        return _status_of(session, now=now)


def sandbox_refund(*, payment_id: str, amount_cents: int, currency: str, idempotency_key: str) -> SandboxRefund:
    """Refund at the sandbox: idempotent on the key, never more than was paid."""
    refund = SandboxRefund.objects.select_related("session").filter(idempotency_key=idempotency_key).first()
    if refund is None:
        try:
            with transaction.atomic():
                session = SandboxSession.objects.select_for_update().filter(payment_id=payment_id).first()
                if session is None:
                    raise ProviderRejected("No such sandbox payment.", detail={"payment_id": payment_id})
                if effective_status(session, now=timezone.now()) != SandboxSessionStatus.SUCCEEDED:
                    raise ProviderRejected("This sandbox payment has not succeeded.", detail={"payment_id": payment_id})
                if currency != session.currency:
                    raise ProviderRejected("Currency does not match the payment.", detail={"currency": currency})
                if amount_cents <= 0 or session.refunded_cents + amount_cents > session.amount_cents:
                    raise ProviderRejected(
                        "The refund exceeds the refundable amount.",
                        detail={"refundable_cents": session.amount_cents - session.refunded_cents},
                    )
                if session.disputes.exclude(status="won").exists():
                    raise ProviderRejected("A disputed payment cannot be refunded.", detail={"payment_id": payment_id})
                session.refunded_cents += amount_cents
                session.save(update_fields=["refunded_cents", "updated_at"])
                delay = refund_delay_seconds()
                settles_at = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
                refund = SandboxRefund.objects.create(
                    session=session, amount_cents=amount_cents, idempotency_key=idempotency_key, settles_at=settles_at
                )
                if settles_at is not None:
                    sandbox_webhook_record(
                        session=session,
                        event_type="refund.succeeded",
                        data=_refund_data(refund, session),
                        due_at=settles_at,
                    )
                return refund
        except IntegrityError:
            refund = SandboxRefund.objects.select_related("session").get(idempotency_key=idempotency_key)
    if refund.session.payment_id != payment_id or refund.amount_cents != amount_cents:
        raise ProviderRejected(
            "The idempotency key was used with different parameters.", detail={"idempotency_key": idempotency_key}
        )
    return refund


def _refund_data(refund: SandboxRefund, session: SandboxSession) -> dict[str, object]:
    return {
        "refund_id": refund.refund_id,
        "payment_id": session.payment_id,
        "amount_cents": refund.amount_cents,
        "currency": session.currency,
    }


def _dispute_data(dispute: SandboxDispute, session: SandboxSession) -> dict[str, object]:
    return {
        "dispute_id": dispute.dispute_id,
        "payment_id": session.payment_id,
        "amount_cents": dispute.amount_cents,
        "fee_cents": dispute.fee_cents,
        "currency": session.currency,
        "reason": dispute.reason,
        "order_reference": session.order_reference,
    }


def sandbox_dispute_open(
    *,
    payment_id: str,
    amount_cents: int | None = None,
    fee_cents: int = DEFAULT_DISPUTE_FEE_CENTS,
    reason: str = "fraudulent",
) -> SandboxDispute:
    """A card issuer disputes a sandbox payment (all of it by default):
    records the dispute and its dispute.opened webhook in one transaction."""
    with transaction.atomic():
        session = SandboxSession.objects.select_for_update().filter(payment_id=payment_id).first()
        if session is None:
            raise ProviderRejected("No such sandbox payment.", detail={"payment_id": payment_id})
        amount = session.amount_cents if amount_cents is None else amount_cents
        if amount <= 0 or amount > session.amount_cents:
            raise ProviderRejected("A dispute is for part or all of the payment.", detail={"amount_cents": amount})
        dispute = SandboxDispute.objects.create(
            session=session, amount_cents=amount, fee_cents=fee_cents, reason=reason
        )
        sandbox_webhook_record(session=session, event_type="dispute.opened", data=_dispute_data(dispute, session))
        return dispute


def sandbox_dispute_close(*, dispute_id: str, won: bool) -> SandboxDispute:
    """The issuer decides: records dispute.won or dispute.lost (once)."""
    with transaction.atomic():
        dispute = SandboxDispute.objects.select_for_update().select_related("session").get(dispute_id=dispute_id)
        if dispute.status != "open":
            return dispute
        dispute.status = "won" if won else "lost"
        dispute.save(update_fields=["status", "updated_at"])
        sandbox_webhook_record(
            session=dispute.session,
            event_type=f"dispute.{dispute.status}",
            data=_dispute_data(dispute, dispute.session),
        )
        return dispute


# --- payouts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestDestination:
    """What a sandbox payout to this destination does, like the test cards."""

    outcome: SandboxPayoutStatus  # PAID or FAILED, once it settles
    failure_code: str = ""
    stuck: bool = False  # never settles and sends no webhook: only a status call finds it in transit
    returned: bool = False  # paid first, then returned by the bank: payout.failed after payout.paid
    rejected: bool = False  # refused at once: the payout call raises ProviderRejected


TEST_DESTINATIONS: dict[str, TestDestination] = {
    "000123456789": TestDestination(SandboxPayoutStatus.PAID),
    "000111111116": TestDestination(SandboxPayoutStatus.FAILED, "no_account"),
    "000111111113": TestDestination(SandboxPayoutStatus.FAILED, "account_closed"),
    "000222222227": TestDestination(SandboxPayoutStatus.FAILED, "insufficient_funds"),
    "000444444440": TestDestination(SandboxPayoutStatus.PAID, stuck=True),
    "000555555559": TestDestination(SandboxPayoutStatus.PAID, "account_closed", returned=True),
    "000999999991": TestDestination(SandboxPayoutStatus.FAILED, "invalid_account_number", rejected=True),
}
DEFAULT_DESTINATION = TEST_DESTINATIONS["000123456789"]
DEFAULT_PAYOUT_DELAY_SECONDS = 30


def payout_delay_seconds() -> int:
    """How long a sandbox payout is in transit before its webhook (and a
    returned one, as long again before it comes back)."""
    return int(getattr(settings, "SANDBOX_PAYOUT_DELAY_SECONDS", DEFAULT_PAYOUT_DELAY_SECONDS))


def payout_destination_rule(destination: str) -> TestDestination:
    """The test destination's rule; any other destination is paid."""
    return TEST_DESTINATIONS.get(normalize_card_number(destination), DEFAULT_DESTINATION)


def _payout_data(payout: SandboxPayout, *, status: str, failure_code: str = "") -> dict[str, object]:
    return {
        "payout_id": payout.payout_id,
        "payout_reference": payout.reference,
        "amount_cents": payout.amount_cents,
        "currency": payout.currency,
        "status": status,
        "failure_code": failure_code,
    }


def sandbox_payout(
    *, amount_cents: int, currency: str, destination: str, idempotency_key: str, reference: str = ""
) -> SandboxPayout:
    """Make a payout at the sandbox. Idempotent on the key (the same key with
    other parameters is refused). Its fate follows the destination (see
    TEST_DESTINATIONS): it is in transit now, and its payout.paid or
    payout.failed webhook is recorded with it, due after
    payout_delay_seconds() (a returned payout also gets a payout.failed due
    as long again after that; a stuck one gets none)."""
    if amount_cents <= 0:
        raise ProviderRejected("A payout needs a positive amount.", detail={"amount_cents": amount_cents})
    rule = payout_destination_rule(destination)
    if rule.rejected:
        raise ProviderRejected(
            "The sandbox refused the payout destination.", detail={"failure_code": rule.failure_code}
        )
    payout = SandboxPayout.objects.filter(idempotency_key=idempotency_key).first()
    if payout is None:
        try:
            with transaction.atomic():
                now = timezone.now()
                delay = timedelta(seconds=max(payout_delay_seconds(), 0))
                payout = SandboxPayout.objects.create(
                    idempotency_key=idempotency_key,
                    amount_cents=amount_cents,
                    currency=currency,
                    destination=destination,
                    reference=reference,
                    outcome=rule.outcome,
                    failure_code="" if rule.returned else rule.failure_code,
                    settles_at=None if rule.stuck else now + delay,
                    returns_at=now + 2 * delay if rule.returned else None,
                )
                if payout.settles_at is not None:
                    sandbox_webhook_record(
                        session=None,
                        payout=payout,
                        event_type=f"payout.{rule.outcome}",
                        data=_payout_data(payout, status=rule.outcome, failure_code=payout.failure_code),
                        due_at=payout.settles_at,
                    )
                if payout.returns_at is not None:
                    sandbox_webhook_record(
                        session=None,
                        payout=payout,
                        event_type="payout.failed",
                        data=_payout_data(payout, status=SandboxPayoutStatus.FAILED, failure_code=rule.failure_code),
                        due_at=payout.returns_at,
                    )
                return payout
        except IntegrityError:
            payout = SandboxPayout.objects.get(idempotency_key=idempotency_key)
    if (payout.amount_cents, payout.currency, payout.destination) != (amount_cents, currency, destination):
        raise ProviderRejected(
            "The idempotency key was used with different parameters.", detail={"idempotency_key": idempotency_key}
        )
    return payout


def payout_effective_status(payout: SandboxPayout, *, now: datetime) -> str:
    """A payout counts as settled (or returned) once its time has passed,
    whether or not the sweeper has written that down yet."""
    if payout.returns_at is not None and payout.returns_at <= now:
        return SandboxPayoutStatus.FAILED
    if payout.status == SandboxPayoutStatus.IN_TRANSIT and payout.settles_at and payout.settles_at <= now:
        return payout.outcome
    return payout.status


def sandbox_payout_status(*, payout_id: str, now: datetime | None = None) -> ProviderPayout:
    payout = SandboxPayout.objects.filter(payout_id=payout_id).first()
    if payout is None:
        raise ProviderRejected("No such sandbox payout.", detail={"payout_id": payout_id})
    status = payout_effective_status(payout, now=now or timezone.now())
    failure_code = ""
    if status == SandboxPayoutStatus.FAILED:
        failure_code = payout.failure_code or payout_destination_rule(payout.destination).failure_code or "failed"
    return ProviderPayout(
        provider_payout_id=payout.payout_id,
        state=PayoutState(status),
        amount_cents=payout.amount_cents,
        currency=payout.currency,
        failure_code=failure_code,
    )
