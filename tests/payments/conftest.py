from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.urls import reverse

from payments import signals as payment_signals
from payments.models import PaymentSession
from payments.services import payment_session_create
from tests.payments.factories import SANDBOX_SECRET, STRIPE_SECRET, make_order
from ticketing.models import Order

SIGNAL_NAMES = [
    "payment_pending",
    "payment_succeeded",
    "payment_failed",
    "payment_cancelled",
    "refund_succeeded",
    "refund_failed",
]


@pytest.fixture(autouse=True)
def _payments_alone():
    """These tests pin the payments domain by itself: the checkout workflow
    that completes an order on a succeeded payment is tested in
    tests/workflows/checkout."""
    from workflows.payments.process_payment import on_payment_succeeded

    payment_signals.payment_succeeded.disconnect(
        on_payment_succeeded, dispatch_uid="workflows.payments.process_payment"
    )
    yield
    payment_signals.payment_succeeded.connect(on_payment_succeeded, dispatch_uid="workflows.payments.process_payment")


@pytest.fixture(autouse=True)
def _payment_settings(settings):
    settings.SANDBOX_WEBHOOK_SECRET = SANDBOX_SECRET
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.STRIPE_SECRET_KEY = "sk_test_payments"
    settings.PAYMENT_PROVIDERS = ("sandbox", "stripe")
    settings.SITE_URL = "https://tickets.example"


@dataclass
class SignalLog:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((name, {k: v for k, v in kwargs.items() if k != "signal"}))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for signal_name, kwargs in self.calls if signal_name == name]


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    receivers: list[tuple[Any, Callable[..., None]]] = []
    for name in SIGNAL_NAMES:
        signal = getattr(payment_signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            log.record(_name, {"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def order(db) -> Order:
    return make_order()


@pytest.fixture
def sandbox_session(order) -> PaymentSession:
    return payment_session_create(order=order, provider="sandbox", idempotency_key=f"checkout:{order.pk}:1")


@pytest.fixture
def pay_url() -> Callable[[PaymentSession], str]:
    def url(session: PaymentSession) -> str:
        from payments.models import SandboxSession

        token = SandboxSession.objects.get(session_id=session.provider_session_id).token
        return reverse("payments:sandbox-pay", kwargs={"token": token})

    return url


@pytest.fixture
def webhook_url() -> Callable[[str], str]:
    return lambda provider: reverse("payments:webhook", kwargs={"provider": provider})


@pytest.fixture
def stripe_http(monkeypatch):
    """The stripe library's HTTP layer, replaced: see tests/payments/stripe_fakes.py."""
    import stripe

    from tests.payments.stripe_fakes import FakeStripeHTTPClient

    fake = FakeStripeHTTPClient()
    monkeypatch.setattr(stripe, "default_http_client", fake)
    # Failures must surface at once instead of being retried with sleeps.
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    return fake
