from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.db import transaction
from django.utils import timezone

from payments.models import SandboxSession
from payments.sandbox.gateway import sandbox_charge
from payments.sandbox.webhooks import event_data, sandbox_webhook_record
from seating.services.plans import seating_plan_create
from tests.factories import EventFactory, TicketTypeFactory
from ticketing.models import TicketKind
from workflows.checkout.cancel import checkouts_expire_due
from workflows.checkout.start import CheckoutStarted, start_checkout
from workflows.models import WorkflowRun

PAY = "4242424242424242"
DECLINE = "4000000000000002"


@pytest.fixture(autouse=True)
def _checkout_settings(settings):
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "https://tickets.example"


@pytest.fixture
def ga(organization):
    event = EventFactory(organization=organization)
    return TicketTypeFactory(event=event, capacity=100, price_cents=2500, max_per_order=10)


@pytest.fixture
def hall(organization):
    """A seated event: one section, rows A-B of 10 seats, one category."""
    event = EventFactory(organization=organization)
    ticket_type = TicketTypeFactory(event=event, kind=TicketKind.SEATED, capacity=20, price_cents=4000)
    seating_plan_create(
        event=event,
        name="Hall",
        categories=[{"code": "S", "name": "Stalls", "ticket_type": ticket_type}],
        sections=[{"name": "Stalls", "rows": [{"label": label, "seats": 10, "category_code": "S"} for label in "AB"]}],
    )
    return event


def seat_ids(event, labels):
    from seating.models import Seat

    return [Seat.objects.get(event=event, label=f"Stalls {label}").pk for label in labels]


def token_of(payment_url: str) -> str:
    return urlparse(payment_url).path.rstrip("/").split("/")[-1]


def buy_ga(ticket_type, *, quantity: int = 2, buyer: int = 0) -> CheckoutStarted:
    """StartCheckout for `quantity` general-admission tickets of
    `ticket_type`, by buyer number `buyer`."""
    return start_checkout(
        event_id=ticket_type.event_id,
        buyer_name=f"Buyer {buyer}",
        buyer_email=f"buyer{buyer}@example.com",
        tickets=[{"ticket_type": ticket_type.pk, "quantity": quantity}],
    )


def pay(started, card: str = PAY):
    return sandbox_charge(token=token_of(started.payment_url), card_number=card)


def checkout_run(order_code: str) -> WorkflowRun:
    return WorkflowRun.objects.get(workflow_type="checkout", business_key=f"order:{order_code}")


def complete_run(order_code: str) -> WorkflowRun | None:
    return WorkflowRun.objects.filter(workflow_type="checkout.complete", business_key=f"order:{order_code}").first()


def cancel_run(order_code: str) -> WorkflowRun | None:
    return WorkflowRun.objects.filter(workflow_type="checkout.cancel", business_key=f"order:{order_code}").first()


def expire_checkout(order_code: str) -> WorkflowRun:
    """Let the order's hold run out now: the expiry sweeper starts its
    CancelCheckout run, which advances at once (eager Celery). Returns it."""
    from seating.models import SeatHold
    from ticketing.models import CapacityHold, Order

    past = timezone.now() - timedelta(seconds=1)
    Order.objects.filter(code=order_code).update(expires_at=past)
    CapacityHold.objects.filter(reference=order_code).update(expires_at=past)
    SeatHold.objects.filter(reference=order_code).update(expires_at=past)
    checkouts_expire_due()
    run = cancel_run(order_code)
    assert run is not None
    run.refresh_from_db()
    return run


def provider_confirms_late(order_code: str) -> None:
    """The provider reports a success for a session we already closed (a
    payment caught in flight that we could not see)."""
    with transaction.atomic():
        session = SandboxSession.objects.select_for_update().get(order_reference=order_code)
        session.status = "succeeded"
        session.save(update_fields=["status"])
        sandbox_webhook_record(session=session, event_type="payment.succeeded", data=event_data(session))
