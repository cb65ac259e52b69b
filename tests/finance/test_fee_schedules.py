from __future__ import annotations

import pytest

from finance.selectors import DEFAULT_FEE_RULES, fee_rules_for
from finance.services import fee_schedule_publish
from tests.factories import EventFactory


@pytest.mark.django_db
def test_the_newest_event_schedule_wins_over_the_organization_default(organization):
    event = EventFactory(organization=organization)
    other = EventFactory(organization=organization)
    assert fee_rules_for(organization_id=organization.pk, event_id=event.pk) == DEFAULT_FEE_RULES

    fee_schedule_publish(organization_id=organization.pk, platform_rate_bp=100)
    fee_schedule_publish(organization_id=organization.pk, event_id=event.pk, platform_rate_bp=200)
    v2 = fee_schedule_publish(organization_id=organization.pk, event_id=event.pk, platform_rate_bp=250)

    assert v2.version == 2
    assert fee_rules_for(organization_id=organization.pk, event_id=event.pk).platform_rate_bp == 250
    assert fee_rules_for(organization_id=organization.pk, event_id=other.pk).platform_rate_bp == 100


@pytest.mark.django_db
def test_an_impossible_schedule_is_refused_before_anything_is_written(organization):
    from finance.models import FeeSchedule

    with pytest.raises(ValueError):
        fee_schedule_publish(organization_id=organization.pk, processor_rate_bp=10_000)
    assert not FeeSchedule.objects.exists()
