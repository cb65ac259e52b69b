"""Funnel events: one row per step a buyer takes towards a paid order.

Append-only and narrow (no foreign keys, so an insert takes no locks on the
rows it names and never waits behind a checkout), written with one INSERT by
workflows.analytics.track_funnel_event. Analytics aggregates them later."""

from __future__ import annotations

from django.db import models


class FunnelStep(models.TextChoices):
    EVENT_VIEWED = "event_viewed", "Event page viewed"
    SEATS_HELD = "seats_held", "Seats held"
    CHECKOUT_STARTED = "checkout_started", "Checkout started"
    PAYMENT_STARTED = "payment_started", "Payment started"
    PAID = "paid", "Paid"


class FunnelEvent(models.Model):
    event_id = models.BigIntegerField(help_text="The ticketing event (no foreign key: inserts stay lock-free).")
    step = models.CharField(max_length=20, choices=FunnelStep.choices)
    order_code = models.CharField(max_length=32, blank=True)
    quantity = models.PositiveIntegerField(default=0, help_text="Tickets or seats involved, where known.")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["event_id", "step", "created_at"], name="funnel_event_step_time")]
        constraints = [
            # Order-scoped steps count once per order, however often they are reported.
            models.UniqueConstraint(
                fields=["step", "order_code"], condition=~models.Q(order_code=""), name="funnel_once_per_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} for event {self.event_id}"
