"""QR codes for ticket pages and e-mails, drawn when the template renders.

Only the signed code (see ticketing.ticket_codes) is ever produced by the
services; the picture is made here, at render time, so nothing image-shaped
is stored and a rotated key or bumped generation shows on the next render.

    {% load qr %}
    {{ code|qr_svg:"Ticket for Jane Doe, Stalls A 12" }}
"""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ticketing.qr import qr_code

register = template.Library()

DEFAULT_LABEL = "Ticket QR code"


@register.filter(name="qr_svg")
def qr_svg(token: str | None, label: str = DEFAULT_LABEL) -> SafeString | str:
    """An inline SVG QR code of `token`, labelled for screen readers; "" for no token."""
    if not token:
        return ""
    svg = qr_code(str(token)).svg_inline(
        scale=4,
        border=4,  # the quiet zone the QR standard asks for
        dark="#000",
        # An explicit white background: a transparent code on a dark-mode
        # page has no contrast for the scanner.
        light="#fff",
        svgclass="ticket-qr",
        lineclass=None,
        title=label,
    )
    # segno has no option for ARIA attributes; role="img" with a label makes
    # screen readers announce the code as one image instead of skipping it.
    opening = f'<svg role="img" aria-label="{escape(label)}" '
    # Safe: segno escapes the <title> text and the label is escaped above;
    # the rest is segno's own markup of a path.
    return mark_safe(svg.replace("<svg ", opening, 1))  # noqa: S308
