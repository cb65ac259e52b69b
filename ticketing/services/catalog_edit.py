"""Editing events and ticket types (staff, through the API).

Each edit locks the row (ticket types: the event first, the documented lock
order), applies only the named fields, validates the whole object as the
model does and saves. The state fields are not editable here: they change
through ticketing.services.events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from ticketing.exceptions import InvalidInput, InvalidState, NotFound
from ticketing.locks import lock_timeout
from ticketing.models import Event, EventStatus, TicketType
from ticketing.services.catalog import _validated

EVENT_EDITABLE = frozenset(
    {"name", "slug", "description", "venue_name", "venue_address", "timezone", "starts_at", "ends_at"}
)
TICKET_TYPE_EDITABLE = frozenset(
    {
        "name",
        "description",
        "price_cents",
        "capacity",
        "sales_start",
        "sales_end",
        "min_per_order",
        "max_per_order",
        "admission_policy",
        "max_entries",
        "is_active",
        "position",
    }
)
_FINAL = frozenset({EventStatus.CANCELLED, EventStatus.COMPLETED})


def _check_fields(changes: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInput(detail=dict.fromkeys(unknown, "This field cannot be changed."))


def event_update(*, event_id: int, changes: Mapping[str, Any]) -> Event:
    """Change an event's descriptive fields; a cancelled or completed event is final."""
    _check_fields(changes, EVENT_EDITABLE)
    with transaction.atomic(), lock_timeout():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise NotFound("This event does not exist.")
        if event.status in _FINAL:
            raise InvalidState(
                f"A {event.get_status_display().lower()} event cannot be changed.", detail={"status": event.status}
            )
        if not changes:
            return event
        for name, value in changes.items():
            setattr(event, name, value)
        _validated(event).save(update_fields=[*changes, "updated_at"])
        return event


def ticket_type_update(*, ticket_type_id: int, changes: Mapping[str, Any]) -> TicketType:
    """Change a ticket type. Capacity cannot drop below what is sold and held:
    the ticket type row is locked, so sales wait for this check and save."""
    _check_fields(changes, TICKET_TYPE_EDITABLE)
    event_id = TicketType.objects.filter(pk=ticket_type_id).values_list("event_id", flat=True).first()
    if event_id is None:
        raise NotFound("This ticket type does not exist.")
    with transaction.atomic(), lock_timeout():
        event = Event.objects.select_for_update().get(pk=event_id)
        ticket_type = TicketType.objects.select_for_update().get(pk=ticket_type_id)
        if event.status in _FINAL:
            raise InvalidState(
                f"Ticket types of a {event.get_status_display().lower()} event cannot be changed.",
                detail={"status": event.status},
            )
        if not changes:
            return ticket_type
        for name, value in changes.items():
            setattr(ticket_type, name, value)
        _validated(ticket_type).save(update_fields=list(changes))
        return ticket_type
