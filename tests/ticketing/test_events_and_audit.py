from __future__ import annotations

import pytest
from django.db import transaction

from tests.factories import EventFactory, TicketTypeFactory
from ticketing.exceptions import InvalidState
from ticketing.models import AuditLogEntry, Event
from ticketing.services.events import event_cancel, event_close_sales, event_open_sales


@pytest.mark.django_db
def test_event_lifecycle_is_audited_with_actor_and_reason(staff_user, organization):
    event = EventFactory(organization=organization, status="draft")
    TicketTypeFactory(event=event)

    event_open_sales(event_id=event.pk, by=staff_user, reason="doors announced")
    event_close_sales(event_id=event.pk)
    event_cancel(event_id=event.pk, by=staff_user, reason="storm")

    entries = list(AuditLogEntry.objects.filter(object_id=str(event.pk)).order_by("id"))
    assert [(e.source_state, e.target_state) for e in entries] == [
        ("draft", "on_sale"),
        ("on_sale", "sales_closed"),
        ("sales_closed", "cancelled"),
    ]
    assert entries[0].actor == staff_user and entries[0].reason == "doors announced"
    assert entries[1].actor_repr == "system"
    assert entries[0].organization_id == organization.pk


@pytest.mark.django_db
def test_transitions_are_idempotent_and_refuse_impossible_moves(organization):
    event = EventFactory(organization=organization, status="draft")
    with pytest.raises(InvalidState):
        event_open_sales(event_id=event.pk)  # no ticket type yet
    TicketTypeFactory(event=event)
    event_open_sales(event_id=event.pk)
    event_open_sales(event_id=event.pk)
    assert AuditLogEntry.objects.filter(object_id=str(event.pk)).count() == 1
    event_cancel(event_id=event.pk)
    with pytest.raises(InvalidState) as info:
        event_open_sales(event_id=event.pk)
    assert info.value.code == "invalid_state"
    assert Event.objects.get(pk=event.pk).status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_a_failed_save_leaves_no_audit_row(organization):
    event = EventFactory(organization=organization, status="draft")
    TicketTypeFactory(event=event)
    with pytest.raises(RuntimeError), transaction.atomic():
        locked = Event.objects.select_for_update().get(pk=event.pk)
        locked.open_sales(reason="will roll back")
        raise RuntimeError("crash before save")
    assert not AuditLogEntry.objects.exists()
    assert Event.objects.get(pk=event.pk).status == "draft"


@pytest.mark.django_db(transaction=True)
def test_transitions_outside_a_transaction_are_refused(organization):
    event = EventFactory(organization=organization, status="draft")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        event.open_sales()


@pytest.mark.django_db
def test_status_cannot_be_assigned_directly(organization):
    event = EventFactory(organization=organization, status="draft")
    with pytest.raises(AttributeError):
        event.status = "on_sale"
