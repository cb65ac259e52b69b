"""ProcessScan: one online scan at a gate, and its announcement.

One durable transaction: scanning decides and records the scan (locking only
the ticket's admission state, see scanning.services.scans), and an accepted
entry is published as the outbound webhook `checkin.created` in the same
transaction, so integrators hear of an entry if and only if it was recorded,
and once: a replayed nonce records nothing and publishes nothing. The
webhook's delivery runs after commit, through the outbox.

A workflow because it crosses domains (scanning's decision, ticketing's
integrator events), but not a recorded workflow run: a scan is one short
transaction on the hot path of a gate, with nothing to compensate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from scanning.api.serializers import ScanSerializer
from scanning.models import Device, Scan
from scanning.services.scans import ScanOutcome, scan_process
from ticketing.integrations import event_publish_if_wanted
from ticketing.locks import run_with_lock_retry

CHECKIN_CREATED = "checkin.created"


def checkin_payload(scan: Scan) -> dict[str, Any]:
    """The API's representation of the scan: ticket, event, device and gate,
    direction, server and device times."""
    return {"checkin": dict(ScanSerializer(scan).data)}


def process_scan(
    *,
    device: Device,
    code: str,
    direction: str,
    nonce: str,
    device_time: datetime | None = None,
    device_sequence: int | None = None,
) -> ScanOutcome:
    """Scan `code` at `device`; returns the outcome (a refused scan is a
    result, not an error). Retries briefly when the ticket's state is locked
    by another gate for longer than the lock timeout, then raises Busy."""

    def attempt() -> ScanOutcome:
        with transaction.atomic(durable=True):
            outcome = scan_process(
                device=device,
                code=code,
                direction=direction,
                nonce=nonce,
                device_time=device_time,
                device_sequence=device_sequence,
            )
            if outcome.created and outcome.admitted:
                event_publish_if_wanted(
                    organization_id=device.organization_id,
                    event_type=CHECKIN_CREATED,
                    payload=checkin_payload(outcome.scan),
                )
            return outcome

    return run_with_lock_retry(attempt)
