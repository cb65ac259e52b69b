"""Reads of the finance domain."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from finance.fees import FeeRules
from finance.models import FeeSchedule
from ticketing import rows

# Used when an organization has no schedule of its own.
DEFAULT_FEE_RULES = FeeRules(
    platform_rate_bp=350,
    platform_fixed_per_ticket_cents=99,
    processor_rate_bp=290,
    processor_fixed_cents=30,
)

# FeeRules' fields, in its order: what a schedule read loads, and the order of
# the values in fee_rules_sql's text.
_RULE_FIELDS = tuple(f.name for f in fields(FeeRules))
_OPTIONAL = frozenset({"platform_min_per_ticket_cents", "platform_max_per_ticket_cents"})
_FLAGS = frozenset({"platform_fee_passed_on", "processor_fee_passed_on"})

# The event's own schedule wins over the organization's default (no event),
# the newest version over older ones. NULLS LAST: PostgreSQL, and SQLite 3.30+.
_NEWEST = "ORDER BY {alias}.event_id ASC NULLS LAST, {alias}.version DESC LIMIT 1"
_SCHEDULE_OF_EVENT = (
    "finance_feeschedule.organization_id = %s"
    " AND (finance_feeschedule.event_id = %s OR finance_feeschedule.event_id IS NULL) "
    + _NEWEST.format(alias="finance_feeschedule")
)


def fee_rules_for(*, organization_id: int, event_id: int | None) -> FeeRules:
    """The newest schedule version for the event, else the organization's default."""
    # One cached statement, not the ORM's: this runs on every checkout start.
    schedule = rows.select_one(FeeSchedule, _SCHEDULE_OF_EVENT, [organization_id, event_id], fields=_RULE_FIELDS)
    if schedule is None:
        return DEFAULT_FEE_RULES
    return FeeRules(**{name: getattr(schedule, name) for name in _RULE_FIELDS})


def fee_rules_sql(*, event: str) -> str:
    """A scalar subquery for another read (a SELECT column, no parameters):
    the fee rules of the event whose table is named `event` in that read
    (quoted as needed; its organization_id and id columns), as text for
    fee_rules_from_sql, NULL when the organization has no schedule. So a
    read of the event can bring its fees along instead of a statement of
    its own. Plain SQL, for PostgreSQL and SQLite alike."""
    values = []
    for name in _RULE_FIELDS:
        column = f"f.{name}"
        if name in _FLAGS:
            values.append(f"CASE WHEN {column} THEN '1' ELSE '0' END")
        elif name in _OPTIONAL:
            values.append(f"COALESCE(CAST({column} AS TEXT), '')")
        else:
            values.append(f"CAST({column} AS TEXT)")
    joined = " || ',' || ".join(values)
    return (
        f"(SELECT {joined} FROM finance_feeschedule f"  # noqa: S608
        f" WHERE f.organization_id = {event}.organization_id"
        f" AND (f.event_id = {event}.id OR f.event_id IS NULL) {_NEWEST.format(alias='f')})"
    )


def fee_rules_from_sql(value: str | None) -> FeeRules:
    """The FeeRules of a fee_rules_sql value."""
    if value is None:
        return DEFAULT_FEE_RULES
    rules: dict[str, Any] = {}
    for name, text in zip(_RULE_FIELDS, value.split(","), strict=True):
        if name in _FLAGS:
            rules[name] = text == "1"
        else:
            rules[name] = int(text) if text else None
    return FeeRules(**rules)
