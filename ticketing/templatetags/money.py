from django import template

register = template.Library()


@register.filter
def cents(value: int | None, currency: str = "") -> str:
    """Render integer minor units as a decimal amount: 2500, "EUR" -> "EUR 25.00"."""
    if value is None:
        return ""
    amount = f"{int(value) // 100}.{int(value) % 100:02d}"
    return f"{currency} {amount}".strip()
