"""The audit trail of state changes.

Every django-fsm transition writes an AuditLogEntry when it is applied, and
services apply transitions inside the transaction that saves them, so the audit
row commits or rolls back with the change. Transitions take the optional
keyword arguments `by` (the actor) and `reason`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.dispatch import receiver
from django_fsm.signals import post_transition

from ticketing import rows
from ticketing.models import AuditLogEntry
from ticketing.tenancy import organization_id_of


@receiver(post_transition, dispatch_uid="ticketing.audit.record_transition")
def record_transition(sender: type, instance: Any, name: str, source: str, target: str, **kwargs: Any) -> None:
    if source == target:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            f"{sender.__name__}.{name} must run inside the transaction that saves it, so its audit row does too"
        )
    method_kwargs = kwargs.get("method_kwargs") or {}
    actor = method_kwargs.get("by")
    entry = AuditLogEntry(
        organization_id=organization_id_of(instance),
        actor=actor if getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None) else None,
        actor_repr=str(actor)[:200] if actor is not None else "system",
        content_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        field="status",
        transition=name,
        source_state=str(source),
        target_state=str(target),
        reason=str(method_kwargs.get("reason", ""))[:500],
    )
    # Nobody refers to an audit row: it may travel with the next statement.
    rows.insert_later([entry])
