from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class EventStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ON_SALE = "on_sale", "On sale"
    SALES_CLOSED = "sales_closed", "Sales closed"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Event(FSMModelMixin, models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="events")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=120)
    description = models.TextField(blank=True)
    venue_name = models.CharField(max_length=200)
    venue_address = models.CharField(max_length=300, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(max_length=3, default="EUR")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = FSMField(max_length=20, choices=EventStatus.choices, default=EventStatus.DRAFT, protected=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="event_unique_slug_per_org"),
            models.CheckConstraint(
                condition=models.Q(ends_at__gte=models.F("starts_at")), name="event_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            raise ValidationError({"ends_at": "The event cannot end before it starts."})
        if self.currency and (len(self.currency) != 3 or not self.currency.isalpha()):
            raise ValidationError({"currency": "Use a three-letter ISO 4217 code."})

    # Transitions only check and change fields; services lock, call and save.
    @transition(field=status, source=[EventStatus.DRAFT, EventStatus.SALES_CLOSED], target=EventStatus.ON_SALE)
    def open_sales(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(field=status, source=EventStatus.ON_SALE, target=EventStatus.SALES_CLOSED)
    def close_sales(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(field=status, source=[EventStatus.ON_SALE, EventStatus.SALES_CLOSED], target=EventStatus.COMPLETED)
    def complete(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[EventStatus.DRAFT, EventStatus.ON_SALE, EventStatus.SALES_CLOSED],
        target=EventStatus.CANCELLED,
    )
    def cancel(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @property
    def is_on_sale(self) -> bool:
        return self.status == EventStatus.ON_SALE
