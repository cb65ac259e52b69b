"""Payouts at the provider. Basic by design: finance owns settlements and
payout records (and their retries); this is the provider call it makes."""

from __future__ import annotations

from payments.providers import get_provider
from ticketing.exceptions import InvalidInput


def payout_create(
    *, provider: str, amount_cents: int, currency: str, destination: str = "", idempotency_key: str
) -> str:
    """Send `amount_cents` to an organizer's account and return the provider's
    payout id. Idempotent at the provider on `idempotency_key`; raises
    ProviderUnavailable (retry with the same key) or ProviderRejected."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidInput("A payout needs a positive amount in cents.", detail={"amount_cents": amount_cents})
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidInput("Use a three-letter ISO 4217 currency code.", detail={"currency": currency})
    if not idempotency_key:
        raise InvalidInput("An idempotency key is required.", detail={"field": "idempotency_key"})
    return get_provider(provider).payout(
        amount_cents=amount_cents, currency=currency.upper(), destination=destination, idempotency_key=idempotency_key
    )
