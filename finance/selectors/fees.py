"""Reads of the finance domain."""

from __future__ import annotations

from django.db.models import F, Q

from finance.fees import FeeRules
from finance.models import FeeSchedule

# Used when an organization has no schedule of its own.
DEFAULT_FEE_RULES = FeeRules(
    platform_rate_bp=350,
    platform_fixed_per_ticket_cents=99,
    processor_rate_bp=290,
    processor_fixed_cents=30,
)


def fee_rules_for(*, organization_id: int, event_id: int | None) -> FeeRules:
    """The newest schedule version for the event, else the organization's default."""
    # One filter() on the columns themselves (no relation lookup): this runs
    # on every checkout start.
    schedule = (
        FeeSchedule.objects.filter(Q(event_id=event_id) | Q(event_id__isnull=True), organization_id=organization_id)
        .order_by(F("event_id").asc(nulls_last=True), "-version")  # event-specific first
        .first()
    )
    if schedule is None:
        return DEFAULT_FEE_RULES
    return FeeRules(
        platform_rate_bp=schedule.platform_rate_bp,
        platform_fixed_per_ticket_cents=schedule.platform_fixed_per_ticket_cents,
        platform_fixed_per_order_cents=schedule.platform_fixed_per_order_cents,
        platform_min_per_ticket_cents=schedule.platform_min_per_ticket_cents,
        platform_max_per_ticket_cents=schedule.platform_max_per_ticket_cents,
        platform_fee_passed_on=schedule.platform_fee_passed_on,
        processor_rate_bp=schedule.processor_rate_bp,
        processor_fixed_cents=schedule.processor_fixed_cents,
        processor_fee_passed_on=schedule.processor_fee_passed_on,
        version=schedule.version,
    )
