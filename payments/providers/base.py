"""The one interface every payment provider implements.

Services talk to providers only through `PaymentProvider`, with plain
dataclasses in and out; provider SDK objects never leave the provider module.
Every call that creates something at the provider takes an idempotency key
that the provider itself honours, so a retry after a timeout never creates a
second session, refund or payout.

Providers raise payments.exceptions errors only:
  ProviderUnavailable   transient (network, 5xx, rate limit): retry with the same key
  ProviderRejected      permanent: the request will not succeed as it is
  WebhookInvalidSignature / WebhookStale / WebhookMalformed   from verify_webhook
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: How old a signed webhook may be before it counts as a replay.
WEBHOOK_TOLERANCE_SECONDS = 300


class ProviderStatus(enum.StrEnum):
    """A provider session's state, normalized."""

    OPEN = "open"  # waiting for the buyer
    PENDING = "pending"  # paid, confirmation outstanding
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"  # closed without payment; can no longer be paid


class EventKind(enum.StrEnum):
    """What a webhook means for us, normalized."""

    PAYMENT_PENDING = "payment_pending"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_CANCELLED = "payment_cancelled"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_FAILED = "refund_failed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"  # rejected by the bank, or returned after it was paid
    IGNORED = "ignored"  # verified, but nothing we act on

    @property
    def is_payment(self) -> bool:
        return self.value.startswith("payment_")

    @property
    def is_refund(self) -> bool:
        return self.value.startswith("refund_")

    @property
    def is_dispute(self) -> bool:
        return self.value.startswith("dispute_")

    @property
    def is_payout(self) -> bool:
        return self.value.startswith("payout_")


class RefundOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"  # the provider confirms later, by webhook
    FAILED = "failed"


class PayoutState(enum.StrEnum):
    """A provider payout's state, normalized."""

    IN_TRANSIT = "in_transit"  # accepted, not yet arrived
    PAID = "paid"
    FAILED = "failed"  # rejected by the bank, returned after arriving, or cancelled

    @property
    def is_final(self) -> bool:
        return self != PayoutState.IN_TRANSIT


@dataclass(frozen=True)
class ProviderPayout:
    """What a provider says about one payout (payout status call)."""

    provider_payout_id: str
    state: PayoutState
    amount_cents: int | None = None
    currency: str = ""
    failure_code: str = ""


@dataclass(frozen=True)
class SessionRequest:
    """What a provider needs to open a hosted checkout."""

    reference: str  # our PaymentSession.reference; echoed back in webhooks
    order_code: str  # the order reference the provider echoes back
    amount_cents: int
    currency: str  # ISO 4217, upper case
    description: str
    buyer_email: str
    success_url: str
    cancel_url: str
    expires_at: datetime
    created_at: datetime  # when we first asked; a stable anchor for retries under the same key


@dataclass(frozen=True)
class CreatedSession:
    provider_session_id: str
    payment_url: str
    expires_at: datetime | None = None  # the provider's, when it differs from the request


@dataclass(frozen=True)
class PlannedSession:
    """An in-process provider's hosted checkout, decided (its id and URL drawn)
    but not yet written. `write()` writes it, in the caller's transaction, so
    the caller can write its own record of the session once, with the
    outcome, instead of before the provider call and again after it."""

    created: CreatedSession
    write: Callable[[], None]


@dataclass(frozen=True)
class SessionStatus:
    status: ProviderStatus
    provider_payment_id: str = ""
    amount_cents: int | None = None
    currency: str = ""
    failure_code: str = ""


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    outcome: RefundOutcome
    failure_code: str = ""


@dataclass(frozen=True)
class NormalizedEvent:
    """A verified webhook, reduced to what we act on. Empty strings and None
    mean "the event did not say"."""

    provider_event_id: str
    event_type: str  # the provider's own type name, kept for the record
    kind: EventKind
    payload: dict[str, Any]
    provider_session_id: str = ""
    session_reference: str = ""
    provider_payment_id: str = ""
    provider_refund_id: str = ""
    provider_dispute_id: str = ""
    provider_payout_id: str = ""
    payout_reference: str = ""  # what we passed as the payout's reference, echoed back
    amount_cents: int | None = None
    fee_cents: int | None = None  # a dispute's fee, when the provider states it
    currency: str = ""
    order_reference: str = ""
    failure_code: str = ""
    failure_message: str = ""
    reason: str = ""  # a dispute's reason, as the provider names it
    extra: dict[str, Any] = field(default_factory=dict)


class PaymentProvider(abc.ABC):
    """A payment service provider behind our one interface."""

    name: str
    # True for a provider that lives in our own process and database (the
    # sandbox): its calls are database writes, not network calls, so they may
    # run inside the caller's transaction.
    in_process: bool = False

    @abc.abstractmethod
    def create_session(self, request: SessionRequest, *, idempotency_key: str) -> CreatedSession:
        """Open a hosted checkout. Calling again with the same key returns the same session."""

    def plan_session(self, request: SessionRequest, *, idempotency_key: str) -> PlannedSession:
        """In-process providers only: create_session in two steps, decide now
        and write later in the same transaction. A provider called over the
        network cannot know its answer before the call: its sessions are
        opened with create_session, and the caller records its intent first."""
        raise NotImplementedError(f"{self.name} opens its sessions over the network: use create_session")

    @abc.abstractmethod
    def fetch_status(self, *, provider_session_id: str) -> SessionStatus:
        """Ask the provider what happened to a session (for expiry and reconciliation)."""

    @abc.abstractmethod
    def expire_session(self, *, provider_session_id: str) -> SessionStatus:
        """Close an open session so it can no longer be paid, and return its
        final state: SUCCEEDED (or PENDING) if the buyer paid before it closed."""

    @abc.abstractmethod
    def refund(
        self, *, provider_payment_id: str, amount_cents: int, currency: str, idempotency_key: str, reference: str
    ) -> RefundResult:
        """Refund part or all of a payment. Same key, same refund."""

    @abc.abstractmethod
    def payout(
        self, *, amount_cents: int, currency: str, destination: str, idempotency_key: str, reference: str = ""
    ) -> str:
        """Send money to an organizer's account; returns the provider's payout id.
        `reference` is ours (finance's payout key); the provider echoes it in
        its payout webhooks, so a webhook that arrives before we stored the
        payout id still finds its payout. Its outcome arrives later, by
        webhook (payout paid / failed) or through fetch_payout_status."""

    @abc.abstractmethod
    def fetch_payout_status(self, *, provider_payout_id: str) -> ProviderPayout:
        """Ask the provider what happened to a payout (when its webhook is late)."""

    @abc.abstractmethod
    def verify_webhook(self, *, raw_body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        """Check the signature and freshness of a delivery and normalize it.

        Raises WebhookInvalidSignature, WebhookStale or WebhookMalformed."""


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header lookup without caring whether we got Django's case-insensitive
    HttpHeaders or a plain dict."""
    return {str(key).lower(): value for key, value in headers.items()}
