"""E-mail deliveries: recorded in the transaction that causes them, sent after.

`email_delivery_record` writes the row (deduplicated by key) inside the
caller's transaction; after the commit the caller rings the e-mail bell
(ticketing.services.email_bell), so a crash cannot lose it (the row is the
outbox; the resend sweeper finds what no message announced).

Two ways out, each claiming with a compare-and-set (pending -> sending) so
that no two workers send one delivery, rendering at send time (QR codes
included), sending, and marking each delivery sent as soon as it is sent:

- `email_deliveries_drain` (the bell's task): the fresh deliveries (pending,
  never tried), oldest first, in batches (one claim, one read and one SMTP
  connection per batch) until a claim finds none;
- `email_delivery_send` (a delivery's own message): one delivery, whatever
  its attempts: the retries with their backoff, the resend sweeper's, the
  outbox's.

A claim left behind by a killed worker is taken over after
settings.EMAIL_CLAIM_SECONDS, or at once by its own message delivered again
(`claimant`, the Celery task id)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
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
from ticketing.services.email_bell import email_bell_hold, email_bell_silence
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


# What sending reads of a claimed delivery.
_CLAIMED_FIELDS = ("id", "order", "kind", "to_email", "context", "status", "attempts", "claimed_at", "claimed_by")


def _quoted() -> tuple[str, ...]:
    """The table and the columns the claims use, quoted."""
    q = transaction.get_connection().ops.quote_name
    names = (EmailDelivery._meta.db_table, "id", "status", "claimed_at", "claimed_by", "attempts")
    return tuple(q(name) for name in names)


@cache
def _claim_sql(*, by_claimant: bool, vendor: str) -> tuple[str, rows.Columns]:
    """The claim of one delivery: if it is pending (whatever its attempts:
    the retries come this way), abandoned, or left by this claimant. A row
    another worker changed meanwhile is checked again at the UPDATE
    (PostgreSQL), so of two workers racing for it only one claims it;
    SQLite runs one writer at a time."""
    table, pk, status, claimed_at, claimed_by, attempts = _quoted()
    cases = [f"{status} = %s", f"({status} = %s AND {claimed_at} < %s)"]
    if by_claimant:
        cases.append(f"({status} = %s AND {claimed_by} = %s)")
    returned = rows.columns(EmailDelivery, EmailDelivery._meta.db_table, _CLAIMED_FIELDS)
    sql = (
        f"UPDATE {table} SET {status} = %s, {claimed_at} = %s, {claimed_by} = %s, {attempts} = {attempts} + 1 "  # noqa: S608
        f"WHERE {pk} = %s AND ({' OR '.join(cases)}) RETURNING {returned.sql}"
    )
    return sql, returned


def _claim(*, delivery_id: int, now: datetime, claimant: str) -> EmailDelivery | None:
    connection = transaction.get_connection()
    claimed_at = EmailDelivery._meta.get_field("claimed_at")
    when = claimed_at.get_db_prep_value(now, connection)
    abandoned_before = claimed_at.get_db_prep_value(now - claim_timeout(), connection)
    pending, sending = DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value
    params: list[Any] = [sending, when, claimant, delivery_id, pending, sending, abandoned_before]
    if claimant:
        params += [sending, claimant]
    sql, returned = _claim_sql(by_claimant=bool(claimant), vendor=connection.vendor)
    _, found = rows.execute(sql, params)
    return cast(EmailDelivery, returned.build(found[0], connection)) if found else None


# Fresh: pending and never tried. Written into the statement rather than
# bound: the generic plan of a prepared statement could not use the partial
# index of pending deliveries for a parameter.
_FRESH = f"{{status}} = '{DeliveryStatus.PENDING.value}' AND {{attempts}} = 0"


@cache
def _drain_claim_sql(*, take_back: bool, vendor: str) -> tuple[str, rows.Columns]:
    """The claim of a drain's batch, in one statement: up to `size` fresh
    deliveries (a retry keeps to its own message and its backoff), oldest
    first; with `take_back`, also up to `size` that this claimant left
    claimed (its message delivered again after its worker died). The rows
    are chosen in CTEs: as a subquery of the UPDATE, a locking scan could
    run again and skip the rows just updated, so LIMIT would not hold. On
    PostgreSQL they are locked with SKIP LOCKED: two drains never wait for
    each other nor claim one row, and a row that a delivery's own claim holds
    is left to it (which claims it). SQLite runs one writer at a time."""
    connection = transaction.get_connection()
    q = connection.ops.quote_name
    table, pk, status, claimed_at, claimed_by, attempts = _quoted()
    features = connection.features
    lock = ""
    if features.has_select_for_update_skip_locked:
        # NO KEY: the lock the UPDATE takes anyway (no key column changes).
        kind = "NO KEY UPDATE" if features.has_select_for_no_key_update else "UPDATE"
        lock = f" FOR {kind} SKIP LOCKED"
    fresh = _FRESH.format(status=status, attempts=attempts)
    ctes = [f"{q('fresh')} AS (SELECT {pk} FROM {table} WHERE {fresh} ORDER BY {pk} LIMIT %s{lock})"]  # noqa: S608
    chosen = f"SELECT {pk} FROM {q('fresh')}"  # noqa: S608
    claimable = f"({fresh})"
    if take_back:
        mine = f"{status} = %s AND {claimed_by} = %s"
        ctes.insert(0, f"{q('mine')} AS (SELECT {pk} FROM {table} WHERE {mine} ORDER BY {pk} LIMIT %s{lock})")  # noqa: S608
        chosen = f"SELECT {pk} FROM {q('mine')} UNION ALL {chosen}"  # noqa: S608
        claimable = f"({fresh}) OR ({mine})"
    returned = rows.columns(EmailDelivery, EmailDelivery._meta.db_table, _CLAIMED_FIELDS)
    sql = (
        f"WITH {', '.join(ctes)} "  # noqa: S608
        f"UPDATE {table} SET {status} = %s, {claimed_at} = %s, {claimed_by} = %s, {attempts} = {attempts} + 1 "
        f"WHERE {pk} IN ({chosen}) AND ({claimable}) RETURNING {returned.sql}"
    )
    return sql, returned


def _drain_claim(*, now: datetime, claimant: str, size: int, take_back: bool) -> list[EmailDelivery]:
    """Claim a drain's batch; the claimed rows, by id."""
    connection = transaction.get_connection()
    when = EmailDelivery._meta.get_field("claimed_at").get_db_prep_value(now, connection)
    sending = DeliveryStatus.SENDING.value
    take_back = take_back and bool(claimant)
    mine = [sending, claimant] if take_back else []
    params: list[Any] = [*mine, size] if take_back else []
    params += [size, sending, when, claimant, *mine]
    sql, returned = _drain_claim_sql(take_back=take_back, vendor=connection.vendor)
    _, found = rows.execute(sql, params)
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


