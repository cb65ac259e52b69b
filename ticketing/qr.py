"""The one way a ticket's signed code becomes a QR symbol (pages and e-mails).

Level M survives scratched screens and creased prints; segno raises it
further when that fits in the same symbol size. Never a Micro QR: gate
scanners do not all read them. The mask is fixed: every mask is valid to
every reader, and segno's search for the best one costs about 10 ms of CPU
per code (six times the rest), which an on-sale rush pays for every ticket
e-mailed."""

from __future__ import annotations

import struct
import zlib

import segno

# Pattern 0 (a checkerboard): no worse for readers than the others on the
# dense, random-looking payload of a signed code.
MASK = 0

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# segno's matrix holds a byte per module, 0x0 light and 0x1 dark; in a 1-bit
# greyscale PNG a light pixel is bit 1. Via letters, so that expanding one
# kind of module cannot touch the other.
_MODULE_LETTERS = b"l" + b"d" * 255
_TO_LETTERS = bytes.maketrans(bytes(range(256)), _MODULE_LETTERS)
# zlib's fastest level: a third of the CPU of its default for ~20% more bytes
# (about 1.1 KB a symbol), which no inbox notices.
_COMPRESS_LEVEL = 1


def qr_code(token: str) -> segno.QRCode:
    return segno.make(str(token), error="m", micro=False, mask=MASK)


def qr_png(token: str, *, scale: int = 5) -> bytes:
    """The QR symbol of `token` as a PNG: `scale` pixels per module, black on
    white, with segno's quiet zone; pixel for pixel what segno's own PNG
    writer draws (tests compare them)."""
    qr = qr_code(token)
    return _png(qr.matrix, border=qr.default_border_size, scale=scale)


def _png(matrix: tuple[bytearray, ...], *, border: int, scale: int) -> bytes:
    """A square module matrix as a 1-bit greyscale PNG.

    segno's writer builds every pixel in Python (~3 ms for a ticket's symbol,
    more than making the symbol); here each row of modules becomes one row
    of pixels with a few bytes operations that run in C (~0.15 ms in all)."""
    modules = len(matrix)
    side = (modules + 2 * border) * scale
    row_bytes = (side + 7) // 8
    quiet = b"1" * (border * scale)
    tail = quiet + b"1" * (row_bytes * 8 - side)  # fills the last byte (ignored by readers)
    # Every module as `scale` bits ("0" dark, "1" light), the whole symbol at once.
    bits = b"".join(matrix).translate(_TO_LETTERS).replace(b"l", b"1" * scale).replace(b"d", b"0" * scale)
    width = modules * scale
    blank = b"\x00" + b"\xff" * row_bytes  # each scanline starts with filter type 0 (none)
    lines = [blank] * (border * scale)
    for start in range(0, len(bits), width):
        lines += [b"\x00" + int(quiet + bits[start : start + width] + tail, 2).to_bytes(row_bytes, "big")] * scale
    lines += [blank] * (border * scale)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"".join(lines), _COMPRESS_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
