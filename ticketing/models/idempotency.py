"""Idempotency keys of API writes, as Stripe defines them.

A row is claimed (inserted, and committed at once) before the view runs; the
unique constraint on (owner, key) is what makes a concurrent duplicate see the
first one in flight. The response is stored when the view returns."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class IdempotencyRecord(models.Model):
    # "token:<id>", "user:<id>" or "ip:<address>": keys are private to their owner.
    owner = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_unique_owner_key")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"

    @property
    def in_flight(self) -> bool:
        return self.completed_at is None
