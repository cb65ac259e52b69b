"""Forms of the customer pages. They parse and check input only; the domain
(workflows.checkout.cart) re-validates everything it is given."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.http import QueryDict

from seating.services.holds import MAX_SEATS_PER_HOLD

MAX_DONATION = Decimal("10000")


def cart_from_query(data: QueryDict) -> tuple[list[dict[str, int]], list[int]]:
    """The cart carried in a query string or hidden fields: `qty_<ticket
    type id>=n` per GA type and `seats=1,2,3`. Malformed parts are dropped
    (the cart page then says the cart is empty); the domain checks the rest."""
    tickets = []
    for name in data:
        if not name.startswith("qty_"):
            continue
        type_id, quantity = name.removeprefix("qty_"), str(data.get(name, "")).strip()
        if type_id.isdigit() and quantity.isdigit() and int(quantity) > 0:
            tickets.append({"ticket_type": int(type_id), "quantity": min(int(quantity), 1000)})
    return tickets, seat_ids_from(data.get("seats", ""))


def seat_ids_from(value: str) -> list[int]:
    ids: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if part.isdigit() and int(part) > 0 and int(part) not in ids:
            ids.append(int(part))
    return ids[: MAX_SEATS_PER_HOLD + 1]  # one more than allowed, so the domain says "too many"


def cart_query(tickets: list[dict[str, int]], seat_ids: list[int]) -> dict[str, str]:
    query = {f"qty_{t['ticket_type']}": str(t["quantity"]) for t in tickets}
    if seat_ids:
        query["seats"] = ",".join(str(i) for i in seat_ids)
    return query


class CheckoutForm(forms.Form):
    buyer_name = forms.CharField(
        label="Full name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    buyer_email = forms.EmailField(
        label="E-mail address",
        help_text="Your tickets are sent here.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    donation = forms.DecimalField(
        label="Donation to the organizer (optional)",
        required=False,
        min_value=Decimal(0),
        max_value=MAX_DONATION,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
    )

    def clean_donation(self) -> Decimal:
        return self.cleaned_data.get("donation") or Decimal(0)

    @property
    def donation_cents(self) -> int:
        return int(self.cleaned_data["donation"] * 100)


def donation_cents_from(data: Any) -> int:
    """The donation of a not-yet-submitted form (for the fee preview); 0 if unreadable."""
    field = CheckoutForm.base_fields["donation"]
    try:
        value = field.clean(data.get("donation") or None)
    except forms.ValidationError:
        return 0
    return int((value or 0) * 100)


class BestAvailableForm(forms.Form):
    category = forms.TypedChoiceField(label="Price category", coerce=int)
    quantity = forms.TypedChoiceField(
        label="Number of seats",
        coerce=int,
        choices=[(n, str(n)) for n in range(1, 11)],
        initial=2,
    )

    def __init__(self, *args: Any, categories: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [(c["id"], c["name"]) for c in categories]  # type: ignore[attr-defined]
