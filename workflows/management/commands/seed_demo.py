"""`manage.py seed_demo`: demo data for a first look, safe to run again.

One organization with a staff owner, a general-admission event with two
ticket types, and a seated event whose plan has 3 sections, 2 price
categories and more than 500 seats.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from seating.models import SeatingPlan
from seating.services.plans import seating_plan_create_demo
from ticketing.models import Event, TicketKind, TicketType
from ticketing.services.catalog import (
    event_create,
    organization_get_or_create,
    staff_member_ensure,
    ticket_type_create,
)
from ticketing.services.events import event_open_sales

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-tickets-2026"  # noqa: S105 - printed demo credentials, by design


class Command(BaseCommand):
    help = "Load idempotent demo data: an organization, a staff login, a GA event and a seated event."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            org = organization_get_or_create(slug="demo-arts", name="Demo Arts Collective", currency="EUR")
            staff_member_ensure(
                organization=org,
                username=DEMO_USERNAME,
                email="demo@example.com",
                password=DEMO_PASSWORD,
                role="owner",
            )
            start = (timezone.now() + timedelta(days=45)).replace(hour=19, minute=30, second=0, microsecond=0)
            ga = self._ga_event(org, start)
            seated = self._seated_event(org, start + timedelta(days=7))
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  {ga.name}: {', '.join(t.name for t in ga.ticket_types.all())}")
        seats = seated.seats.count()
        self.stdout.write(f"  {seated.name}: {seats} seats")
        self.stdout.write("")
        self.stdout.write("  Site:  http://127.0.0.1:8000/")
        self.stdout.write("  Admin: http://127.0.0.1:8000/admin/")
        self.stdout.write(f"  Login: {DEMO_USERNAME} / {DEMO_PASSWORD}")

    def _ga_event(self, org: Any, start: Any) -> Event:
        event = Event.objects.filter(organization=org, slug="summer-open-air").first()
        if event is None:
            event = event_create(
                organization=org,
                name="Summer Open Air",
                slug="summer-open-air",
                description="An evening of bands under the sky. Standing only.",
                venue_name="Riverside Park",
                venue_address="Riverside 1",
                starts_at=start,
                ends_at=start + timedelta(hours=5),
            )
            ticket_type_create(event=event, name="Standing", price_cents=2500, capacity=2000, max_per_order=8)
            ticket_type_create(
                event=event, name="Early entry", price_cents=4000, capacity=200, max_per_order=4, position=1
            )
        if event.status == "draft":
            event_open_sales(event_id=event.pk, reason="demo data")
        return event

    def _seated_event(self, org: Any, start: Any) -> Event:
        event = Event.objects.filter(organization=org, slug="symphony-night").first()
        if event is None:
            event = event_create(
                organization=org,
                name="Symphony Night",
                slug="symphony-night",
                description="The city orchestra plays Dvořák's ninth. Reserved seating.",
                venue_name="Concert Hall",
                venue_address="Music Square 3",
                starts_at=start,
                ends_at=start + timedelta(hours=2, minutes=30),
            )
        if not SeatingPlan.objects.filter(event=event).exists():
            premium = ticket_type_create(
                event=event, name="Premium", price_cents=8900, capacity=0, kind=TicketKind.SEATED, max_per_order=8
            )
            standard = ticket_type_create(
                event=event,
                name="Standard",
                price_cents=4900,
                capacity=0,
                kind=TicketKind.SEATED,
                max_per_order=8,
                position=1,
            )
            plan = seating_plan_create_demo(
                event=event,
                name="Concert Hall",
                categories=[
                    {"code": "P", "name": "Premium", "color": "#b45309", "ticket_type": premium},
                    {"code": "S", "name": "Standard", "color": "#2563eb", "ticket_type": standard},
                ],
            )
            # Seated capacity is the number of seats of each category.
            for ticket_type in (premium, standard):
                TicketType.objects.filter(pk=ticket_type.pk).update(
                    capacity=plan.categories.get(ticket_type=ticket_type).seats.count()
                )
        if event.status == "draft":
            event_open_sales(event_id=event.pk, reason="demo data")
        return event
