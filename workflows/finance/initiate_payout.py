"""InitiatePayout: request -> provider -> in transit -> paid | failed.

    1. local step: payout_request moves the amount from available to in
       transit with the Payout row (never more than available);
       compensation: payout_mark_failed moves it back, if the provider
       never accepted the payout (a cancelled run never restores money
       that may have left)
    2. external step: payments.services.payout_create with the payout's own
       idempotency key (a retry after a timeout never pays twice) and the
       key as the reference the provider echoes in its webhooks; no
       transaction or lock is held during the call
    3. local step: mark it in transit with the provider's payout id
    4. wait for the "finance.payout_result" signal and record it. The signal
       comes from the provider's payout.paid / payout.failed webhook
       (on_payout_result, below), or from finance staff. If none arrives
       within the poll interval (the run's input `status_poll_hours`, default
       settings.FINANCE_PAYOUT_STATUS_POLL_HOURS = 24), the run asks the
       provider for the payout's status (external step) and records a final
       one; it asks up to `status_polls` times (default 14), then waits for
       a webhook or staff without a timeout (it never fails a payout whose
       money may have left: that would restore a balance already paid out).
       Woken by the engine's beat (wake_due_runs) when a wait times out.

A provider rejection fails step 2 for good, and the compensation of step 1
restores the available balance.

Webhooks. payments verifies and records a payout webhook and, in the same
transaction, sends payments.signals.payout_result; on_payout_result applies
it there and then (so the event row, the payout's state, its ledger entries
and the run's signal commit together, exactly once) and signals the run.
A replay is a duplicate event (nothing happens); a "failed" after "paid"
(a bank return) restores the balance once; a "paid" after "failed" changes
nothing; so any order of delivery ends in the same ledger. Lock order: the
run row, then the payout (as the run's own steps take them).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from finance.models import Payout, PayoutStatus
from finance.selectors import payout_for_provider
from finance.services import payout_mark_failed, payout_mark_in_transit, payout_mark_paid, payout_request
from payments.exceptions import WebhookMismatch
from payments.services import payout_create, payout_status_fetch
from payments.signals import PayoutResultHandled, payout_result
from ticketing.integrations import event_publish_if_wanted
from workflows.engine import Context, RetryPolicy, signal, start, workflow
from workflows.exceptions import SignalTimeout, StepFailed
from workflows.models import WorkflowRun

logger = logging.getLogger(__name__)

WORKFLOW_TYPE = "finance.initiate_payout"
RESULT_SIGNAL = "finance.payout_result"
DEFAULT_STATUS_POLL_HOURS = 24.0
DEFAULT_STATUS_POLLS = 14
PROVIDER_RETRY = RetryPolicy(max_attempts=5, initial_delay=30)


def initiate_payout_start(*, organization_id: int, currency: str, idempotency_key: str) -> WorkflowRun:
    """Start paying out everything available (idempotent on the key). The
    status-poll schedule is fixed in the run's input, so replays of a run
    never depend on settings changed since it started."""
    with transaction.atomic():
        return start(
            WORKFLOW_TYPE,
            idempotency_key,
            {
                "organization_id": organization_id,
                "currency": currency,
                "idempotency_key": idempotency_key,
                "status_poll_hours": float(
                    getattr(settings, "FINANCE_PAYOUT_STATUS_POLL_HOURS", DEFAULT_STATUS_POLL_HOURS)
                ),
                "status_polls": int(getattr(settings, "FINANCE_PAYOUT_STATUS_POLLS", DEFAULT_STATUS_POLLS)),
            },
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


def payout_outcome_record(
    *, payout_id: int, status: str, failure_code: str = "", reason: str = "", provider_payout_id: str = ""
) -> tuple[Payout, bool]:
    """In the caller's transaction: record a payout's outcome ("paid" or
    "failed") and, if it changed the payout, tell subscribed integrators
    (payout.paid / payout.failed) with the change. Idempotent."""
    if status == "paid":
        payout, changed = payout_mark_paid(payout_id=payout_id, reason=reason, provider_payout_id=provider_payout_id)
    else:
        payout, changed = payout_mark_failed(
            payout_id=payout_id,
            failure_code=failure_code or "failed",
            reason=reason,
            provider_payout_id=provider_payout_id,
        )
    if changed:
        event_publish_if_wanted(
            organization_id=payout.organization_id,
            event_type=f"payout.{payout.status}",
            payload={"payout": {"id": payout.pk, "status": payout.status, "amount_cents": payout.amount_cents}},
        )
    elif status == "paid" and payout.status == PayoutStatus.FAILED:
        # Nothing to undo here (the failure stands), but someone should look.
        logger.warning("payout %s: the provider reports it paid after it failed here", payout.pk)
    return payout, changed


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
    """Undo the request: only for a payout the provider never accepted. One
    it accepted (in transit, or already paid by its webhook) keeps its money
    in transit until the provider says how it ended."""
    if result is None:
        return
    payout, changed = payout_mark_failed(
        payout_id=result["payout_id"], failure_code="not_sent", reason="payout run compensated", only_if_unsent=True
    )
    if not changed and payout.status != PayoutStatus.FAILED:
        logger.warning("payout %s: run compensated while the payout is %s; left as it is", payout.pk, payout.status)


def _ask_provider(provider: str, provider_payout_id: str) -> dict[str, Any]:
    found = payout_status_fetch(provider=provider, provider_payout_id=provider_payout_id)
    return {"status": str(found.state), "failure_code": found.failure_code, "source": "status"}


def _await_outcome(ctx: Context, *, provider: str, provider_payout_id: str) -> dict[str, Any]:
    """The provider's final word: a signal (webhook or staff), or, when none
    comes within the poll interval, the provider's status call."""
    every = timedelta(hours=float(ctx.input.get("status_poll_hours", DEFAULT_STATUS_POLL_HOURS)))
    for _ in range(int(ctx.input.get("status_polls", DEFAULT_STATUS_POLLS))):
        try:
            return dict(ctx.wait_signal(RESULT_SIGNAL, timeout=every) or {})
        except SignalTimeout:
            pass
        try:
            status = ctx.step(
                "ask provider for status",
                lambda _key: _ask_provider(provider, provider_payout_id),
                external=True,
                retry=PROVIDER_RETRY,
            )
        except StepFailed:
            continue  # the provider would not say: wait and ask again
        if status.get("status") in ("paid", "failed"):
            return dict(status)
    # Still in transit after every poll: a late webhook or finance staff decide.
    return dict(ctx.wait_signal(RESULT_SIGNAL) or {})


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
            reference=requested["idempotency_key"],
        ),
        external=True,
        retry=PROVIDER_RETRY,
    )
    payout_id = requested["payout_id"]
    ctx.step(
        "mark in transit",
        lambda: payout_mark_in_transit(payout_id=payout_id, provider_payout_id=provider_payout_id)[0].status,
    )
    result = _await_outcome(ctx, provider=requested["provider"], provider_payout_id=provider_payout_id)
    outcome = "paid" if result.get("status") == "paid" else "failed"
    code = str(result.get("failure_code") or "failed")
    reason = f"payout run: {result.get('source') or 'signal'} says {outcome}"
    status = ctx.step(
        f"mark {outcome}",
        lambda: str(
            payout_outcome_record(payout_id=payout_id, status=outcome, failure_code=code, reason=reason)[0].status
        ),
    )
    return {"payout_id": payout_id, "status": status}


