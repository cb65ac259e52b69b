"""Races on real PostgreSQL: many gates, one ticket."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from scanning.models import AdmissionState, Scan, ScanResult
from tests.concurrency import run_concurrently
from tests.scanning.conftest import code_of, issue, live_event, new_device, ticket_type_with
from ticketing.models import AdmissionPolicy, WebhookDelivery, WebhookSubscription
from workflows.scanning.process_scan import process_scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]

GATES = 16


def _scanner(device, code: str, direction: str = "in", nonce: str | None = None):
    def run() -> str:
        return process_scan(device=device, code=code, direction=direction, nonce=nonce or uuid.uuid4().hex).result

    return run


def test_sixteen_gates_one_single_entry_ticket_admit_exactly_once() -> None:
    event = live_event()
    WebhookSubscription.objects.create(
        organization=event.organization, url="http://127.0.0.1:9/", event_types=["checkin.created"]
    )
    ticket = issue(ticket_type_with(event))[0]
    code = code_of(ticket)
    devices = [new_device(event, name=f"Handheld {i}", gate=f"Gate {i}")[0] for i in range(GATES)]

    outcomes = run_concurrently([_scanner(device, code) for device in devices])

    errors = [exc for _, exc in outcomes if exc is not None]
    assert not errors, errors
    results = Counter(result for result, _ in outcomes)
    assert results == {ScanResult.OK: 1, ScanResult.ALREADY_INSIDE: GATES - 1}
    state = AdmissionState.objects.get(ticket=ticket)
    assert (state.inside, state.entries) == (True, 1)
    assert Scan.objects.filter(ticket=ticket).count() == GATES
    assert state.last_entry == Scan.objects.get(ticket=ticket, result=ScanResult.OK)
    assert WebhookDelivery.objects.filter(event_type="checkin.created").count() == 1


def test_n_entries_under_a_race_never_exceed_n() -> None:
    event = live_event()
    ticket = issue(ticket_type_with(event, AdmissionPolicy.MULTI_ENTRY, max_entries=5))[0]
    code = code_of(ticket)
    devices = [new_device(event, name=f"Handheld {i}")[0] for i in range(GATES)]

    outcomes = run_concurrently([_scanner(device, code) for device in devices])

    assert all(exc is None for _, exc in outcomes), outcomes
    results = Counter(result for result, _ in outcomes)
    assert results == {ScanResult.OK: 5, ScanResult.TOO_MANY_ENTRIES: GATES - 5}
    assert AdmissionState.objects.get(ticket=ticket).entries == 5


def test_one_nonce_sent_many_times_at_once_is_recorded_once() -> None:
    event = live_event()
    ticket = issue(ticket_type_with(event))[0]
    device = new_device(event)[0]
    code = code_of(ticket)

    # The same request retried by a flaky network, all in flight together;
    # and an unknown code (no state row to wait on: the constraint decides).
    same = run_concurrently([_scanner(device, code, nonce="retry-1") for _ in range(8)])
    garbage = run_concurrently([_scanner(device, "garbage", nonce="retry-2") for _ in range(8)])

    assert [exc for _, exc in same + garbage if exc is not None] == []
    assert {result for result, _ in same} == {ScanResult.OK}
    assert {result for result, _ in garbage} == {ScanResult.UNKNOWN}
    assert Scan.objects.filter(device=device).count() == 2
    assert AdmissionState.objects.get(ticket=ticket).entries == 1