@dataclass
class _Sent:
    """What became of a claimed batch."""

    sent: int = 0
    failed: EmailDelivery | None = None  # pending again, with its error
    error: Exception | None = None
    handed_back: int = 0  # claimed, not tried, pending again as they were


def _send_claimed(claimed: list[EmailDelivery], *, now: datetime) -> _Sent:
    """Send deliveries claimed at `now`: read in one statement (two if an
    order has no valid tickets left), sent over one connection, each marked
    sent as soon as it is sent. No send starts after half the claim time
    (one started then ends, within EMAIL_TIMEOUT, long before the claims
    expire): the rest are handed back. A failed send hands its delivery back
    with the error, and the rest untried."""
    outcome = _Sent()
    found = email_rows(order_ids=[d.order_id for d in claimed])
    keys = dict(found.signing_keys)
    deadline = now + claim_timeout() / 2
    mailer = get_connection()
    try:
        for index, delivery in enumerate(claimed):
            if index and timezone.now() >= deadline:
                outcome.handed_back = _hand_back(claimed[index:], now=now)
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
            except Exception as exc:  # noqa: BLE001 - kept with the delivery; the caller raises or retries it
                EmailDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
                    status=DeliveryStatus.PENDING, claimed_at=None, last_error=str(exc)[:2000]
                )
                outcome.failed, outcome.error = delivery, exc
                outcome.handed_back = _hand_back(claimed[index + 1 :], now=now)
                break
            delivery.status, delivery.sent_at = DeliveryStatus.SENT, timezone.now()
            rows.save_fields(delivery, ("status", "sent_at"))
            outcome.sent += 1
    finally:
        _close(mailer)
    return outcome


