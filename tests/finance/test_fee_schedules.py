from __future__ import annotations

import pytest

from finance.fees import FeeRules
from finance.selectors import DEFAULT_FEE_RULES, fee_rules_for, fee_rules_from_sql, fee_rules_sql
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


def _rules_via_subquery(event) -> object:
    """fee_rules_sql as another read would use it: a column of the event's row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {fee_rules_sql(event='ev')} FROM ticketing_event ev WHERE ev.id = %s", [event.pk])
        return fee_rules_from_sql(cursor.fetchone()[0])


@pytest.mark.django_db
def test_the_rules_are_read_whole_with_their_types_and_the_subquery_agrees(organization):
    event = EventFactory(organization=organization)
    other = EventFactory(organization=organization)
    stranger = EventFactory()

    # no schedule: the defaults, from both reads
    assert fee_rules_for(organization_id=organization.pk, event_id=event.pk) == DEFAULT_FEE_RULES
    assert _rules_via_subquery(event) == DEFAULT_FEE_RULES

    # the organization's default, then an event's own with every field set
    default = {
        "platform_rate_bp": 100,
        "platform_fixed_per_ticket_cents": 0,
        "platform_fee_passed_on": False,
        "processor_rate_bp": 200,
        "processor_fixed_cents": 10,
    }
    fee_schedule_publish(organization_id=organization.pk, **default)
    own = {
        "platform_rate_bp": 275,
        "platform_fixed_per_ticket_cents": 49,
        "platform_fixed_per_order_cents": 150,
        "platform_min_per_ticket_cents": 60,
        "platform_max_per_ticket_cents": 900,
        "platform_fee_passed_on": False,
        "processor_rate_bp": 150,
        "processor_fixed_cents": 25,
        "processor_fee_passed_on": False,
    }
    fee_schedule_publish(organization_id=organization.pk, event_id=event.pk, **own)
    fee_schedule_publish(organization_id=organization.pk, event_id=event.pk, **own)

    expected_own = FeeRules(**own, version=2)
    expected_default = FeeRules(**default, version=1)
    assert fee_rules_for(organization_id=organization.pk, event_id=event.pk) == expected_own
    assert fee_rules_for(organization_id=organization.pk, event_id=other.pk) == expected_default
    assert fee_rules_for(organization_id=organization.pk, event_id=None) == expected_default
    assert fee_rules_for(organization_id=stranger.organization_id, event_id=stranger.pk) == DEFAULT_FEE_RULES
    assert _rules_via_subquery(event) == expected_own
    assert _rules_via_subquery(other) == expected_default
    assert _rules_via_subquery(stranger) == DEFAULT_FEE_RULES
    for rules in (fee_rules_for(organization_id=organization.pk, event_id=event.pk), _rules_via_subquery(event)):
        assert type(rules.platform_fee_passed_on) is bool and type(rules.processor_fee_passed_on) is bool
        assert type(rules.platform_min_per_ticket_cents) is int and type(rules.version) is int
    assert _rules_via_subquery(other).platform_min_per_ticket_cents is None


@pytest.mark.django_db
def test_the_schedule_is_read_in_one_statement(organization):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    event = EventFactory(organization=organization)
    fee_schedule_publish(organization_id=organization.pk, event_id=event.pk, platform_rate_bp=200)

    with CaptureQueriesContext(connection) as queries:
        fee_rules_for(organization_id=organization.pk, event_id=event.pk)

    assert len(queries) == 1
