"""factory_boy factories for the domain models used across the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from ticketing.models import Event, EventStatus, Membership, Order, OrderLine, Organization, Role, Ticket, TicketType
from ticketing.ticket_codes import TicketClaims


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organizer {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.OWNER


class EventFactory(factory.django.DjangoModelFactory):
    """An event; on sale by default (status is protected, so it is set at creation)."""

    class Meta:
        model = Event

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Concert {n}")
    slug = factory.Sequence(lambda n: f"concert-{n}")
    venue_name = "Town Hall"
    currency = "EUR"
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    ends_at = factory.LazyAttribute(lambda e: e.starts_at + timedelta(hours=3))
    status = EventStatus.ON_SALE


class TicketTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TicketType

    event = factory.SubFactory(EventFactory)
    organization = factory.LazyAttribute(lambda tt: tt.event.organization)
    name = factory.Sequence(lambda n: f"Standing {n}")
    price_cents = 2500
    currency = factory.LazyAttribute(lambda tt: tt.event.currency)
    capacity = 100
    min_per_order = 1
    max_per_order = 10


def issued_order(event: Event, tickets: list[tuple[TicketType, int | None]]) -> Order:
    """An order of `event` with one line and one issued ticket per (ticket
    type, seat id), at the ticket types' prices."""
    total = sum(ticket_type.price_cents for ticket_type, _ in tickets)
    order = Order.objects.create(
        organization=event.organization,
        event=event,
        buyer_name="Jane Doe",
        buyer_email="jane@example.com",
        currency=event.currency,
        subtotal_cents=total,
        total_cents=total,
    )
    for ticket_type, seat_id in tickets:
        line = OrderLine.objects.create(
            organization=event.organization,
            order=order,
            ticket_type=ticket_type,
            seat_id=seat_id,
            quantity=1,
            unit_price_cents=ticket_type.price_cents,
        )
        Ticket.objects.create(
            organization=event.organization,
            order=order,
            order_line=line,
            event=event,
            ticket_type=ticket_type,
            seat_id=seat_id,
            holder_name="Jane Doe",
        )
    return order


def large_installation_claims() -> TicketClaims:
    """A ticket code's claims with the ids of a large, long-running
    installation (about 2**34): the longest codes we sign."""
    return TicketClaims(
        ticket_id=17_000_000_000,
        event_id=17_000_000_000,
        ticket_type_id=17_000_000_000,
        seat_id=17_000_000_000,
        generation=40,
        not_before=int(datetime(2040, 1, 1, tzinfo=UTC).timestamp()),
        not_after=int(datetime(2040, 1, 31, tzinfo=UTC).timestamp()),
    )
