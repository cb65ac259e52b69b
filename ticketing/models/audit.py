from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from ticketing import rows


class AuditLogQuerySet(models.QuerySet[Any]):
    def record_many(
        self,
        *,
        objects: Iterable[models.Model],
        field: str,
        source: str,
        target: str,
        transition: str,
        actor: Any = None,
        reason: str = "",
    ) -> None:
        """Audit one state change applied to many rows in one statement (seat
        holds, expiry sweeps): one INSERT, in the caller's transaction (with
        its next statement inside ticketing.rows.deferred)."""
        assert transaction.get_connection().in_atomic_block, "audit rows share the change's transaction"
        entries: list[AuditLogEntry] = []
        for obj in objects:
            entries.append(
                AuditLogEntry(
                    organization_id=getattr(obj, "organization_id", None),
                    actor=actor if _is_user(actor) else None,
                    actor_repr=_actor_repr(actor),
                    content_type=ContentType.objects.get_for_model(obj),
                    object_id=str(obj.pk),
                    field=field,
                    transition=transition,
                    source_state=source,
                    target_state=target,
                    reason=reason[:500],
                )
            )
        rows.insert_later(entries)


def _is_user(actor: Any) -> bool:
    return bool(actor is not None and getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None))


def _actor_repr(actor: Any) -> str:
    if actor is None:
        return "system"
    return str(actor)[:200]


class AuditLogEntry(models.Model):
    """One state change of one object: who, what, old -> new, why.

    Written in the same transaction as the change itself (see ticketing.audit)."""

    organization = models.ForeignKey(
        "ticketing.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_repr = models.CharField(max_length=200, default="system")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    field = models.CharField(max_length=64, default="status")
    transition = models.CharField(max_length=64)
    source_state = models.CharField(max_length=32)
    target_state = models.CharField(max_length=32)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.content_type.model}#{self.object_id} {self.source_state} -> {self.target_state}"