@receiver(payout_result, dispatch_uid="workflows.finance.initiate_payout")
def on_payout_result(
    sender: type,
    *,
    provider: str,
    provider_payout_id: str,
    payout_reference: str,
    status: str,
    failure_code: str,
    amount_cents: int | None,
    currency: str,
    provider_event_id: str,
    **kwargs: Any,
) -> PayoutResultHandled | None:
    """A verified payout webhook, in its transaction (see the module
    docstring): lock the payout's run (if still active) and signal it, then
    record the outcome on the payout. None for a payout we do not know."""
    payout = payout_for_provider(provider=provider, provider_payout_id=provider_payout_id, reference=payout_reference)
    if payout is None:
        return None
    problems: dict[str, Any] = {}
    if amount_cents is not None and amount_cents != payout.amount_cents:
        problems["amount_cents"] = {"expected": payout.amount_cents, "received": amount_cents}
    if currency and currency != payout.currency:
        problems["currency"] = {"expected": payout.currency, "received": currency}
    if problems:
        raise WebhookMismatch("The webhook does not match the payout it refers to.", detail=problems)
    run = (
        WorkflowRun.objects.select_for_update()
        .filter(workflow_type=WORKFLOW_TYPE, business_key=payout.idempotency_key)
        .first()
    )
    if run is not None and not run.is_finished:
        signal(
            run,
            RESULT_SIGNAL,
            {"status": status, "failure_code": failure_code, "source": f"{provider} webhook {provider_event_id}"},
            dedup_key=f"{provider}:{provider_event_id}",
        )
    payout, changed = payout_outcome_record(
        payout_id=payout.pk,
        status=status,
        failure_code=failure_code,
        reason=f"{provider} webhook payout.{status} ({provider_event_id})",
        provider_payout_id=provider_payout_id,
    )
    return PayoutResultHandled(organization_id=payout.organization_id, changed=changed)


__all__ = ["Payout", "initiate_payout", "initiate_payout_start", "on_payout_result", "payout_outcome_record"]
