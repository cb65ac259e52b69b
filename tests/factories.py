"""factory_boy factories for the domain models used across the tests."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from ticketing.models import Event, EventStatus, Membership, Organization, Role, TicketType


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
