"""Payment sessions: open a hosted payment page for an order, and close it.

No transaction is ever held while a provider is called. Opening a session is
three short phases:
  1. record the PaymentSession and its Payment ("created") under the unique
     idempotency key;
  2. call provider.create_session with the same key, outside any transaction;
  3. lock the session, store the provider's id and payment URL, open it.
If phase 2 fails the rows stay "created": calling again with the same key
resumes at phase 2, and the provider returns the session it may already have
made (it honours the key too).

An in-process provider (the sandbox) is our own database: its session cannot
fail to open remotely, so the three phases are one transaction and the
session is written once, already open. The provider decides its session
first (plan_session: its id and URL drawn), ours is inserted with them, then
the provider's row is written, and the audit row of our session's created ->
open transition: the same rows as the three phases leave, one UPDATE fewer.
The payment's row and the audit row need no answer: inside
ticketing.rows.deferred() (the checkout's pass) they travel with the next
statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from payments.exceptions import (
    IdempotencyKeyReused,
    OrderNotPayable,
    PaymentReferenceConflict,
    PaymentSessionNotFound,
)
from payments.locks import lock_session
from payments.models import Payment, PaymentSession, PaymentSessionStatus
from payments.providers import get_provider
from payments.providers.base import CreatedSession, PaymentProvider, PlannedSession, SessionRequest
from payments.services.payments import payment_apply_provider_status, payment_mark_cancelled
from ticketing import rows
from ticketing.exceptions import InvalidInput
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Order, OrderStatus
from ticketing.rows import insert_unless_exists


def _check_key(idempotency_key: str) -> None:
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidInput(
            "An idempotency key of 1 to 255 characters is required.", detail={"field": "idempotency_key"}
        )


def _session_record(
    *,
    order: Order,
    provider: str,
    idempotency_key: str,
    success_url: str,
    cancel_url: str,
    expires_at: datetime,
    durable: bool = True,
    order_is_current: bool = False,
    in_process: PaymentProvider | None = None,
    by: Any = None,
) -> PaymentSession:
    """Phase 1: the rows, or the ones an earlier call with this key made.
    `durable`: the provider is called over the network right after this, which
    must never happen inside a caller's transaction. The refusals are raised
    after the block, which then wrote nothing: without `durable` it has no
    savepoint, and a caller may still go on after catching one.
    `in_process`: the in-process provider that opens the session here, in
    this transaction; ours is then written once, already open (a replay
    under the key finds the rows and writes nothing)."""
    with transaction.atomic(durable=durable, savepoint=durable):
        current: Mapping[str, Any] | None
        if order_is_current:
            current = {"status": order.status, "total_cents": order.total_cents, "currency": order.currency}
        else:
            try:
                current = Order.objects.values("status", "total_cents", "currency").get(pk=order.pk)
            except Order.DoesNotExist:
                current = None
        session: PaymentSession | None = None
        if current is not None and current["status"] == OrderStatus.PENDING and current["total_cents"] > 0:
            session = PaymentSession(
                organization_id=order.organization_id,
                order=order,
                provider=provider,
                amount_cents=current["total_cents"],
                currency=current["currency"].upper(),
                success_url=success_url,
                cancel_url=cancel_url,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                status=PaymentSessionStatus.CREATED if in_process is None else PaymentSessionStatus.OPEN,
            )
            planned = None if in_process is None else _session_plan(session, order=order, backend=in_process)
            if insert_unless_exists(session, conflict=("idempotency_key",)) is None:
                session = None
            else:
                # Nobody refers to the payment in this transaction: its row
                # goes with the next statement (inside ticketing.rows.deferred,
                # as the checkout's pass is). Made by ids, so that no
                # instance without its key is cached on the session.
                payment = Payment(
                    organization_id=order.organization_id,
                    order_id=order.pk,
                    session_id=session.pk,
                    provider=provider,
                    amount_cents=session.amount_cents,
                    currency=session.currency,
                )
                rows.insert_later([payment])
                if planned is not None:
                    planned.write()
                    _session_audit_opened(session, by=by)
        if session is None:
            # An earlier call with this key (perhaps a concurrent one: the
            # unique index let us through once it committed) made the rows;
            # it stands even if the order is no longer payable.
            session = PaymentSession.objects.filter(idempotency_key=idempotency_key).first()
    if session is None:
        if current is None or current["status"] != OrderStatus.PENDING:
            raise OrderNotPayable(detail={"order": order.pk, "status": current and current["status"]})
        raise OrderNotPayable("There is nothing to pay on this order.", detail={"order": order.pk})
    if session.order_id != order.pk or session.provider != provider:
        raise IdempotencyKeyReused(
            detail={"idempotency_key": idempotency_key, "order": session.order_id, "provider": session.provider}
        )
    return session


def _session_request(session: PaymentSession, order: Order | None = None) -> SessionRequest:
    if order is None or order.pk != session.order_id:
        order = Order.objects.select_related("event").get(pk=session.order_id)
    return SessionRequest(
        reference=session.reference,
        order_code=order.code,
        amount_cents=session.amount_cents,
        currency=session.currency,
        description=f"{order.event.name}: order {order.code}",
        buyer_email=order.buyer_email,
        success_url=session.success_url,
        cancel_url=session.cancel_url,
        expires_at=session.expires_at,
        created_at=session.created_at,
    )


def _session_open(*, session_id: int, created: CreatedSession, by: Any) -> PaymentSession:
    """Phase 3: store what the provider made and open the session."""
    with transaction.atomic(), lock_timeout():
        session = lock_session(session_id=session_id)
        if session.provider_session_id and session.provider_session_id != created.provider_session_id:
            raise PaymentReferenceConflict(
                detail={"expected": session.provider_session_id, "received": created.provider_session_id}
            )
        # A webhook may have beaten us here and already completed the session;
        # the provider's id and URL are still worth keeping.
        _session_store(session, created=created, by=by)
        return session


def _session_fill(session: PaymentSession, *, created: CreatedSession) -> None:
    """Keep what the provider made, in memory."""
    session.provider_session_id = created.provider_session_id
    session.payment_url = created.payment_url
    if created.expires_at is not None:
        session.expires_at = created.expires_at


def _opened_reason(session: PaymentSession) -> str:
    return f"opened at {session.provider}"


def _session_store(session: PaymentSession, *, created: CreatedSession, by: Any) -> None:
    """In the caller's transaction, holding the session row: keep what the
    provider made and open the session."""
    _session_fill(session, created=created)
    if can_proceed(session.open):
        session.open(by=by, reason=_opened_reason(session))
    session.save(update_fields=["provider_session_id", "payment_url", "expires_at", "status", "updated_at"])


def _session_plan(session: PaymentSession, *, order: Order, backend: PaymentProvider) -> PlannedSession:
    """Phases 2 and 3 of an in-process provider, before our session (made
    open) is written: the provider decides its session, ours takes its id and
    URL. Nothing is written yet; the caller writes ours, then `write()`s the
    provider's."""
    session.created_at = timezone.now()  # sent to the provider as the anchor of the key, and written as it is
    planned = backend.plan_session(_session_request(session, order), idempotency_key=session.idempotency_key)
    _session_fill(session, created=planned.created)
    return planned


