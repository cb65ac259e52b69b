"""Creating organizations, events and ticket types (staff and the demo seeder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django_fsm import FSMFieldMixin

from ticketing.exceptions import InvalidInput
from ticketing.models import Event, Membership, Organization, Role, TicketKind, TicketType


def _validated(obj: Any) -> Any:
    # State fields are protected and owned by transitions; validate the rest.
    state_fields = [f.name for f in obj._meta.concrete_fields if isinstance(f, FSMFieldMixin)]
    try:
        obj.full_clean(exclude=state_fields)
    except ValidationError as exc:
        raise InvalidInput(detail=exc.message_dict) from exc
    return obj


@transaction.atomic
def organization_get_or_create(*, slug: str, name: str, currency: str = "EUR", timezone: str = "UTC") -> Organization:
    organization, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": name, "default_currency": currency, "timezone": timezone}
    )
    return organization


@transaction.atomic
def staff_member_ensure(*, organization: Organization, username: str, email: str, password: str, role: str) -> Any:
    """A staff login with a role in `organization`; resets the password if the user exists."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", detail={"role": role})
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": email, "is_staff": True})
    user.is_staff = True
    user.set_password(password)
    user.save()
    Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})
    return user


@transaction.atomic
def event_create(
    *,
    organization: Organization,
    name: str,
    slug: str,
    venue_name: str,
    starts_at: datetime,
    ends_at: datetime,
    description: str = "",
    venue_address: str = "",
    timezone: str | None = None,
    currency: str | None = None,
) -> Event:
    """A draft event; open its sales with ticketing.services.events.event_open_sales."""
    event = Event(
        organization=organization,
        name=name,
        slug=slug,
        description=description,
        venue_name=venue_name,
        venue_address=venue_address,
        timezone=timezone or organization.timezone,
        currency=currency or organization.default_currency,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    _validated(event).save()
    return event


@transaction.atomic
def ticket_type_create(
    *,
    event: Event,
    name: str,
    price_cents: int,
    capacity: int,
    kind: str = TicketKind.GENERAL_ADMISSION,
    min_per_order: int = 1,
    max_per_order: int = 10,
    sales_start: datetime | None = None,
    sales_end: datetime | None = None,
    position: int = 0,
    **extra: Any,
) -> TicketType:
    ticket_type = TicketType(
        organization_id=event.organization_id,
        event=event,
        name=name,
        price_cents=price_cents,
        currency=event.currency,
        capacity=capacity,
        kind=kind,
        min_per_order=min_per_order,
        max_per_order=max_per_order,
        sales_start=sales_start,
        sales_end=sales_end,
        position=position,
        **extra,
    )
    _validated(ticket_type).save()
    return ticket_type