def email_delivery_send(*, delivery_id: int, now: datetime | None = None, claimant: str = "") -> bool:
    """Send one delivery (a retry, a resend, a message of the outbox); True
    if this call sent it.

    Safe to call any number of times: the delivery is claimed before it is
    sent and sent at most once per claim; nothing when it is sent, claimed
    by another, or gone (one statement). A failed send hands it back with
    the error and raises, so the caller (a Celery task) retries it with
    backoff. `claimant` (the task's id) may take over its own claim left
    behind by a crash or an outage at once; anyone may after
    settings.EMAIL_CLAIM_SECONDS (the message's Message-ID lets receivers
    drop the rare second copy)."""
    now = now or timezone.now()
    delivery = _claim(delivery_id=delivery_id, now=now, claimant=claimant)
    if delivery is None:
        return False
    outcome = _send_claimed([delivery], now=now)
    if outcome.error is not None:
        raise outcome.error
    return outcome.sent == 1


@dataclass(frozen=True)
class Drained:
    """What a drain did. `failed`: deliveries whose send failed, pending
    again with their error, each to be retried by a message of its own.
    `more`: the drain stopped before a claim came back short (its cap of
    batches, or a failure), so fresh deliveries may be waiting: the caller
    rings the bell again."""

    sent: int
    failed: tuple[int, ...] = ()
    more: bool = False


def email_deliveries_drain(
    *, claimant: str = "", now: datetime | None = None, batch: int | None = None, batches: int | None = None
) -> Drained:
    """Silence the e-mail bell, then send the fresh deliveries, oldest first,
    in batches of `batch` (settings.EMAIL_BATCH_SIZE: one claim, one read, one
    SMTP connection each), until a claim comes back short, at most `batches`
    of them (settings.EMAIL_DRAIN_BATCHES: one task never runs for ever).
    `now` stands for the time of every claim (tests).

    Why nothing is lost (ticketing.services.email_bell): a delivery
    committed before a ring that found the bell set is seen by the claims of
    the drain whose silencing came after that ring, because they come after
    it. Hence silencing first; and a claim that comes back short means every
    fresh delivery it could see is claimed (by it, or by whoever held the
    rows it skipped), and one committed since then was rung for after this
    silencing, so another drain is on its way for it.

    Nothing is sent twice: each batch is claimed (pending -> sending, by
    `claimant`, the task's id) before it is sent. A worker killed mid-batch
    leaves the rest claimed: taken back by the first claim of its own
    message delivered again, or by anyone after settings.EMAIL_CLAIM_SECONDS
    (the resend sweeper queues them). A batch cut short by the half-claim-time
    deadline is handed back and claimed again by the next batch; a failed
    send stops the drain (the server may be down): its delivery is handed
    back with its error for its own retries, and the rest untried."""
    email_bell_silence()
    size = max(1, batch or settings.EMAIL_BATCH_SIZE)
    sent = 0
    for number in range(max(1, batches or settings.EMAIL_DRAIN_BATCHES)):
        claimed_at = now or timezone.now()
        claimed = _drain_claim(now=claimed_at, claimant=claimant, size=size, take_back=number == 0)
        if not claimed:
            return Drained(sent=sent)
        outcome = _send_claimed(claimed, now=claimed_at)
        sent += outcome.sent
        if outcome.failed is not None:
            logger.warning(
                "e-mail delivery %s not sent; it is retried on its own", outcome.failed.pk, exc_info=outcome.error
            )
            return Drained(sent=sent, failed=(outcome.failed.pk,), more=True)
        if len(claimed) < size and not outcome.handed_back and not _linger():
            return Drained(sent=sent)
    return Drained(sent=sent, more=True)


def _linger() -> bool:
    """After a batch that emptied the queue: hold the bell and wait a moment
    for more (settings.EMAIL_DRAIN_LINGER_SECONDS) before claiming again. In a
    rush the orders paid meanwhile then ride this drain, instead of each
    ringing, publishing and waking the worker for a message of its own; the
    rings while the bell is held rely on this drain, whose silencing (and
    then its claim) comes after them. False, and the drain ends, when there
    is nothing to wait for (no linger set, or the bell cannot be held)."""
    seconds = settings.EMAIL_DRAIN_LINGER_SECONDS
    if seconds <= 0 or not email_bell_hold():
        return False
    time.sleep(seconds)
    email_bell_silence()
    return True


def _hand_back(deliveries: list[EmailDelivery], *, now: datetime) -> int:
    """Release claimed deliveries that were not tried: pending again, as
    they were (the claim's attempt does not count). How many."""
    if not deliveries:
        return 0
    return EmailDelivery.objects.filter(
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
