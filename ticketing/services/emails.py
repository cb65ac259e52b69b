"""E-mail deliveries: recorded in the transaction that causes them, sent after.

`email_delivery_record` writes the row (deduplicated by key) inside the
caller's transaction; the caller queues the send through the outbox, so a
crash cannot lose it. `email_delivery_send` claims the row with a
compare-and-set (pending -> sending) so two workers never both send it,
renders the message at send time (QR codes included), sends, and marks it
sent. With it go the fresh deliveries just after it (a batch: one claim, one
read, one SMTP connection), each still claimed, sent and marked on its own.
A claim left behind by a killed worker is taken over after
settings.EMAIL_CLAIM_SECONDS (its own task may take it back at once)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.mime.image import MIMEImage
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from ticketing import rows
from ticketing.models import DeliveryStatus, EmailDelivery, EmailKind, EventSigningKey, Order, Ticket
from ticketing.qr import qr_png
from ticketing.rows import insert_unless_exists
from ticketing.selectors import email_rows
from ticketing.services.signing_keys import signing_key_for_event
from ticketing.ticket_codes import ticket_code_sign

logger = logging.getLogger(__name__)


def claim_timeout() -> timedelta:
    """How old a claim is when it counts as abandoned: longer than a send may
    take (settings.EMAIL_TIMEOUT bounds the SMTP conversation)."""
    return timedelta(seconds=settings.EMAIL_CLAIM_SECONDS)


_SUBJECTS: dict[str, str] = {
    EmailKind.TICKETS: "Your tickets for {event}",
    EmailKind.ORDER_CANCELLED: "Your order for {event} was cancelled",
    EmailKind.LATE_PAYMENT_REFUNDED: "Your payment for {event} was refunded",
    EmailKind.REFUND: "Your refund for {event}",
    EmailKind.TICKET_TRANSFERRED: "A ticket for {event} was transferred to you",
}
# Kinds that carry QR codes. A delivery whose context names `ticket_ids`
# carries only those tickets (a transferred ticket goes to its new holder
# alone, never the rest of the buyer's order).
_WITH_CODES = frozenset({EmailKind.TICKETS, EmailKind.TICKET_TRANSFERRED})


def email_delivery_record(
    *, order: Order, kind: str, dedup_key: str, context: dict[str, Any] | None = None, to_email: str = ""
) -> EmailDelivery:
    """Record an e-mail to the buyer (or to `to_email`, e.g. a ticket's new
    holder) in the caller's transaction; idempotent on `dedup_key`."""
    assert transaction.get_connection().in_atomic_block, "record the e-mail in the transaction that causes it"
    delivery = EmailDelivery(
        organization_id=order.organization_id,
        order=order,
        kind=kind,
        to_email=to_email or order.buyer_email,
        dedup_key=dedup_key,
        context=context or {},
        created_at=timezone.now(),
    )
    if insert_unless_exists(delivery, fields=_RECORD_FIELDS, conflict=("dedup_key",)) is None:
        return EmailDelivery.objects.get(dedup_key=dedup_key)
    return delivery


_RECORD_FIELDS = (
    "organization",
    "order",
    "kind",
    "to_email",
    "dedup_key",
    "context",
    "status",
    "attempts",
    "last_error",
    "claimed_by",
    "created_at",
)


@cache
def _claim_sql(*, by_claimant: bool, vendor: str) -> tuple[str, rows.Columns]:
    """The claim of a batch, in one statement: the delivery asked for if it
    is claimable (pending, abandoned, or left by this claimant), and then
    the next ones by id (at most `size` in all, within a window of ids) that
    are fresh (pending and never tried: a retry keeps to its own message and
    its backoff) or that this claimant left (a batch whose worker died).
    Nothing when the delivery asked for is not claimable (a batch sent it):
    its message then costs this one statement, and the next message whose
    delivery is still waiting takes the next batch. Looking only just past
    the delivery keeps the statement a short walk of the primary key,
    however many rows (and dead versions of rows) the table holds. A row
    that another worker changed meanwhile is read again and its conditions
    checked again (PostgreSQL, at the lock and at the UPDATE), so of two
    workers racing for a row only one claims it; SQLite runs one writer at a
    time."""
    q = transaction.get_connection().ops.quote_name
    table, pk, status, claimed_at, claimed_by, attempts = (
        q(name) for name in (EmailDelivery._meta.db_table, "id", "status", "claimed_at", "claimed_by", "attempts")
    )

    def own(alias: str) -> str:
        cases = [
            f"{alias}{status} = %s",
            f"({alias}{status} = %s AND {alias}{claimed_at} < %s)",
        ]
        if by_claimant:
            cases.append(f"({alias}{status} = %s AND {alias}{claimed_by} = %s)")
        return f"{alias}{pk} = %s AND ({' OR '.join(cases)})"

    fresh = f"({status} = %s AND {attempts} = 0)"
    mine = f" OR ({status} = %s AND {claimed_by} = %s)" if by_claimant else ""
    window = f"{pk} >= %s AND {pk} <= %s"
    claimable = f"{window} AND (({own('')}) OR ({pk} > %s AND ({fresh}{mine})))"
    # Fresh ones only along with the delivery asked for: the message of one
    # that a batch sent costs a statement, not a batch of its own.
    alias = q("own")
    asked_for = f"EXISTS (SELECT 1 FROM {table} AS {alias} WHERE {own(alias + '.')})"  # noqa: S608
    candidates = f"{window} AND (({own('')}) OR ({pk} > %s AND (({fresh} AND {asked_for}){mine})))"
    # Rows locked in id order, so that claims racing over the same rows wait
    # for each other (a claim commits at once) and never deadlock.
    features = transaction.get_connection().features
    lock = ""
    if features.has_select_for_no_key_update:
        lock = " FOR NO KEY UPDATE"
    elif features.has_select_for_update:
        lock = " FOR UPDATE"
    returned = rows.columns(EmailDelivery, EmailDelivery._meta.db_table, _CLAIMED_FIELDS)
    # The batch is chosen once, in a CTE: as a subquery of the UPDATE it could
    # be scanned again for each row, and a locking scan skips the rows this
    # statement has just updated, so LIMIT would not hold.
    batch = q("batch")
    sql = (
        f"WITH {batch} AS (SELECT {pk} FROM {table} WHERE {candidates} ORDER BY {pk} LIMIT %s{lock}) "  # noqa: S608
        f"UPDATE {table} SET {status} = %s, {claimed_at} = %s, {claimed_by} = %s, {attempts} = {attempts} + 1 "
        f"WHERE {pk} IN (SELECT {pk} FROM {batch}) AND {claimable} RETURNING {returned.sql}"
    )
    return sql, returned


