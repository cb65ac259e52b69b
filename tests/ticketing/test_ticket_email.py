"""The ticket e-mail: one inline QR image per ticket, each pixel for pixel the
symbol segno draws for the ticket's signed code (our PNG writer replaces
segno's, ten times slower), and the whole send in five statements."""

from __future__ import annotations

import io
from email.message import Message

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from PIL import Image

from tests.factories import EventFactory, TicketTypeFactory, issued_order, large_installation_claims
from tests.seating.factories import make_hall
from ticketing.models import EmailDelivery, EmailKind, TicketType
from ticketing.qr import qr_code, qr_png
from ticketing.services.emails import email_delivery_record, email_delivery_send
from ticketing.services.signing_keys import ticket_code_for
from ticketing.ticket_codes import new_kid, ticket_code_encode

# Claim, the delivery with its order and event, the tickets, the event's
# signing key, sent.
SEND_STATEMENTS = 5


def _pixels(png: bytes) -> tuple[str, tuple[int, int], bytes]:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.format or "", image.size, image.convert("L").tobytes()


def _segno_png(token: str, *, scale: int) -> bytes:
    out = io.BytesIO()
    qr_code(token).save(out, kind="png", scale=scale)
    return out.getvalue()


def _images(message: Message) -> dict[str, bytes]:
    """Content-ID -> PNG of each inline image."""
    images = {}
    for part in message.walk():
        if part.get_content_type() == "image/png":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            images[str(part["Content-ID"])] = payload
    return images


# --- the PNG ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("scale", [5, 1, 8])
def test_the_png_is_segnos_symbol_pixel_for_pixel(scale):
    # given real signed codes: general admission, a seat, and the longest
    # kind (ids of a large, long-running installation)
    ga = TicketTypeFactory()
    hall = make_hall(EventFactory(), rows=(("A", 2),))
    seated = TicketType.objects.get(event=hall.event)
    orders = (issued_order(ga.event, [(ga, None), (ga, None)]), issued_order(hall.event, [(seated, hall.seat("A", 1))]))
    codes = [ticket_code_for(ticket=ticket) for order in orders for ticket in order.tickets.select_related("event")]
    big = large_installation_claims()
    codes.append(ticket_code_encode(claims=big, kid=new_kid(), private_key=Ed25519PrivateKey.generate()))

    for code in codes:
        # when
        ours = _pixels(qr_png(code, scale=scale))

        # then: the same image as segno's writer, and that is the symbol
        assert ours == _pixels(_segno_png(code, scale=scale))
        fmt, (width, height), pixels = ours
        qr = qr_code(code)
        side = len(qr.matrix) + 2 * qr.default_border_size
        assert (fmt, width, height) == ("PNG", side * scale, side * scale)
        assert qr.error == "M" and qr.mask == 0 and not qr.is_micro
        row = (qr.default_border_size + 3) * scale  # the middle of the top-left finder pattern
        assert pixels[row * width : row * width + 2 * scale].count(255) == 2 * scale  # quiet zone: light
        assert pixels[row * width + row] == 0  # finder: dark


def test_the_png_is_one_bit_greyscale():
    image = Image.open(io.BytesIO(qr_png("T1.abc")))
    assert image.mode == "1"


# --- the e-mail --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_ticket_email_carries_each_tickets_own_symbol(django_assert_num_queries):
    # given a paid order of two seats, recorded for sending
    hall = make_hall(EventFactory(), rows=(("A", 4),))
    seated = TicketType.objects.get(event=hall.event)
    order = issued_order(hall.event, [(seated, hall.seat("A", 2)), (seated, hall.seat("A", 3))])
    tickets = list(order.tickets.select_related("event", "seat").order_by("id"))
    codes = {ticket.pk: ticket_code_for(ticket=ticket) for ticket in tickets}  # the event's key exists now
    with transaction.atomic():
        delivery = email_delivery_record(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets:{order.code}")

    # when
    with django_assert_num_queries(SEND_STATEMENTS):
        assert email_delivery_send(delivery_id=delivery.pk) is True

    # then: one image per ticket, named in the HTML, showing that ticket's code
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert isinstance(sent, EmailMultiAlternatives)
    html = str(sent.alternatives[0][0])
    images = _images(sent.message())
    assert sorted(images) == sorted(f"<ticket-{t.pk}>" for t in tickets)
    for ticket in tickets:
        assert f'src="cid:ticket-{ticket.pk}"' in html
        assert _pixels(images[f"<ticket-{ticket.pk}>"]) == _pixels(_segno_png(codes[ticket.pk], scale=5))
        assert ticket.seat is not None and f"seat {ticket.seat.label}" in sent.body
        assert ticket.code[:8] in sent.body
    assert seated.name in sent.body and order.code in sent.body


@pytest.mark.django_db
def test_an_email_without_codes_attaches_no_image(organization):
    ga = TicketTypeFactory(event=EventFactory(organization=organization))
    order = issued_order(ga.event, [(ga, None)])
    with transaction.atomic():
        delivery = email_delivery_record(
            order=order, kind=EmailKind.REFUND, dedup_key="refund:1", context={"amount_cents": 500}
        )

    assert email_delivery_send(delivery_id=delivery.pk) is True

    assert _images(mail.outbox[0].message()) == {}
    assert EmailDelivery.objects.get(pk=delivery.pk).status == "sent"
