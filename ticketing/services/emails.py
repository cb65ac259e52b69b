"""E-mail deliveries: recorded in the transaction that causes them, sent after.

`email_delivery_record` writes the row (deduplicated by key) inside the
caller's transaction; the caller queues the send through the outbox, so a
crash cannot lose it. `email_delivery_send` claims the row with a
compare-and-set (pending -> sending) so two workers never both send it,
renders the message at send time (QR codes included), sends, and marks it
sent. A claim left behind by a killed worker is taken over after
settings.EMAIL_CLAIM_SECONDS (its own task may take it back at once)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.mime.image import MIMEImage
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from ticketing.inserts import insert_unless_exists
from ticketing.models import DeliveryStatus, EmailDelivery, EmailKind, Order, Ticket, TicketStatus
from ticketing.qr import qr_png
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


def _claim(*, delivery_id: int, now: datetime, claimant: str) -> bool:
    abandoned = Q(status=DeliveryStatus.SENDING, claimed_at__lt=now - claim_timeout())
    claimable = Q(status=DeliveryStatus.PENDING) | abandoned
    if claimant:
        claimable |= Q(status=DeliveryStatus.SENDING, claimed_by=claimant)
    return (
        EmailDelivery.objects.filter(claimable, pk=delivery_id).update(
            status=DeliveryStatus.SENDING, claimed_at=now, claimed_by=claimant, attempts=F("attempts") + 1
        )
        == 1
    )


# What signing a ticket's code and the e-mail templates read of a ticket; the
# rest of each row stays in the database (an e-mail goes out for every order
# of a rush). A template that shows another field adds it here: a deferred
# field costs a query per ticket (tests/ticketing/test_ticket_email.py pins
# the send's statements).
_TICKET_FIELDS = ("event_id", "ticket_type_id", "seat_id", "code", "generation", "ticket_type__name", "seat__label")


def _message(delivery: EmailDelivery) -> EmailMultiAlternatives:
    """Render the delivery; `delivery.order` and its event are selected with it."""
    order = delivery.order
    selected = Ticket.objects.filter(order=order, status=TicketStatus.VALID)
    if "ticket_ids" in delivery.context:
        selected = selected.filter(pk__in=delivery.context["ticket_ids"])
    tickets = list(selected.select_related("ticket_type", "seat").only(*_TICKET_FIELDS).order_by("id"))
    codes: dict[int, str] = {}
    if delivery.kind in _WITH_CODES and tickets:
        key = signing_key_for_event(event=order.event)  # one key for the order's tickets
        for ticket in tickets:
            ticket.event = order.event
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


def email_delivery_send(*, delivery_id: int, now: datetime | None = None, claimant: str = "") -> bool:
    """Send one delivery; True if this call sent it. Safe to call any number
    of times: a delivery is claimed before it is sent and sent at most once
    per claim. Raises on a send failure after releasing the claim, so the
    caller (a Celery task) retries with backoff. `claimant` (the task's id)
    may take over its own claim left behind by a crash or an outage (the
    message's Message-ID lets receivers drop the rare second copy)."""
    now = now or timezone.now()
    if not _claim(delivery_id=delivery_id, now=now, claimant=claimant):
        return False
    delivery = EmailDelivery.objects.select_related("order__event").get(pk=delivery_id)
    try:
        _message(delivery).send()
    except Exception as exc:
        EmailDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING, claimed_at=None, last_error=str(exc)[:2000]
        )
        raise
    EmailDelivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.SENT, sent_at=timezone.now())
    return True


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
