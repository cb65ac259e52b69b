"""Writes of the finance domain."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from finance.fees import FeeRules
from finance.models import FeeSchedule
from ticketing.locks import lock_timeout
from ticketing.models import Organization


def fee_schedule_publish(*, organization_id: int, event_id: int | None = None, **rates: Any) -> FeeSchedule:
    """Publish a new fee-schedule version. Versions are never edited, so
    orders priced with an older one keep their numbers."""
    FeeRules(**rates)  # refuses impossible rates before anything is written
    with transaction.atomic(), lock_timeout():
        # Serialize version numbers per organization on its row.
        Organization.objects.select_for_update().filter(pk=organization_id).values_list("pk").first()
        latest = FeeSchedule.objects.filter(organization_id=organization_id, event=event_id).aggregate(
            v=Max("version")
        )["v"]
        return FeeSchedule.objects.create(
            organization_id=organization_id, event_id=event_id, version=(latest or 0) + 1, **rates
        )