def _session_audit_opened(session: PaymentSession, *, by: Any) -> None:
    """The audit row of the created -> open transition of a session written
    open: what session.open() writes when it runs on a saved row."""
    AuditLogEntry.objects.record_many(
        objects=[session],
        field="status",
        source=PaymentSessionStatus.CREATED,
        target=PaymentSessionStatus.OPEN,
        transition=PaymentSession.open.__name__,
        actor=by,
        reason=_opened_reason(session),
    )


def payment_session_create(
    *,
    order: Order,
    provider: str,
    idempotency_key: str,
    success_url: str = "",
    cancel_url: str = "",
    expires_at: datetime | None = None,
    by: Any = None,
    order_is_current: bool = False,
) -> PaymentSession:
    """Open a hosted payment page for a pending order at `provider`; the buyer
    goes to the returned session's `payment_url`.

    Idempotent on `idempotency_key`: the same key returns the same session
    (resuming it if an earlier call failed half-way); the same key for another
    order or provider raises IdempotencyKeyReused. The amount and currency are
    the order's total at the time of the first call. `expires_at` defaults to
    the order's expiry (or CHECKOUT_HOLD_MINUTES from now). Must not be called
    inside a transaction, unless the provider is in process (the sandbox):
    others are called over the network. Raises
    OrderNotPayable, ProviderUnknown, ProviderUnavailable (retry with the same
    key) or ProviderRejected. `order_is_current`: the caller made `order` in
    its transaction, or read it just now, so its status and total are taken
    as they are rather than read again."""
    _check_key(idempotency_key)
    backend = get_provider(provider)
    now = timezone.now()
    expires_at = expires_at or order.expires_at or now + timedelta(minutes=settings.CHECKOUT_HOLD_MINUTES)
    if expires_at <= now:
        raise InvalidInput("The payment session would already be expired.", detail={"expires_at": str(expires_at)})
    site = settings.SITE_URL
    record = partial(
        _session_record,
        order=order,
        provider=provider,
        idempotency_key=idempotency_key,
        success_url=success_url or f"{site}/",
        cancel_url=cancel_url or f"{site}/",
        expires_at=expires_at,
        order_is_current=order_is_current,
    )
    if backend.in_process:
        # The provider is our own database: the three phases are one
        # transaction (the caller's, if any), and the session is written once,
        # already open (see the module docstring). No savepoint inside a
        # caller's transaction (two statements of the checkout's hot path): a
        # refusal (key reused, order not payable) wrote nothing and is raised
        # after the block, so a caller may go on after catching one; any other
        # failure fails the caller's transaction too.
        refusal: IdempotencyKeyReused | OrderNotPayable | None = None
        with transaction.atomic(savepoint=False):
            try:
                session = record(durable=False, in_process=backend, by=by)
            except (IdempotencyKeyReused, OrderNotPayable) as exc:
                refusal = exc
            else:
                if session.status == PaymentSessionStatus.CREATED:
                    # Left created by the two-phase way (or an earlier
                    # version): resume it as that way does.
                    created = backend.create_session(_session_request(session, order), idempotency_key=idempotency_key)
                    _session_store(session, created=created, by=by)
        if refusal is not None:
            raise refusal
        return session
    session = record()
    if session.status != PaymentSessionStatus.CREATED:
        return session
    created = backend.create_session(_session_request(session), idempotency_key=session.idempotency_key)
    return _session_open(session_id=session.pk, created=created, by=by)


def payment_session_expire(*, session_id: int, by: Any = None, reason: str = "") -> Payment:
    """Close the session at the provider so it can no longer be paid, then
    record the final state: cancelled, or succeeded/pending if the buyer paid
    before it closed (the caller must then keep or refund the money). Calls the
    provider outside any transaction; idempotent."""
    with transaction.atomic(durable=True):
        session = PaymentSession.objects.select_related("payment").filter(pk=session_id).first()
    if session is None:
        raise PaymentSessionNotFound(detail={"session": session_id})
    payment = session.payment
    reason = reason or "payment session expired"
    if not session.provider_session_id:
        # The provider never confirmed this session and its URL was never
        # handed out, so there is nothing to close there.
        return payment_mark_cancelled(payment_id=payment.pk, by=by, reason=reason)[0]
    status = get_provider(session.provider).expire_session(provider_session_id=session.provider_session_id)
    return payment_apply_provider_status(payment=payment, status=status, by=by, reason=reason)[0]