# What sending reads of a claimed delivery.
_CLAIMED_FIELDS = ("id", "order", "kind", "to_email", "context", "status", "attempts", "claimed_at", "claimed_by")


# How far past the delivery asked for a batch looks, in ids per e-mail of the
# batch: the deliveries of a rush have nearly consecutive ids, other e-mails
# and other workers' batches take some.
_WINDOW_PER_EMAIL = 4


def _claim(*, delivery_id: int, now: datetime, claimant: str, size: int) -> list[EmailDelivery]:
    """Claim `delivery_id` and up to `size` - 1 of the deliveries after it in
    one statement; the claimed rows, by id (`delivery_id` first if claimed)."""
    connection = transaction.get_connection()
    claimed_at = EmailDelivery._meta.get_field("claimed_at")
    when = claimed_at.get_db_prep_value(now, connection)
    abandoned_before = claimed_at.get_db_prep_value(now - claim_timeout(), connection)
    pending, sending = DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value
    last = delivery_id + (size - 1) * _WINDOW_PER_EMAIL
    own: list[Any] = [delivery_id, pending, sending, abandoned_before]
    mine: list[Any] = []
    if claimant:
        own += [sending, claimant]
        mine = [sending, claimant]
    window = [delivery_id, last]
    claimable = [*window, *own, delivery_id, pending, *mine]
    candidates = [*window, *own, delivery_id, pending, *own, *mine]
    params = [*candidates, size, sending, when, claimant, *claimable]
    sql, returned = _claim_sql(by_claimant=bool(claimant), vendor=connection.vendor)
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    claimed = [cast(EmailDelivery, returned.build(row, connection)) for row in found]
    return sorted(claimed, key=lambda d: d.pk)


