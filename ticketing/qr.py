"""The one way a ticket's signed code becomes a QR symbol (pages and e-mails).

Level M survives scratched screens and creased prints; segno raises it
further when that fits in the same symbol size. Never a Micro QR: gate
scanners do not all read them. The mask is fixed: every mask is valid to
every reader, and segno's search for the best one costs about 10 ms of CPU
per code (six times the rest), which an on-sale rush pays for every ticket
e-mailed."""

from __future__ import annotations

import io

import segno

# Pattern 0 (a checkerboard): no worse for readers than the others on the
# dense, random-looking payload of a signed code.
MASK = 0


def qr_code(token: str) -> segno.QRCode:
    return segno.make(str(token), error="m", micro=False, mask=MASK)


def qr_png(token: str, *, scale: int = 5) -> bytes:
    png = io.BytesIO()
    qr_code(token).save(png, kind="png", scale=scale)
    return png.getvalue()
