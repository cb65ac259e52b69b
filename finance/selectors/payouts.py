"""Reads of payouts."""

from __future__ import annotations

from django.db.models import Q

from finance.models import Payout


def payout_for_provider(*, provider: str, provider_payout_id: str = "", reference: str = "") -> Payout | None:
    """The payout a provider's news is about: by the provider's payout id,
    or by our reference (the payout's idempotency key, which the provider
    echoes), for news that arrives before we stored the provider's id."""
    match = Q()
    if provider_payout_id:
        match |= Q(provider_payout_id=provider_payout_id)
    if reference:
        match |= Q(idempotency_key=reference)
    if not match:
        return None
    found = list(Payout.objects.filter(match, provider=provider).order_by("pk")[:2])
    if len(found) == 2:
        # The id and the reference name different payouts: trust the id.
        return next(p for p in found if p.provider_payout_id == provider_payout_id)
    return found[0] if found else None