def _message(
    *, delivery: EmailDelivery, order: Order, tickets: list[Ticket], keys: dict[int, EventSigningKey]
) -> EmailMultiAlternatives:
    """Render the delivery: `order` with its event selected, its valid
    tickets (with their ticket types and seats), and `keys`, the active
    signing keys by event (an event's first key is made and kept there)."""
    if "ticket_ids" in delivery.context:
        wanted = set(delivery.context["ticket_ids"])
        tickets = [t for t in tickets if t.pk in wanted]
    codes: dict[int, str] = {}
    if delivery.kind in _WITH_CODES and tickets:
        key = keys.get(order.event_id)  # one key for the order's tickets
        if key is None:
            key = keys[order.event_id] = signing_key_for_event(event=order.event)
        for ticket in tickets:
            codes[ticket.pk] = ticket_code_sign(ticket=ticket, key=key)
    context = {
        "order": order,
        "event": order.event,
        "tickets": [{"ticket": t, "cid": f"ticket-{t.pk}"} for t in tickets],
        "order_url": f"{settings.SITE_URL}/orders/{order.code}/",
        **delivery.context,
    }
    subject = _SUBJECTS.get(delivery.kind, "{event}").format(event=order.event.name)
    text = render_to_string(f"emails/{delivery.kind}.txt", context)
    html = render_to_string(f"emails/{delivery.kind}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [delivery.to_email])
    message.attach_alternative(html, "text/html")
    # Receivers that see the same Message-ID twice show one message, in the
    # rare case a worker dies between sending and recording it.
    message.extra_headers["Message-ID"] = f"<delivery-{delivery.pk}@{settings.DEFAULT_FROM_EMAIL.split('@')[-1]}>"
    message.mixed_subtype = "related"  # type: ignore[attr-defined]  # inline images; missing from the stubs
    for ticket in tickets:
        if ticket.pk not in codes:
            continue  # e-mails without codes (a refund) attach no images
        image = MIMEImage(qr_png(codes[ticket.pk]), "png")
        image.add_header("Content-ID", f"<ticket-{ticket.pk}>")
        image.add_header("Content-Disposition", "inline", filename=f"ticket-{ticket.pk}.png")
        message.attach(image)
    return message


def email_delivery_send(
    *, delivery_id: int, now: datetime | None = None, claimant: str = "", batch: int | None = None
) -> bool:
    """Send a delivery, and with it up to `batch` - 1 of those waiting after
    it (default settings.EMAIL_BATCH_SIZE); True if this call sent
    `delivery_id`.

    Safe to call any number of times: every delivery is claimed before it is
    sent and sent at most once per claim. The batch is claimed in one
    statement, read in one (two if an order has no valid tickets left) and
    sent over one connection; each delivery is marked sent as soon as it is
    sent. A worker killed mid-batch leaves the rest claimed: taken back at
    once by its own message if that is delivered again (`claimant`, the
    task's id), by anyone after settings.EMAIL_CLAIM_SECONDS (the resend
    sweeper queues them). No send starts after half of that time: the rest
    are handed back. A failed send hands its delivery back with the error
    (and the rest of the batch untried), and raises if it was `delivery_id`,
    so the caller (a Celery task) retries it with backoff; the others are
    retried by their own messages or the resend sweeper. `claimant` may take
    over its own claims left behind by a crash or an outage (the message's
    Message-ID lets receivers drop the rare second copy)."""
    now = now or timezone.now()
    size = max(1, batch or settings.EMAIL_BATCH_SIZE)
    claimed = _claim(delivery_id=delivery_id, now=now, claimant=claimant, size=size)
    if not claimed:
        return False
    found = email_rows(order_ids=[d.order_id for d in claimed])
    keys = dict(found.signing_keys)
    # A send started by then ends (EMAIL_TIMEOUT) long before the claims expire.
    deadline = now + claim_timeout() / 2
    mailer = get_connection()
    try:
        for index, delivery in enumerate(claimed):
            if index and timezone.now() >= deadline:
                _hand_back(claimed[index:], now=now)
                break
            try:
                order = found.orders[delivery.order_id]
                message = _message(
                    delivery=delivery,
                    order=order,
                    tickets=found.tickets.get(order.pk, []),
                    keys=keys,
                )
                mailer.open()  # once: the batch shares the connection
                mailer.send_messages([message])
            except Exception as exc:
                EmailDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
                    status=DeliveryStatus.PENDING, claimed_at=None, last_error=str(exc)[:2000]
                )
                _hand_back(claimed[index + 1 :], now=now)
                if delivery.pk == delivery_id:
                    raise
                logger.warning("e-mail delivery %s not sent; it is retried on its own", delivery.pk, exc_info=True)
                break
            delivery.status, delivery.sent_at = DeliveryStatus.SENT, timezone.now()
            rows.save_fields(delivery, ("status", "sent_at"))
    finally:
        _close(mailer)
    return claimed[0].pk == delivery_id and claimed[0].status == DeliveryStatus.SENT


def _hand_back(deliveries: list[EmailDelivery], *, now: datetime) -> None:
    """Release claimed deliveries that were not tried: pending again, as
    they were (the claim's attempt does not count)."""
    if deliveries:
        EmailDelivery.objects.filter(
            pk__in=[d.pk for d in deliveries], status=DeliveryStatus.SENDING, claimed_at=now
        ).update(status=DeliveryStatus.PENDING, claimed_at=None, attempts=F("attempts") - 1)


def _close(mailer: Any) -> None:
    # What is sent is recorded: a connection that fails to say goodbye must
    # not fail the task (its retry would find nothing to send).
    try:
        mailer.close()
    except Exception:
        logger.warning("closing the e-mail connection failed", exc_info=True)


def email_delivery_give_up(*, delivery_id: int, error: str) -> None:
    EmailDelivery.objects.filter(pk=delivery_id).exclude(status=DeliveryStatus.SENT).update(
        status=DeliveryStatus.FAILED, last_error=error[:2000]
    )


def email_deliveries_due(*, older_than: timedelta | None = None, batch: int = 200) -> list[int]:
    """Deliveries that should have gone out by now (their send was lost, or
    sits unacknowledged with a worker that died: the broker hands it on only
    after its visibility timeout). `older_than` defaults to
    settings.EMAIL_RESEND_AFTER_SECONDS."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.EMAIL_RESEND_AFTER_SECONDS))
    stale = Q(status=DeliveryStatus.PENDING, created_at__lt=cutoff) | Q(
        status=DeliveryStatus.SENDING, claimed_at__lt=timezone.now() - claim_timeout()
    )
    return list(EmailDelivery.objects.filter(stale).order_by("pk").values_list("pk", flat=True)[:batch])
