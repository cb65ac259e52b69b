"""Writes to events: each locks the row, applies the state machine's
transition (which records the audit row) and saves, in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django_fsm import TransitionNotAllowed

from ticketing.exceptions import InvalidState, NotFound
from ticketing.locks import lock_timeout
from ticketing.models import Event, TicketType


def _event_transition(*, event_id: int, apply: Callable[[Event], None], name: str, target: str) -> Event:
    with transaction.atomic(), lock_timeout():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise NotFound("This event does not exist.")
        if event.status == target:
            return event  # already done: transitions are idempotent for callers
        try:
            apply(event)
        except TransitionNotAllowed as exc:
            raise InvalidState(
                f"An event that is {event.get_status_display().lower()} cannot {name}.",
                detail={"status": event.status, "transition": name},
            ) from exc
        event.save(update_fields=["status", "updated_at"])
        return event


def event_open_sales(*, event_id: int, by: Any = None, reason: str = "") -> Event:
    """Put an event on sale. It needs at least one active ticket type."""
    if not TicketType.objects.filter(event_id=event_id, is_active=True).exists():
        raise InvalidState("Add a ticket type before putting the event on sale.", detail={"event": event_id})
    return _event_transition(
        event_id=event_id, apply=lambda e: e.open_sales(by=by, reason=reason), name="open sales", target="on_sale"
    )


def event_close_sales(*, event_id: int, by: Any = None, reason: str = "") -> Event:
    return _event_transition(
        event_id=event_id,
        apply=lambda e: e.close_sales(by=by, reason=reason),
        name="close sales",
        target="sales_closed",
    )


def event_complete(*, event_id: int, by: Any = None, reason: str = "") -> Event:
    return _event_transition(
        event_id=event_id, apply=lambda e: e.complete(by=by, reason=reason), name="complete", target="completed"
    )


def event_cancel(*, event_id: int, by: Any = None, reason: str = "") -> Event:
    return _event_transition(
        event_id=event_id, apply=lambda e: e.cancel(by=by, reason=reason), name="be cancelled", target="cancelled"
    )
