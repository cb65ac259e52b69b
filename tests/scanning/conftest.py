"""Scanning test data: an event happening now, tickets made through the
ticketing services, devices with their tokens, and a `scan` helper."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from scanning.models import Device
from scanning.services.devices import device_create
from scanning.services.scans import ScanOutcome
from tests.factories import EventFactory, OrganizationFactory, TicketTypeFactory
from ticketing.models import AdmissionPolicy, Event, Organization, Ticket, TicketType
from ticketing.services.orders import LineSpec, order_create_pending, order_mark_paid
from ticketing.services.signing_keys import ticket_code_for
from ticketing.services.tickets import tickets_issue
from workflows.scanning.process_scan import process_scan


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Throttle counters live in the cache: every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def live_event(organization: Organization | None = None, **kwargs: Any) -> Event:
    """An event on now: its codes are inside their validity window."""
    now = timezone.now()
    kwargs.setdefault("starts_at", now - timedelta(hours=1))
    kwargs.setdefault("ends_at", now + timedelta(hours=3))
    return EventFactory(organization=organization or OrganizationFactory(), **kwargs)


def ticket_type_with(event: Event, policy: str = AdmissionPolicy.SINGLE_ENTRY, **kwargs: Any) -> TicketType:
    return TicketTypeFactory(event=event, admission_policy=policy, **kwargs)


def issue(ticket_type: TicketType, quantity: int = 1, *, seat_ids: list[int] | None = None) -> list[Ticket]:
    """Paid tickets, made by the ticketing services."""
    event = ticket_type.event
    if seat_ids:
        lines = [LineSpec(ticket_type.pk, 1, ticket_type.price_cents, seat_id=seat_id) for seat_id in seat_ids]
    else:
        lines = [LineSpec(ticket_type.pk, quantity, ticket_type.price_cents)]
    with transaction.atomic():
        order = order_create_pending(
            event=event,
            buyer_name="Ada Lovelace",
            buyer_email="ada@example.com",
            lines=lines,
            subtotal_cents=sum(line.quantity * line.unit_price_cents for line in lines),
            fees_cents=0,
            donation_cents=0,
            fee_snapshot={},
            expires_at=timezone.now() + timedelta(minutes=15),
        )
        order, _ = order_mark_paid(order_id=order.pk, paid_at=timezone.now())
        return tickets_issue(order=order)


def code_of(ticket: Ticket) -> str:
    """The ticket's current QR payload."""
    return ticket_code_for(ticket=Ticket.objects.select_related("event").get(pk=ticket.pk))


def new_device(event: Event, name: str = "Handheld", gate: str = "North gate") -> tuple[Device, str]:
    device, token = device_create(event=event, name=name, gate=gate)
    return Device.objects.select_related("event").get(pk=device.pk), token


def scan(device: Device, what: Ticket | str, direction: str = "in", *, nonce: str | None = None) -> ScanOutcome:
    """Scan a ticket (its current code) or a raw code, the way the API does."""
    code = code_of(what) if isinstance(what, Ticket) else what
    return process_scan(device=device, code=code, direction=direction, nonce=nonce or uuid.uuid4().hex)


def device_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@dataclass
class Gate:
    """One organization's event on now, a single-entry ticket type and a device."""

    organization: Organization
    event: Event
    ticket_type: TicketType
    device: Device
    token: str

    def ticket(self) -> Ticket:
        return issue(self.ticket_type)[0]


def make_gate(name: str = "Alpha") -> Gate:
    organization = OrganizationFactory(name=name)
    event = live_event(organization, name=f"{name} live")
    ticket_type = ticket_type_with(event)
    device, token = new_device(event)
    return Gate(organization=organization, event=event, ticket_type=ticket_type, device=device, token=token)


@pytest.fixture
def gate(db: None) -> Gate:
    return make_gate("Alpha")


@pytest.fixture
def other_gate(db: None) -> Gate:
    return make_gate("Beta")
