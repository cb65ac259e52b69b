"""The ways a ticket's signed code becomes a QR symbol: `qr_code` (segno) for
pages, `qr_png` (zxing-cpp) for e-mails.

Level M survives scratched screens and creased prints; both raise it further
when that fits in the same symbol size. Never a Micro QR: gate scanners do
not all read them. The mask is fixed: every mask is valid to every reader,
and the search for the best one costs about 10 ms of CPU per code in segno.

E-mails use zxing-cpp's encoder (zint, in C): segno, pure Python, spends
3-6 ms of CPU per code even with the mask fixed, zxing-cpp about 0.2 ms,
which an on-sale rush pays for every ticket e-mailed. Same text, level and
mask; zint switches modes within the text where that is shorter, so its
modules differ from segno's and its symbol is at times a version smaller
(bigger modules in the same 200 pixels), which no reader notices: the tests
decode the e-mail's PNG. Pages keep segno for its SVG writer."""

from __future__ import annotations

import struct
import zlib

import segno
import zxingcpp

# Pattern 0 (a checkerboard): no worse for readers than the others on the
# dense, random-looking payload of a signed code.
MASK = 0
# The width of the quiet zone around a QR symbol, in modules (ISO/IEC 18004).
QUIET_ZONE = 4

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zxing-cpp's module image holds a byte per module, 0x00 dark and 0xff light;
# in a 1-bit greyscale PNG a light pixel is bit 1. Via letters, so that
# expanding one kind of module cannot touch the other.
_MODULE_LETTERS = b"d" + b"l" * 255
_TO_LETTERS = bytes.maketrans(bytes(range(256)), _MODULE_LETTERS)
# zlib's fastest level: a third of the CPU of its default for ~20% more bytes
# (about 1.1 KB a symbol), which no inbox notices.
_COMPRESS_LEVEL = 1


def qr_code(token: str) -> segno.QRCode:
    return segno.make(str(token), error="m", micro=False, mask=MASK)


def qr_symbol(token: str) -> zxingcpp.Barcode:
    """The QR symbol of `token` as zxing-cpp makes it (what `qr_png` draws)."""
    text = str(token)
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ecLevel="M", dataMask=MASK)
    version = (symbol.to_image(scale=1, add_quiet_zones=False).shape[0] - 17) // 4
    # A level that does not fit fails fast (~30 µs); H holds less than Q, so
    # a ticket's code (which never fits Q) costs one failed try.
    for level in ("Q", "H"):
        try:
            boosted = zxingcpp.create_barcode(
                text, zxingcpp.BarcodeFormat.QRCode, ecLevel=level, version=version, dataMask=MASK
            )
        except ValueError:
            break
        symbol = boosted
    return symbol


def qr_png(token: str, *, scale: int = 5) -> bytes:
    """The QR symbol of `token` as a PNG: `scale` pixels per module, black on
    white, with a quiet zone of QUIET_ZONE modules."""
    modules = qr_symbol(token).to_image(scale=1, add_quiet_zones=False)
    # A buffer at run time; zxing-cpp's stub does not declare it.
    pixels = bytes(modules)  # type: ignore[call-overload]
    return _png(pixels, side=modules.shape[0], border=QUIET_ZONE, scale=scale)


def _png(modules: bytes, *, side: int, border: int, scale: int) -> bytes:
    """A square module image (a byte per module, row by row) as a 1-bit greyscale PNG.

    A pixel-by-pixel writer in Python takes ~3 ms for a ticket's symbol; here
    each row of modules becomes one row of pixels with a few bytes operations
    that run in C (~0.15 ms in all)."""
    pixels = (side + 2 * border) * scale
    row_bytes = (pixels + 7) // 8
    quiet = b"1" * (border * scale)
    tail = quiet + b"1" * (row_bytes * 8 - pixels)  # fills the last byte (ignored by readers)
    # Every module as `scale` bits ("0" dark, "1" light), the whole symbol at once.
    bits = modules.translate(_TO_LETTERS).replace(b"l", b"1" * scale).replace(b"d", b"0" * scale)
    width = side * scale
    blank = b"\x00" + b"\xff" * row_bytes  # each scanline starts with filter type 0 (none)
    lines = [blank] * (border * scale)
    for start in range(0, len(bits), width):
        lines += [b"\x00" + int(quiet + bits[start : start + width] + tail, 2).to_bytes(row_bytes, "big")] * scale
    lines += [blank] * (border * scale)
    header = struct.pack(">IIBBBBB", pixels, pixels, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
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
