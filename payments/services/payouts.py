"""Payouts at the provider. Basic by design: finance owns settlements and
payout records (and their retries); these are the provider calls it makes
(create, status) and the application of the provider's payout webhooks,
which payments verifies and records and finance applies (payments.signals.
payout_result, sent inside the webhook's transaction)."""

from __future__ import annotations

from django.db import transaction

from payments.exceptions import WebhookMismatch, WebhookUnknownSession
from payments.models import WebhookEvent
from payments.providers import get_provider
from payments.providers.base import EventKind, NormalizedEvent, ProviderPayout
from payments.signals import PayoutResultHandled, payout_result
from ticketing.exceptions import InvalidInput


def payout_create(
    *,
    provider: str,
    amount_cents: int,
    currency: str,
    destination: str = "",
    idempotency_key: str,
    reference: str = "",
) -> str:
    """Send `amount_cents` to an organizer's account and return the provider's
    payout id. Idempotent at the provider on `idempotency_key`; `reference`
    (finance's payout key) comes back in the payout's webhooks. Raises
    ProviderUnavailable (retry with the same key) or ProviderRejected."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidInput("A payout needs a positive amount in cents.", detail={"amount_cents": amount_cents})
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidInput("Use a three-letter ISO 4217 currency code.", detail={"currency": currency})
    if not idempotency_key:
        raise InvalidInput("An idempotency key is required.", detail={"field": "idempotency_key"})
    return get_provider(provider).payout(
        amount_cents=amount_cents,
        currency=currency.upper(),
        destination=destination,
        idempotency_key=idempotency_key,
        reference=reference,
    )


def payout_status_fetch(*, provider: str, provider_payout_id: str) -> ProviderPayout:
    """Ask the provider where a payout stands (its webhook is late or lost).
    Raises ProviderUnavailable (retry) or ProviderRejected."""
    if not provider_payout_id:
        raise InvalidInput("A provider payout id is required.", detail={"field": "provider_payout_id"})
    return get_provider(provider).fetch_payout_status(provider_payout_id=provider_payout_id)


def payout_event_apply(*, row: WebhookEvent, provider: str, event: NormalizedEvent) -> bool:
    """Apply a verified payout.paid / payout.failed webhook (called by
    webhook_receive, inside its transaction, after the event row is stored
    and deduplicated). Finance applies it through payout_result; returns
    whether it changed anything. Raises WebhookMismatch (no payout id or
    reference, or amounts that disagree) or WebhookUnknownSession (no
    receiver knows the payout)."""
    assert transaction.get_connection().in_atomic_block, "applied in the webhook event's transaction"
    if not event.provider_payout_id and not event.payout_reference:
        raise WebhookMismatch(detail={"provider_payout_id": {"received": None}})
    responses = payout_result.send(
        sender=WebhookEvent,
        provider=provider,
        provider_payout_id=event.provider_payout_id,
        payout_reference=event.payout_reference,
        status="paid" if event.kind == EventKind.PAYOUT_PAID else "failed",
        failure_code=event.failure_code,
        amount_cents=event.amount_cents,
        currency=event.currency,
        provider_event_id=event.provider_event_id,
    )
    handled: list[PayoutResultHandled] = []
    for _receiver, response in responses:
        answer: object = response  # the stubs type responses as str
        if isinstance(answer, PayoutResultHandled):
            handled.append(answer)
    if not handled:
        raise WebhookUnknownSession(
            "The webhook refers to a payout we do not know.",
            detail={"provider_payout_id": event.provider_payout_id, "payout_reference": event.payout_reference},
        )
    row.organization_id = handled[0].organization_id
    return any(response.changed for response in handled)
