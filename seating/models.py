"""Seating plans and seat inventory.

A plan belongs to one event (copied per event, as seat state is per event):
plan -> sections -> rows -> seats. Seats carry their own state
(free -> held -> sold, or blocked) and point at the SeatHold holding them.
Holding is a compare-and-set on exactly the chosen seat rows, locked in id
order (seating.services.holds); a unique constraint on valid tickets per seat
(ticketing.Ticket) is the backstop against double sale.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class SeatingPlan(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.OneToOneField("ticketing.Event", on_delete=models.CASCADE, related_name="seating_plan")
    name = models.CharField(max_length=200)
    width = models.PositiveIntegerField(default=1000, help_text="Drawing width in plan units.")
    height = models.PositiveIntegerField(default=600, help_text="Drawing height in plan units.")
    forbid_orphans = models.BooleanField(
        default=False, help_text="Reject a manual selection that leaves a single free seat stranded."
    )

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    def __str__(self) -> str:
        return self.name


class PriceCategory(models.Model):
    """A price category of a plan; its seats are sold as its ticket type."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(SeatingPlan, on_delete=models.CASCADE, related_name="categories")
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#3b82f6")
    ticket_type = models.ForeignKey("ticketing.TicketType", on_delete=models.PROTECT, related_name="seat_categories")

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        verbose_name_plural = "price categories"
        constraints = [models.UniqueConstraint(fields=["plan", "code"], name="price_category_unique_code")]

    def __str__(self) -> str:
        return self.name


class Section(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(SeatingPlan, on_delete=models.CASCADE, related_name="sections")
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["plan", "position", "id"]

    def __str__(self) -> str:
        return self.name


class Row(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="rows")
    label = models.CharField(max_length=20)
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower is closer to the stage.")

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["section", "position", "id"]

    def __str__(self) -> str:
        return f"{self.section} row {self.label}"


class SeatStatus(models.TextChoices):
    FREE = "free", "Free"
    HELD = "held", "Held"
    SOLD = "sold", "Sold"
    BLOCKED = "blocked", "Blocked"


def new_hold_token() -> str:
    return secrets.token_urlsafe(18)


class SeatHoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"
    CONVERTED = "converted", "Converted to a sale"


class SeatHold(models.Model):
    """A checkout's claim on some seats until `expires_at`.

    Once past `expires_at` the hold no longer protects its seats: a new hold
    may take them at once (lazy expiry), before any sweeper runs."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.CASCADE, related_name="seat_holds")
    token = models.CharField(max_length=32, unique=True, default=new_hold_token, editable=False)
    seat_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=SeatHoldStatus.choices, default=SeatHoldStatus.ACTIVE)
    expires_at = models.DateTimeField()
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["expires_at"], condition=models.Q(status="active"), name="seat_hold_active_expiry"),
        ]

    def __str__(self) -> str:
        return f"Hold {self.token[:8]} ({self.status})"


class Seat(FSMModelMixin, models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.CASCADE, related_name="seats")
    row = models.ForeignKey(Row, on_delete=models.CASCADE, related_name="seats")
    category = models.ForeignKey(PriceCategory, on_delete=models.PROTECT, related_name="seats")
    label = models.CharField(max_length=40, help_text="What the buyer reads, e.g. 'Stalls A 12'.")
    number = models.PositiveIntegerField(help_text="Position in the row; consecutive numbers are adjacent.")
    x = models.FloatField()
    y = models.FloatField()
    is_accessible = models.BooleanField(default=False)
    status = FSMField(max_length=10, choices=SeatStatus.choices, default=SeatStatus.FREE, protected=True)
    hold = models.ForeignKey(SeatHold, null=True, blank=True, on_delete=models.SET_NULL, related_name="seats")

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["row", "number"]
        constraints = [
            models.UniqueConstraint(fields=["row", "number"], name="seat_unique_number_in_row"),
            models.CheckConstraint(
                condition=models.Q(status="held", hold__isnull=False) | ~models.Q(status="held"),
                name="seat_held_has_hold",
            ),
        ]
        indexes = [models.Index(fields=["event", "category", "status"])]

    def __str__(self) -> str:
        return self.label

    # Holding and selling are done in bulk by seating.services.holds with
    # compare-and-set UPDATEs; these transitions serve single-seat staff changes.
    @transition(field=status, source=SeatStatus.FREE, target=SeatStatus.BLOCKED)
    def block(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(field=status, source=SeatStatus.BLOCKED, target=SeatStatus.FREE)
    def unblock(self, *, by: Any = None, reason: str = "") -> None:
        pass
