"""The ticket e-mail: one inline QR image per ticket, each a symbol that a
reader decodes to exactly the ticket's signed code (level M or better, mask
0, never a Micro QR), pixel for pixel what zxing-cpp draws for it, and the
whole send in five statements.

The e-mail's symbols come from zxing-cpp's encoder (zint); they are checked
with zxing-cpp's reader, which is checked in turn on segno's symbols (pages
draw those), so the check does not rest on one encoder."""

from __future__ import annotations

import io
from email.message import Message

import pytest
import segno
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from PIL import Image

from tests.factories import EventFactory, TicketTypeFactory, issued_order, large_installation_claims
from tests.seating.factories import make_hall
from ticketing.models import EmailDelivery, EmailKind, TicketType
from ticketing.qr import MASK, QUIET_ZONE, qr_code, qr_png, qr_symbol
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


def _read(png: bytes) -> zxingcpp.Barcode:
    """The one symbol a reader finds in `png`, whatever its kind (a Micro QR
    would be found too, and fail the format check)."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    return found[0]


def _assert_reads_as(png: bytes, code: str, *, level: str = "M") -> zxingcpp.Barcode:
    symbol = _read(png)
    assert symbol.format == zxingcpp.BarcodeFormat.QRCode
    assert symbol.symbology_identifier == "]Q1"  # model 2, no ECI: the plain text, as every reader takes it
    assert symbol.bytes == code.encode("ascii") and symbol.text == code
    assert symbol.ec_level == level
    assert symbol.extra["DataMask"] == MASK
    return symbol


def _images(message: Message) -> dict[str, bytes]:
    """Content-ID -> PNG of each inline image."""
    images = {}
    for part in message.walk():
        if part.get_content_type() == "image/png":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            images[str(part["Content-ID"])] = payload
    return images


@pytest.fixture
def codes() -> list[str]:
    """Real signed codes: general admission, a seat, and the longest kind
    (ids of a large, long-running installation)."""
    ga = TicketTypeFactory()
    hall = make_hall(EventFactory(), rows=(("A", 2),))
    seated = TicketType.objects.get(event=hall.event)
    orders = (issued_order(ga.event, [(ga, None), (ga, None)]), issued_order(hall.event, [(seated, hall.seat("A", 1))]))
    signed = [ticket_code_for(ticket=ticket) for order in orders for ticket in order.tickets.select_related("event")]
    big = large_installation_claims()
    signed.append(ticket_code_encode(claims=big, kid=new_kid(), private_key=Ed25519PrivateKey.generate()))
    return signed


# --- the PNG ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("scale", [5, 1, 8])
def test_the_png_reads_as_the_code(codes, scale):
    for code in codes:
        # when
        png = qr_png(code, scale=scale)

        # then: a reader gets the code back, from a symbol no larger than
        # segno's at the same level
        symbol = _assert_reads_as(png, code)
        assert int(symbol.extra["Version"]) <= qr_code(code).version

        # and the image is zxing-cpp's drawing of it, pixel for pixel
        fmt, (width, height), pixels = _pixels(png)
        drawn = qr_symbol(code).to_image(scale=scale, add_quiet_zones=True)
        assert (fmt, (width, height)) == ("PNG", drawn.shape)
        assert pixels == bytes(drawn)
        row = (QUIET_ZONE + 3) * scale  # the middle of the top-left finder pattern
        assert pixels[row * width : row * width + 2 * scale].count(255) == 2 * scale  # quiet zone: light
        assert pixels[row * width + row] == 0  # finder: dark


@pytest.mark.django_db
def test_the_reader_reads_segnos_symbols_alike(codes):
    # the check above is not zxing-cpp agreeing with itself: its reader takes
    # segno's symbols (another encoder) the same way
    for code in codes:
        symbol = _assert_reads_as(_segno_png(code, scale=5), code)
        assert int(symbol.extra["Version"]) == qr_code(code).version


def test_a_short_code_gets_the_highest_level_that_fits_the_same_size():
    # segno's rule too: "T1.abc" fits version 1 even at level H
    symbol = _assert_reads_as(qr_png("T1.abc"), "T1.abc", level="H")
    assert symbol.extra["Version"] == "1"
    assert segno.make("T1.abc", error="m", micro=False).error == "H"


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
        _assert_reads_as(images[f"<ticket-{ticket.pk}>"], codes[ticket.pk])
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
