"""The ways a ticket's signed code becomes a QR symbol: `qr_svg_path` for
pages, `qr_png` for e-mails, both drawing the one symbol `qr_symbol` makes.

Level M survives scratched screens and creased prints; both raise it further
when that fits in the same symbol size. Never a Micro QR: gate scanners do
not all read them. The mask is fixed: every mask is valid to every reader,
and the search for the best one cost about 10 ms of CPU per code in segno
(the pure-Python encoder we used before).

The symbol comes from zxing-cpp's encoder (zint, in C): about 0.5 ms of CPU
per code where segno spent 3-6 ms even with the mask fixed, which an on-sale
rush pays for every ticket e-mailed and every ticket page shown. The
pictures are drawn here from its module image, not by zxing-cpp's writers:
its SVG has no viewBox (it does not scale), an XML prolog and one rectangle
per run; its PNG needs no more than a few bytes operations anyway."""

from __future__ import annotations

import re
import struct
import zlib

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
# In a row of zxing-cpp's module image: a run of dark modules and the light
# ones before it.
_RUN = re.compile(rb"\xff*\x00+")


class _RunCommands(dict[bytes, str]):
    """A run (as `_RUN` finds it) -> the SVG path commands that draw it from
    the end of the run before it in the same row: move over the light
    modules, line over the dark. Filled as runs turn up: a few hundred
    kinds in a ticket's symbol, at most 177 * 178 / 2 kinds in any."""

    def __missing__(self, run: bytes) -> str:
        dark = len(run.lstrip(b"\xff"))
        commands = self[run] = f"m{len(run) - dark} 0h{dark}"
        return commands


_RUN_COMMANDS = _RunCommands()
# zlib's fastest level: a third of the CPU of its default for ~20% more bytes
# (about 1.1 KB a symbol), which no inbox notices.
_COMPRESS_LEVEL = 1


def qr_symbol(token: str) -> zxingcpp.Barcode:
    """The QR symbol of `token` as zxing-cpp makes it (what `qr_png` and `qr_svg_path` draw)."""
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


def qr_svg_path(token: str) -> tuple[int, str]:
    """The QR symbol of `token` (the one `qr_png` draws) as SVG path data, in
    modules: the side of the picture with its quiet zone of QUIET_ZONE modules,
    and the dark modules as a stroke 1 module wide along each run of them.

    One path with relative moves, as segno drew it, about 3.5 KB for a
    ticket's code (zxing-cpp's `to_svg` spends nearly twice that on a rectangle
    per run). Each row's runs after its first are looked up, not formatted:
    ~0.2 ms for a ticket's symbol where a loop over the runs takes ~0.5 ms."""
    modules = qr_symbol(token).to_image(scale=1, add_quiet_zones=False)
    side = modules.shape[0]
    # A buffer at run time; zxing-cpp's stub does not declare it.
    pixels = bytes(modules)  # type: ignore[call-overload]
    # The pen starts in the middle of the symbol's first row (a stroke is
    # centred on its line), at (x, y) in modules.
    commands = [f"M{QUIET_ZONE} {QUIET_ZONE + 0.5}"]
    x = y = 0
    for row in range(side):
        offset = row * side
        runs = _RUN.findall(pixels, offset, offset + side)
        if not runs:
            continue
        # The first run of a row: a move from where the last row's ended,
        # none for the symbol's first (its corner is a finder's, dark).
        dark = len(runs[0].lstrip(b"\xff"))
        start = len(runs[0]) - dark
        if (start, row) != (x, y):
            commands.append(f"m{start - x} {row - y}")
        commands.append(f"h{dark}")
        commands += map(_RUN_COMMANDS.__getitem__, runs[1:])
        x, y = len(pixels[offset : offset + side].rstrip(b"\xff")), row
    return side + 2 * QUIET_ZONE, "".join(commands)


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
