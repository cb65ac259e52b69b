"""The ticket e-mail: one inline QR image per ticket, each a symbol that a
reader decodes to exactly the ticket's signed code (level M or better, mask
0, never a Micro QR), pixel for pixel what zxing-cpp draws for it, and the
whole send in three statements.

The e-mail's symbols come from zxing-cpp's encoder (zint); they are checked
with zxing-cpp's reader, which is checked in turn on symbols another encoder
made (stored below), so the check does not rest on one encoder agreeing with
itself."""

from __future__ import annotations

import base64
import io
from email.message import Message

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from PIL import Image

from tests.factories import EventFactory, TicketTypeFactory, issued_order, large_installation_claims
from tests.seating.factories import make_hall
from ticketing.models import EmailDelivery, EmailKind, TicketType
from ticketing.qr import MASK, QUIET_ZONE, qr_png, qr_symbol
from ticketing.services.emails import email_delivery_record, email_delivery_send
from ticketing.services.signing_keys import ticket_code_for
from ticketing.ticket_codes import new_kid, ticket_code_encode

# Claim (returning the delivery), the tickets with their order, event, ticket
# type, seat and the event's signing key, sent.
SEND_STATEMENTS = 3


def _pixels(png: bytes) -> tuple[str, tuple[int, int], bytes]:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.format or "", image.size, image.convert("L").tobytes()


# Symbols of another encoder, made once with segno 1.6.6 (pure Python, no
# code shared with zint or zxing-cpp) as segno.make(text, error="m",
# micro=False, mask=0): what a reader must take as those texts.
#
# "T1.abc" fits version 1 even at level H, so segno raised M to H. Its three
# finder patterns, the timing rows between them and the dark module (row 13,
# column 8) can be checked by eye.
_OTHER_ENCODERS_V1 = (
    "T1.abc",
    "H",
    (
        "#######.####..#######",
        "#.....#...###.#.....#",
        "#.###.#....#..#.###.#",
        "#.###.#.#...#.#.###.#",
        "#.###.#...###.#.###.#",
        "#.....#..####.#.....#",
        "#######.#.#.#.#######",
        "............#........",
        "..#.###.#.####...#..#",
        "#......#..####.#.#..#",
        "...#..###...#...###.#",
        "#...##.######.##.#.#.",
        "#.#..##.#..#.#..#..##",
        "........##.#.###..#..",
        "#######....#.#..#..##",
        "#.....#.##....#.#..##",
        "#.###.#.##..#.#.#..##",
        "#.###.#..#....####.#.",
        "#.###.#.#..#.######.#",
        "#.....#..##...###..#.",
        "#######..####.#.#..##",
    ),
)
# A code as long as a ticket's (128 characters; version 8, level M, with the
# version information blocks small symbols lack): its 49 x 49 modules row by
# row, a bit each (1 dark), zero-padded to whole bytes, in base64.
_OTHER_ENCODERS_V8_TEXT = (
    "T1.6sm5F1AnNAQ9tmkDP_X2etFMkXbLyW3RfL0TyetR5YnYdEgoqvcxyBWOHjF-CGj3ilMQI9"
    "UBGpmCl5kj6kuB4xQGlCkVCry_JExML7LExGpJyTypRXJj7NnrsXbeO"
)
_OTHER_ENCODERS_V8_BITS = (
    "/nsnxEC/wVwo5mXQbonnIlhrt0xmFIgl26wDP6dC7BHy0VsxB/qqqqqq/gCgnH6yAKpoV/vbiSx3g8RMBkyx4t5Wzvi42B/FJy44"
    "8bn795hrSqIEAiQJoX9cjWMIVupIrxK6+1+u6m+I3kCiKA4hocdTunvtLCealn+rLL7fn42O6eEqhAB2PuPvgi//sTrEbtMRavWq"
    "ub6ptGMBFEDFB+go+vJ/5yZAkkmeIPci2dyNL8H+esgjs/z/l+ozjkjIVuZp8muxtLEI8vI8wB3USXqByDzMGn2rk50seY//t+f9"
    "icRGJjEMhAkcjGf2jb7gnTeg0MPiUuP5/PyAWXMSxMZ/lQmsLGswQmbGzBErrf2/na+V0IyZiAd66trub7ZhBNtrSKOy/tGOrv9Z"
    "gA=="
)


def _other_encoders_v8() -> tuple[str, ...]:
    raw = base64.b64decode(_OTHER_ENCODERS_V8_BITS)
    bits = "".join(f"{byte:08b}" for byte in raw)
    return tuple(bits[row * 49 : (row + 1) * 49].replace("1", "#").replace("0", ".") for row in range(49))


def _grid_png(rows: tuple[str, ...], *, scale: int) -> bytes:
    """A module grid ("#" dark) as a PNG, black on white, with a quiet zone."""
    side = len(rows) + 2 * QUIET_ZONE
    image = Image.new("L", (side, side), 255)
    for y, row in enumerate(rows):
        for x, module in enumerate(row):
            if module == "#":
                image.putpixel((x + QUIET_ZONE, y + QUIET_ZONE), 0)
    out = io.BytesIO()
    image.resize((side * scale, side * scale), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def _read(png: bytes) -> zxingcpp.Barcode:
    """The one symbol a reader finds in `png`, whatever its matrix kind (a
    Micro QR would be found too, and fail the format check). Matrix codes
    only, as a gate scanner reads: a 1-D reader now and then "finds" a short
    ITF barcode in a QR symbol's modules (2 in 3,000 random codes)."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.AllMatrix)
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

        # then: a reader gets the code back, from a symbol no larger than a
        # ticket's code needs in byte mode at level M (version 8, 49 modules):
        # a bigger one would shrink the modules in the same 200 pixels
        symbol = _assert_reads_as(png, code)
        assert int(symbol.extra["Version"]) <= 8

        # and the image is zxing-cpp's drawing of it, pixel for pixel
        fmt, (width, height), pixels = _pixels(png)
        drawn = qr_symbol(code).to_image(scale=scale, add_quiet_zones=True)
        assert (fmt, (width, height)) == ("PNG", drawn.shape)
        assert pixels == bytes(drawn)
        row = (QUIET_ZONE + 3) * scale  # the middle of the top-left finder pattern
        assert pixels[row * width : row * width + 2 * scale].count(255) == 2 * scale  # quiet zone: light
        assert pixels[row * width + row] == 0  # finder: dark


@pytest.mark.parametrize(
    ("text", "level", "version", "rows"),
    [
        (*_OTHER_ENCODERS_V1[:2], "1", _OTHER_ENCODERS_V1[2]),
        (_OTHER_ENCODERS_V8_TEXT, "M", "8", _other_encoders_v8()),
    ],
)
def test_the_reader_reads_another_encoders_symbols_alike(text, level, version, rows):
    # the checks here are not zxing-cpp agreeing with itself: its reader
    # takes another encoder's symbols the same way
    symbol = _assert_reads_as(_grid_png(rows, scale=5), text, level=level)
    assert symbol.extra["Version"] == version


def test_a_short_code_gets_the_highest_level_that_fits_the_same_size():
    # as the other encoder did (above): "T1.abc" fits version 1 even at level H
    symbol = _assert_reads_as(qr_png("T1.abc"), "T1.abc", level="H")
    assert symbol.extra["Version"] == "1"


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
