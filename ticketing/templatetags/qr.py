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

from ticketing.qr import qr_svg_path

register = template.Library()

DEFAULT_LABEL = "Ticket QR code"
# Pixels a module when no CSS sizes the code.
SCALE = 4


@register.filter(name="qr_svg")
def qr_svg(token: str | None, label: str = DEFAULT_LABEL) -> SafeString | str:
    """An inline SVG QR code of `token`, labelled for screen readers; "" for no token."""
    if not token:
        return ""
    side, dark = qr_svg_path(str(token))
    title = escape(label)
    # Sized by the viewBox, so the page's CSS scales it (width and height are
    # the size where no CSS sets one). An explicit white background:
    # a transparent code on a dark-mode page has no contrast for the scanner.
    # crispEdges keeps scaled modules from anti-aliased seams between rows.
    # role="img" with a label makes screen readers announce the code as one
    # image instead of skipping it.
    svg = (
        f'<svg role="img" aria-label="{title}" width="{side * SCALE}" height="{side * SCALE}"'
        f' viewBox="0 0 {side} {side}" class="ticket-qr" shape-rendering="crispEdges">'
        f"<title>{title}</title>"
        f'<path fill="#fff" d="M0 0h{side}v{side}h-{side}z"/>'
        f'<path stroke="#000" d="{dark}"/></svg>'
    )
    # Safe: the label is escaped above; the rest is our own markup and path
    # data made of numbers (the code itself is only encoded, never written).
    return mark_safe(svg)  # noqa: S308
