"""ProcessSettlement: a durable timer that settles one event after its
clearing period, then releases the settlement's reserve when its hold ends.

    sleep until the cutoff (event end + clearing days)
    -> post the settlement (local step: the settlement row and its journal
       transaction commit with the step's record, exactly once)
    -> sleep until the reserve is due -> release it (local step)

The timers are rows in the database, so they survive restarts and deploys.
Idempotent twice over: start() is idempotent on the business key
`settle:{event}:{cutoff}`, and settlement_create on (organization, event,
cutoff), so the run and `manage.py run_settlements` can both fire safely.
A settlement awaiting approval ends the run; its reserve is released by the
daily sweep (finance.tasks.run_settlements) once it is approved.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime

from finance.models import Settlement, SettlementStatus
from finance.selectors.settlements import settlement_cutoff_for
from finance.services import settlement_create, settlement_reserve_release
from ticketing.integrations import event_publish_if_wanted
from ticketing.models import Event
from workflows.engine import Context, start, workflow
from workflows.models import WorkflowRun

WORKFLOW_TYPE = "finance.process_settlement"


def process_settlement_start(*, event_id: int) -> WorkflowRun:
    """Schedule the settlement of an event (call when its sales open, or any
    time after: the run sleeps until the cutoff). Idempotent."""
    event = Event.objects.get(pk=event_id)
    cutoff = settlement_cutoff_for(event=event)
    return start(
        WORKFLOW_TYPE,
        f"settle:{event.pk}:{cutoff.isoformat()}",
        {"event_id": event.pk, "cutoff": cutoff.isoformat()},
        organization=event.organization_id,
    )


def _parse(value: str) -> Any:
    parsed = parse_datetime(value)
    assert parsed is not None, f"not an ISO datetime: {value!r}"
    return parsed


def _post_settlement(event_id: int, cutoff: str) -> dict[str, Any] | None:
    settlement, created = settlement_create(event_id=event_id, cutoff=_parse(cutoff))
    if settlement is None:
        return None
    if created:
        event_publish_if_wanted(
            organization_id=settlement.organization_id,
            event_type="settlement.completed",
            payload={
                "settlement": {
                    "id": settlement.pk,
                    "event": event_id,
                    "cutoff": cutoff,
                    "net_cents": settlement.net_cents,
                    "reserve_cents": settlement.reserve_cents,
                }
            },
        )
    return {
        "settlement_id": settlement.pk,
        "status": settlement.status,
        "net_cents": settlement.net_cents,
        "reserve_cents": settlement.reserve_cents,
        "reserve_release_at": settlement.reserve_release_at.isoformat() if settlement.reserve_release_at else None,
    }


def _release_reserve(settlement_id: int) -> int:
    settlement, _released = settlement_reserve_release(settlement_id=settlement_id)
    return settlement.reserve_cents


@workflow(WORKFLOW_TYPE)
def process_settlement(ctx: Context) -> dict[str, Any]:
    event_id, cutoff = int(ctx.input["event_id"]), str(ctx.input["cutoff"])
    ctx.sleep_until("clearing period", _parse(cutoff))
    posted = ctx.step("post settlement", lambda: _post_settlement(event_id, cutoff))
    if posted is None:
        return {"settlement_id": None}
    if posted["status"] != SettlementStatus.POSTED or not posted["reserve_cents"]:
        return posted
    ctx.sleep_until("reserve hold", _parse(posted["reserve_release_at"]))
    released = ctx.step("release reserve", lambda: _release_reserve(posted["settlement_id"]))
    return posted | {"reserve_released_cents": released}


__all__ = ["Settlement", "process_settlement", "process_settlement_start"]
