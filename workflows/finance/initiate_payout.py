"""InitiatePayout: request -> provider -> in transit -> paid | failed.

    1. local step: payout_request moves the amount from available to in
       transit with the Payout row (never more than available);
       compensation: payout_mark_failed moves it back
    2. external step: payments.services.payout_create with the payout's own
       idempotency key (a retry after a timeout never pays twice); no
       transaction or lock is held during the call
    3. local step: mark it in transit with the provider's payout id
    4. wait for the provider's "finance.payout_result" signal (paid or
       failed, from its webhook or from finance staff) and record it

A provider rejection fails step 2 for good, and the compensation of step 1
restores the available balance.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction

from finance.models import Payout
from finance.services import payout_mark_failed, payout_mark_in_transit, payout_mark_paid, payout_request
from payments.services import payout_create
from ticketing.integrations import event_publish_if_wanted
from workflows.engine import Context, RetryPolicy, start, workflow
from workflows.models import WorkflowRun

WORKFLOW_TYPE = "finance.initiate_payout"
RESULT_SIGNAL = "finance.payout_result"


def initiate_payout_start(*, organization_id: int, currency: str, idempotency_key: str) -> WorkflowRun:
    """Start paying out everything available (idempotent on the key)."""
    with transaction.atomic():
        return start(
            WORKFLOW_TYPE,
            idempotency_key,
            {"organization_id": organization_id, "currency": currency, "idempotency_key": idempotency_key},
            organization=organization_id,
        )


def payout_send(organization_id: int, currency: str, key: str) -> tuple[str, int]:
    """finance.services.runs' sender for manage.py run_payouts and the beat
    task: start the workflow, report where the payout stands."""
    run = initiate_payout_start(organization_id=organization_id, currency=currency, idempotency_key=key)
    payout = Payout.objects.filter(idempotency_key=key).first()
    if payout is None:
        return f"run {run.pk} {run.status}", 0
    return f"payout {payout.pk} {payout.status}", payout.amount_cents


def _request(ctx: Context) -> dict[str, Any] | None:
    payout = payout_request(
        organization_id=int(ctx.input["organization_id"]),
        currency=str(ctx.input["currency"]),
        idempotency_key=str(ctx.input["idempotency_key"]),
    )
    if payout is None:
        return None
    return {
        "payout_id": payout.pk,
        "amount_cents": payout.amount_cents,
        "currency": payout.currency,
        "provider": payout.provider,
        "destination": payout.destination,
        "idempotency_key": payout.idempotency_key,
    }


def _restore(result: dict[str, Any] | None) -> None:
    if result is not None:
        payout_mark_failed(payout_id=result["payout_id"], failure_code="not_sent", reason="payout run compensated")


def _announce(payout: Payout, event_type: str) -> str:
    """In the step's transaction: tell subscribed integrators how the payout ended."""
    event_publish_if_wanted(
        organization_id=payout.organization_id,
        event_type=event_type,
        payload={"payout": {"id": payout.pk, "status": payout.status, "amount_cents": payout.amount_cents}},
    )
    return str(payout.status)


@workflow(WORKFLOW_TYPE)
def initiate_payout(ctx: Context) -> dict[str, Any]:
    requested = ctx.step("request payout", lambda: _request(ctx), compensate=_restore)
    if requested is None:
        return {"payout_id": None}
    provider_payout_id = ctx.step(
        "send to provider",
        lambda _key: payout_create(
            provider=requested["provider"],
            amount_cents=requested["amount_cents"],
            currency=requested["currency"],
            destination=requested["destination"],
            # The payout's own key, not the step's: the provider sees one
            # key per payout whoever sends it.
            idempotency_key=requested["idempotency_key"],
        ),
        external=True,
        retry=RetryPolicy(max_attempts=5, initial_delay=30),
    )
    payout_id = requested["payout_id"]
    ctx.step(
        "mark in transit",
        lambda: payout_mark_in_transit(payout_id=payout_id, provider_payout_id=provider_payout_id)[0].status,
    )
    result = ctx.wait_signal(RESULT_SIGNAL, timeout=timedelta(days=10))
    if result.get("status") == "paid":
        status = ctx.step("mark paid", lambda: _announce(payout_mark_paid(payout_id=payout_id)[0], "payout.paid"))
    else:
        code = str(result.get("failure_code") or "failed")
        status = ctx.step(
            "mark failed",
            lambda: _announce(payout_mark_failed(payout_id=payout_id, failure_code=code)[0], "payout.failed"),
        )
    return {"payout_id": payout_id, "status": status}


__all__ = ["Payout", "initiate_payout", "initiate_payout_start"]
