from __future__ import annotations

from django import forms

from payments.sandbox.gateway import normalize_card_number


class SandboxCardForm(forms.Form):
    """The sandbox pay page's card form. Only the number matters to the
    sandbox; expiry and CVC are there so the page looks like a real one."""

    card_number = forms.CharField(max_length=23, label="Card number")
    expiry = forms.CharField(max_length=7, required=False, label="Expiry (MM/YY)")
    cvc = forms.CharField(max_length=4, required=False, label="CVC")

    def clean_card_number(self) -> str:
        number = normalize_card_number(self.cleaned_data["card_number"])
        if not number.isdigit() or not 12 <= len(number) <= 19:
            raise forms.ValidationError("Enter a card number of 12 to 19 digits.")
        return number
