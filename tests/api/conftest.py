"""API test data: two organizations with a bit of everything, tokens per role."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from scanning.models import Device, Scan
from scanning.services.devices import device_create
from scanning.services.scans import scan_process
from seating.models import SeatHold
from seating.services.holds import seat_hold_create
from tests.factories import EventFactory, OrganizationFactory, TicketTypeFactory
from tests.seating.factories import Hall, make_hall
from ticketing.models import Event, EventStatus, Order, Organization, Ticket, TicketType
from ticketing.services.api_tokens import api_token_create
from ticketing.services.orders import LineSpec, order_create_pending, order_mark_paid
from ticketing.services.tickets import tickets_issue
from workflows.models import StepKind, StepStatus, WorkflowRun, WorkflowStep

ROLES = ("owner", "manager", "finance", "box_office", "scanner")
HIGH_RATES = {"anon": "100000/min", "client": "100000/min"}


@pytest.fixture(autouse=True)
def _api_settings(settings: Any) -> Any:
    """A clean cache (throttle counters live there) and rates no test trips by accident."""
    cache.clear()
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = HIGH_RATES
    with override_settings(REST_FRAMEWORK=rest):
        yield
    cache.clear()


@dataclass
class World:
    organization: Organization
    event: Event
    draft_event: Event
    ticket_type: TicketType
    hall: Hall
    hold: SeatHold
    order: Order
    ticket: Ticket
    run: WorkflowRun
    pending: Order  # unpaid, with its checkout run waiting
    device: Device  # a scanning device of `event`
    scan: Scan  # one scan it recorded


def make_order(event: Event, ticket_type: TicketType, *, email: str = "buyer@example.com", paid: bool = True) -> Order:
    with transaction.atomic():
        order = order_create_pending(
            event=event,
            buyer_name="Ada Buyer",
            buyer_email=email,
            lines=[LineSpec(ticket_type_id=ticket_type.pk, quantity=2, unit_price_cents=ticket_type.price_cents)],
            subtotal_cents=2 * ticket_type.price_cents,
            fees_cents=100,
            donation_cents=0,
            fee_snapshot={},
            expires_at=timezone.now() + timedelta(minutes=15),
        )
        if paid:
            order, _ = order_mark_paid(order_id=order.pk, paid_at=timezone.now())
            tickets_issue(order=order)
    return order


def make_world(name: str) -> World:
    organization = OrganizationFactory(name=name)
    event = EventFactory(organization=organization, name=f"{name} gig")
    draft_event = EventFactory(organization=organization, name=f"{name} draft", status=EventStatus.DRAFT)
    TicketTypeFactory(event=draft_event)
    ticket_type = TicketTypeFactory(event=event, name=f"{name} standing")
    hall = make_hall(event)
    hold = seat_hold_create(
        event_id=event.pk, seat_ids=hall.seats("B", [1, 2]), expires_at=timezone.now() + timedelta(minutes=10)
    )
    order = make_order(event, ticket_type)
    pending = make_order(event, ticket_type, email="pending@example.com", paid=False)
    with transaction.atomic():
        WorkflowRun.objects.create(
            organization=organization, workflow_type="checkout", version=1, business_key=f"order:{pending.code}"
        )
        run = WorkflowRun.objects.create(
            organization=organization, workflow_type="checkout.start", version=1, business_key=f"order-{order.pk}"
        )
        WorkflowStep.objects.create(
            run=run,
            sequence=1,
            name="reserve",
            kind=StepKind.ACTION,
            status=StepStatus.COMPLETED,
            idempotency_key=f"run-{run.pk}-1",
        )
    device, _ = device_create(event=event, name=f"{name} handheld", gate="Main gate")
    scanned = scan_process(device=device, code="not a ticket", direction="in", nonce=f"{name}-1").scan
    return World(
        organization=organization,
        event=event,
        draft_event=draft_event,
        ticket_type=ticket_type,
        hall=hall,
        hold=hold,
        order=order,
        ticket=order.tickets.first(),
        run=run,
        pending=pending,
        device=device,
        scan=scanned,
    )


@pytest.fixture
def world_a(db: None) -> World:
    return make_world("Alpha")


@pytest.fixture
def world_b(db: None) -> World:
    return make_world("Beta")


def token_for(organization: Organization, role: str) -> str:
    return api_token_create(organization=organization, name=f"{role} token", role=role)[1]


def client_for(raw_token: str | None = None) -> APIClient:
    client = APIClient()
    if raw_token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first `failures`
    requests, then 200; keeps what it got."""

    failures: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body))
            failing = len(state.received) <= state.failures
            self.send_response(500 if failing else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
