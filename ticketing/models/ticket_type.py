from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models

from ticketing.exceptions import InvalidQuantity, NotOnSale, SalesEnded, SalesNotStarted
from ticketing.tenancy import TenantQuerySet


class TicketKind(models.TextChoices):
    GENERAL_ADMISSION = "general_admission", "General admission"
    SEATED = "seated", "Reserved seating"


class AdmissionPolicy(models.TextChoices):
    SINGLE_ENTRY = "single_entry", "Single entry"
    REENTRY = "reentry", "Entry and exit (re-entry allowed)"
    MULTI_ENTRY = "multi_entry", "N entries"
    DAILY = "daily", "Once per day"


class TicketType(models.Model):
    """A kind of ticket with a price and a capacity.

    `held` and `sold` are counters kept by ticketing.services.capacity with
    conditional UPDATEs; a CHECK constraint makes `sold + held <= capacity` a
    database guarantee, whatever code runs. Seated ticket types sell seats,
    whose state lives on the seats (seating app)."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.CASCADE, related_name="ticket_types")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=TicketKind.choices, default=TicketKind.GENERAL_ADMISSION)
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    capacity = models.PositiveIntegerField()
    held = models.PositiveIntegerField(default=0, editable=False)
    sold = models.PositiveIntegerField(default=0, editable=False)
    sales_start = models.DateTimeField(null=True, blank=True)
    sales_end = models.DateTimeField(null=True, blank=True)
    min_per_order = models.PositiveSmallIntegerField(default=1)
    max_per_order = models.PositiveSmallIntegerField(default=10)
    admission_policy = models.CharField(
        max_length=20, choices=AdmissionPolicy.choices, default=AdmissionPolicy.SINGLE_ENTRY
    )
    max_entries = models.PositiveSmallIntegerField(null=True, blank=True, help_text="For N-entries tickets.")
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["event", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(capacity__gte=models.F("sold") + models.F("held")),
                name="ticket_type_no_oversell",
            ),
            models.CheckConstraint(
                condition=models.Q(min_per_order__gte=1) & models.Q(max_per_order__gte=models.F("min_per_order")),
                name="ticket_type_order_limits",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} / {self.name}"

    def clean(self) -> None:
        if (
            self.min_per_order is not None
            and self.max_per_order is not None
            and self.min_per_order > self.max_per_order
        ):
            raise ValidationError({"max_per_order": "Must be at least the minimum per order."})
        if self.sales_start and self.sales_end and self.sales_end <= self.sales_start:
            raise ValidationError({"sales_end": "Sales must end after they start."})
        if self.admission_policy == AdmissionPolicy.MULTI_ENTRY and not self.max_entries:
            raise ValidationError({"max_entries": "Set how many entries an N-entries ticket allows."})
        if self.capacity is not None and self.capacity < (self.sold or 0) + (self.held or 0):
            raise ValidationError({"capacity": "Capacity cannot drop below tickets already sold or held."})

    @property
    def available(self) -> int:
        return max(self.capacity - self.sold - self.held, 0)

    def check_orderable(self, *, quantity: int, at: datetime) -> None:
        """Raise the domain error that says why `quantity` of this type cannot be
        ordered at `at`; return quietly if it can. Needs `event` loaded."""
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise InvalidQuantity("The quantity must be a whole number.")
        if quantity < 1:
            raise InvalidQuantity("Choose at least one ticket.", detail={"ticket_type": self.pk, "quantity": quantity})
        if quantity < self.min_per_order or quantity > self.max_per_order:
            raise InvalidQuantity(
                f"Choose between {self.min_per_order} and {self.max_per_order} tickets of {self.name}.",
                detail={"ticket_type": self.pk, "min": self.min_per_order, "max": self.max_per_order},
            )
        if not self.is_active or not self.event.is_on_sale:
            raise NotOnSale(detail={"ticket_type": self.pk})
        if self.sales_start and at < self.sales_start:
            raise SalesNotStarted(detail={"ticket_type": self.pk, "sales_start": self.sales_start.isoformat()})
        if self.sales_end and at >= self.sales_end:
            raise SalesEnded(detail={"ticket_type": self.pk, "sales_end": self.sales_end.isoformat()})
