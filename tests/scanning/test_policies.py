"""Each admission policy, end to end (ProcessScan on the database), and the
pure decision table."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from scanning.admission import AdmissionFacts, admission_decide
from scanning.models import AdmissionState, Direction, Scan, ScanResult
from scanning.services.scans import scan_process
from tests.scanning.conftest import Gate, code_of, issue, live_event, new_device, scan, ticket_type_with
from ticketing.models import AdmissionPolicy

OK = ScanResult.OK


def _results(device, ticket, directions: str) -> list[str]:
    """Scan `ticket` once per letter: i = in, o = out."""
    return [scan(device, ticket, "in" if d == "i" else "out").result for d in directions]


def _state(ticket) -> AdmissionState:
    return AdmissionState.objects.get(ticket_id=ticket.pk)


def test_single_entry_admits_once(gate: Gate) -> None:
    ticket = gate.ticket()
    assert _results(gate.device, ticket, "iioio") == [
        OK,
        ScanResult.ALREADY_INSIDE,  # scanned twice at the door
        OK,  # the exit is recorded
        ScanResult.TOO_MANY_ENTRIES,  # but there is no second entry
        ScanResult.NOT_INSIDE,
    ]
    state = _state(ticket)
    assert (state.inside, state.entries) == (False, 1)


def test_single_entry_already_inside_says_where_and_when(gate: Gate) -> None:
    ticket = gate.ticket()
    scan(gate.device, ticket)
    other, _ = new_device(gate.event, name="Handheld 2", gate="South gate")
    again = scan(other, ticket)
    assert again.result == ScanResult.ALREADY_INSIDE
    assert "North gate" in again.scan.reason
    assert again.holder_name == "Ada Lovelace"  # the gate may talk to them


def test_an_exit_before_any_entry_is_not_inside(gate: Gate) -> None:
    ticket = gate.ticket()
    assert _results(gate.device, ticket, "o") == [ScanResult.NOT_INSIDE]
    assert _state(ticket).entries == 0


def test_reentry_alternates_in_and_out(gate: Gate) -> None:
    ticket = issue(ticket_type_with(gate.event, AdmissionPolicy.REENTRY))[0]
    assert _results(gate.device, ticket, "iiooioii") == [
        OK,
        ScanResult.ALREADY_INSIDE,
        OK,
        ScanResult.NOT_INSIDE,
        OK,
        OK,
        OK,
        ScanResult.ALREADY_INSIDE,
    ]
    state = _state(ticket)
    assert (state.inside, state.entries) == (True, 3)


def test_n_entries_counts_entries_not_exits(gate: Gate) -> None:
    ticket = issue(ticket_type_with(gate.event, AdmissionPolicy.MULTI_ENTRY, max_entries=3))[0]
    # Exits are often not scanned at N-entry gates: entries are not refused for being "inside".
    assert _results(gate.device, ticket, "iii") == [OK, OK, OK]
    fourth = scan(gate.device, ticket)
    assert fourth.result == ScanResult.TOO_MANY_ENTRIES
    assert "3 of 3" in fourth.scan.reason
    assert _results(gate.device, ticket, "oi") == [OK, ScanResult.TOO_MANY_ENTRIES]
    assert _state(ticket).entries == 3


def _scan_at(device, ticket, moment: datetime, direction: str = "in") -> str:
    return scan_process(
        device=device, code=code_of(ticket), direction=direction, nonce=uuid.uuid4().hex, now=moment
    ).result


def test_once_per_day_follows_the_events_calendar(db: None) -> None:
    # A three-day festival in New York: days turn at local midnight, not UTC's.
    zone = ZoneInfo("America/New_York")
    day_one = timezone.now().astimezone(zone).replace(hour=12, minute=0, second=0, microsecond=0)
    event = live_event(
        timezone="America/New_York", starts_at=day_one - timedelta(hours=2), ends_at=day_one + timedelta(days=3)
    )
    device, _ = new_device(event)
    ticket = issue(ticket_type_with(event, AdmissionPolicy.DAILY))[0]

    assert _scan_at(device, ticket, day_one.replace(hour=10)) == OK
    # 23:30 local is 03:30 UTC the next day: still day one at this event.
    assert _scan_at(device, ticket, day_one.replace(hour=23, minute=30)) == ScanResult.ALREADY_TODAY
    assert _scan_at(device, ticket, day_one.replace(hour=23, minute=40), "out") == OK
    next_morning = (day_one + timedelta(days=1)).replace(hour=0, minute=30)
    assert _scan_at(device, ticket, next_morning) == OK
    # Not exited, a new day: let in again (the day is what counts).
    assert _scan_at(device, ticket, (day_one + timedelta(days=2)).replace(hour=9)) == OK
    state = _state(ticket)
    assert state.entries == 3 and state.last_entry_on == (day_one + timedelta(days=2)).date()


def test_policy_changes_apply_to_the_next_scan(gate: Gate) -> None:
    ticket = gate.ticket()
    scan(gate.device, ticket)
    scan(gate.device, ticket, "out")
    assert scan(gate.device, ticket).result == ScanResult.TOO_MANY_ENTRIES
    gate.ticket_type.admission_policy = AdmissionPolicy.REENTRY
    gate.ticket_type.save(update_fields=["admission_policy"])
    assert scan(gate.device, ticket).result == OK


def test_only_accepted_scans_change_the_state(gate: Gate) -> None:
    ticket = gate.ticket()
    scan(gate.device, ticket)
    before = _state(ticket)
    for _ in range(3):
        scan(gate.device, ticket)
    after = _state(ticket)
    assert (after.inside, after.entries, after.last_entry_id) == (before.inside, before.entries, before.last_entry_id)
    assert Scan.objects.filter(ticket=ticket).count() == 4  # every scan is recorded, refused ones too


TODAY = date(2030, 5, 1)


@pytest.mark.parametrize(
    ("policy", "max_entries", "direction", "facts", "expected"),
    [
        (AdmissionPolicy.SINGLE_ENTRY, None, Direction.IN, AdmissionFacts(False, 0, None), OK),
        (AdmissionPolicy.SINGLE_ENTRY, None, Direction.IN, AdmissionFacts(True, 1, TODAY), ScanResult.ALREADY_INSIDE),
        (
            AdmissionPolicy.SINGLE_ENTRY,
            None,
            Direction.IN,
            AdmissionFacts(False, 1, TODAY),
            ScanResult.TOO_MANY_ENTRIES,
        ),
        (AdmissionPolicy.REENTRY, None, Direction.IN, AdmissionFacts(False, 7, TODAY), OK),
        (AdmissionPolicy.REENTRY, None, Direction.IN, AdmissionFacts(True, 7, TODAY), ScanResult.ALREADY_INSIDE),
        (AdmissionPolicy.MULTI_ENTRY, 2, Direction.IN, AdmissionFacts(True, 1, TODAY), OK),
        (AdmissionPolicy.MULTI_ENTRY, 2, Direction.IN, AdmissionFacts(False, 2, TODAY), ScanResult.TOO_MANY_ENTRIES),
        (AdmissionPolicy.MULTI_ENTRY, None, Direction.IN, AdmissionFacts(False, 1, None), ScanResult.TOO_MANY_ENTRIES),
        (AdmissionPolicy.DAILY, None, Direction.IN, AdmissionFacts(True, 3, TODAY), ScanResult.ALREADY_TODAY),
        (AdmissionPolicy.DAILY, None, Direction.IN, AdmissionFacts(True, 3, date(2030, 4, 30)), OK),
        (AdmissionPolicy.DAILY, None, Direction.OUT, AdmissionFacts(False, 3, TODAY), ScanResult.NOT_INSIDE),
        (AdmissionPolicy.REENTRY, None, Direction.OUT, AdmissionFacts(True, 1, TODAY), OK),
        ("a_policy_from_the_future", None, Direction.IN, AdmissionFacts(False, 1, TODAY), ScanResult.TOO_MANY_ENTRIES),
    ],
)
def test_decision_table(policy, max_entries, direction, facts, expected) -> None:
    assert (
        admission_decide(policy=policy, max_entries=max_entries, direction=direction, facts=facts, today=TODAY)
        == expected
    )
