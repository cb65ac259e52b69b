"""Every result a gate can show, replayed nonces, old codes after a
transfer or refund, and what a scan may and may not reveal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from scanning.exceptions import DeviceRevoked, NonceReused
from scanning.models import AdmissionState, Scan, ScanResult
from scanning.services.devices import device_revoke
from scanning.services.scans import code_hash, scan_process
from tests.factories import OrganizationFactory
from tests.scanning.conftest import Gate, code_of, issue, live_event, new_device, scan, ticket_type_with
from tests.seating.factories import make_hall
from ticketing.exceptions import InvalidInput
from ticketing.models import AdmissionPolicy, Ticket
from ticketing.services.signing_keys import signing_key_for_event, signing_key_rotate
from ticketing.services.tickets import ticket_mark_refunded, ticket_revoke
from ticketing.ticket_codes import (
    PREFIX,
    TicketClaims,
    b64url_decode,
    b64url_encode,
    new_kid,
    ticket_code_encode,
    ticket_code_validity,
)
from workflows.ticketing.transfer_ticket import transfer_ticket


def _forge(gate: Gate, *, ticket_id: int, private_key: Ed25519PrivateKey | None = None, kid: str | None = None) -> str:
    """A code for `ticket_id` at the gate's event, signed with the event's key
    (a genuine code) or with `private_key` under `kid` (a forgery)."""
    key = signing_key_for_event(event=gate.event)
    not_before, not_after = ticket_code_validity(event=gate.event)
    claims = TicketClaims(
        ticket_id=ticket_id,
        event_id=gate.event.pk,
        ticket_type_id=gate.ticket_type.pk,
        seat_id=None,
        generation=1,
        not_before=not_before,
        not_after=not_after,
    )
    return ticket_code_encode(claims=claims, kid=kid or key.kid, private_key=private_key or key.private_key())


def _flip_last_byte(code: str) -> str:
    raw = bytearray(b64url_decode(code[len(PREFIX) :]))
    raw[-1] ^= 0x01
    return PREFIX + b64url_encode(bytes(raw))


def test_ok_answers_with_the_holder_seat_and_ticket_type(gate: Gate) -> None:
    hall = make_hall(gate.event)
    seated_type = gate.event.ticket_types.get(name="std")
    ticket = issue(seated_type, seat_ids=[hall.seat("A", 3)])[0]
    outcome = scan(gate.device, ticket)
    assert outcome.result == ScanResult.OK and outcome.admitted and outcome.created
    assert outcome.holder_name == "Ada Lovelace"
    assert outcome.seat_label and "3" in outcome.seat_label
    assert outcome.ticket is not None and outcome.ticket.ticket_type.name == "std"
    recorded = outcome.scan
    assert (recorded.device_id, recorded.ticket_id, recorded.event_id) == (gate.device.pk, ticket.pk, gate.event.pk)
    assert recorded.code_hash == code_hash(code_of(ticket))  # the code itself is not kept


@pytest.mark.parametrize(
    "code",
    [
        "hello world",
        "https://example.com/ticket/123",
        "",
        "4006381333931",  # a retail barcode
    ],
)
def test_codes_that_are_not_ticket_codes_are_unknown(gate: Gate, code: str) -> None:
    outcome = scan(gate.device, code)
    assert outcome.result == ScanResult.UNKNOWN and outcome.ticket is None
    assert outcome.scan.ticket_id is None


def test_a_genuine_code_for_a_ticket_that_does_not_exist_is_unknown(gate: Gate) -> None:
    outcome = scan(gate.device, _forge(gate, ticket_id=10**12))
    assert outcome.result == ScanResult.UNKNOWN


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda gate, code: _flip_last_byte(code), id="flipped-signature-bit"),
        pytest.param(lambda gate, code: code[:-8], id="truncated"),
        pytest.param(lambda gate, code: code + "A", id="trailing-character"),
        pytest.param(lambda gate, code: PREFIX + "!!!!not base64!!!!", id="bad-base64"),
        pytest.param(lambda gate, code: code[:10] + "=" + code[11:], id="padding-inside"),
        pytest.param(lambda gate, code: PREFIX, id="prefix-only"),
        pytest.param(
            lambda gate, code: _forge(gate, ticket_id=1, private_key=Ed25519PrivateKey.generate(), kid=new_kid()),
            id="unknown-key-id",
        ),
        pytest.param(
            lambda gate, code: _forge(gate, ticket_id=1, private_key=Ed25519PrivateKey.generate()),
            id="right-key-id-wrong-key",
        ),
    ],
)
def test_damaged_or_forged_codes_are_invalid_signature(gate: Gate, mangle) -> None:
    ticket = gate.ticket()
    outcome = scan(gate.device, mangle(gate, code_of(ticket)))
    assert outcome.result == ScanResult.INVALID_SIGNATURE
    assert outcome.ticket is None and outcome.scan.ticket_id is None
    assert not AdmissionState.objects.exists()


def test_codes_signed_by_a_retired_key_still_scan(gate: Gate) -> None:
    ticket = gate.ticket()
    old_code = code_of(ticket)
    signing_key_rotate(event=gate.event)
    assert code_of(ticket) != old_code
    assert scan(gate.device, old_code).result == ScanResult.OK


def test_a_revoked_ticket_is_revoked_and_shows_no_holder(gate: Gate) -> None:
    ticket = gate.ticket()
    code = code_of(ticket)
    ticket_revoke(ticket_id=ticket.pk, reason="fraud")
    outcome = scan(gate.device, code)
    assert outcome.result == ScanResult.REVOKED and not outcome.admitted
    assert outcome.ticket is None and outcome.holder_name is None
    assert outcome.scan.ticket_id == ticket.pk  # staff see which ticket it was


def test_a_refunded_ticket_is_refunded(gate: Gate) -> None:
    ticket = gate.ticket()
    code = code_of(ticket)
    ticket_mark_refunded(ticket_id=ticket.pk, reason="refund")
    outcome = scan(gate.device, code)
    assert outcome.result == ScanResult.REFUNDED and outcome.ticket is None


def test_after_a_transfer_the_old_code_is_revoked_and_the_new_one_admits(gate: Gate) -> None:
    ticket = gate.ticket()
    old_code = code_of(ticket)
    transfer_ticket(ticket_id=ticket.pk, holder_name="Grace Hopper", holder_email="grace@example.com")
    old = scan(gate.device, old_code)
    assert old.result == ScanResult.REVOKED
    assert old.holder_name is None  # the old holder does not learn the new one's name
    new = scan(gate.device, ticket)
    assert new.result == ScanResult.OK and new.holder_name == "Grace Hopper"


def test_a_code_from_before_a_seat_change_is_revoked(gate: Gate) -> None:
    ticket = gate.ticket()
    code = code_of(ticket)
    # A seat change bumps the generation (the seating workflow does it; here by hand).
    Ticket.objects.filter(pk=ticket.pk).update(generation=ticket.generation + 1)
    assert scan(gate.device, code).result == ScanResult.REVOKED


def test_another_events_ticket_is_wrong_event_and_not_linked(gate: Gate) -> None:
    other_event = live_event(gate.organization, name="Other night")
    ticket = issue(ticket_type_with(other_event))[0]
    outcome = scan(gate.device, ticket)
    assert outcome.result == ScanResult.WRONG_EVENT
    assert outcome.ticket is None and outcome.scan.ticket_id is None
    assert not AdmissionState.objects.filter(ticket=ticket).exists()


def test_a_code_before_its_window_is_not_yet_valid(db: None) -> None:
    event = live_event(starts_at=timezone.now() + timedelta(days=30), ends_at=timezone.now() + timedelta(days=31))
    device, _ = new_device(event)
    ticket = issue(ticket_type_with(event))[0]
    outcome = scan(device, ticket)
    assert outcome.result == ScanResult.NOT_YET_VALID and outcome.ticket is None
    assert not AdmissionState.objects.exists()


def test_a_code_after_its_window_is_expired(db: None) -> None:
    event = live_event(starts_at=timezone.now() - timedelta(days=3), ends_at=timezone.now() - timedelta(days=2))
    device, _ = new_device(event)
    ticket = issue(ticket_type_with(event))[0]
    assert scan(device, ticket).result == ScanResult.EXPIRED


def test_a_replayed_nonce_returns_the_first_answer_and_changes_nothing(gate: Gate) -> None:
    ticket = gate.ticket()
    first = scan(gate.device, ticket, nonce="n-1")
    # The ticket is revoked meanwhile: the replay still gets the first answer.
    code = code_of(ticket)
    ticket_revoke(ticket_id=ticket.pk)
    again = scan_process(device=gate.device, code=code, direction="in", nonce="n-1")
    assert not again.created and again.scan.pk == first.scan.pk
    assert (again.result, again.scan.reason, again.holder_name) == (ScanResult.OK, first.scan.reason, "Ada Lovelace")
    assert Scan.objects.count() == 1
    assert AdmissionState.objects.get(ticket=ticket).entries == 1


def test_a_refused_scan_replays_as_refused(gate: Gate) -> None:
    first = scan(gate.device, "garbage", nonce="n-2")
    again = scan(gate.device, "garbage", nonce="n-2")
    assert (again.created, again.result, again.scan.pk) == (False, ScanResult.UNKNOWN, first.scan.pk)


def test_a_nonce_is_per_device(gate: Gate) -> None:
    ticket = gate.ticket()
    other, _ = new_device(gate.event, name="Handheld 2")
    assert scan(gate.device, ticket, nonce="same").result == ScanResult.OK
    second = scan(other, ticket, nonce="same")
    assert second.created and second.result == ScanResult.ALREADY_INSIDE


def test_a_nonce_reused_for_another_code_is_refused(gate: Gate) -> None:
    scan(gate.device, gate.ticket(), nonce="n-3")
    with pytest.raises(NonceReused):
        scan(gate.device, gate.ticket(), nonce="n-3")
    assert Scan.objects.count() == 1


def test_a_revoked_device_cannot_scan(gate: Gate) -> None:
    device_revoke(device_id=gate.device.pk)
    gate.device.refresh_from_db()
    with pytest.raises(DeviceRevoked):
        scan(gate.device, gate.ticket())
    assert not Scan.objects.exists()


@pytest.mark.parametrize(
    ("direction", "nonce"),
    [("sideways", "ok"), ("in", ""), ("in", "has space"), ("in", "x" * 65), ("in", "naïve")],
)
def test_bad_service_input_is_invalid_input(gate: Gate, direction: str, nonce: str) -> None:
    with pytest.raises(InvalidInput):
        scan_process(device=gate.device, code="x", direction=direction, nonce=nonce)
    assert not Scan.objects.exists()


def test_device_time_and_sequence_are_recorded(gate: Gate) -> None:
    moment = timezone.now() - timedelta(seconds=5)
    outcome = scan_process(
        device=gate.device,
        code=code_of(gate.ticket()),
        direction="in",
        nonce=uuid.uuid4().hex,
        device_time=moment,
        device_sequence=42,
    )
    assert (outcome.scan.device_time, outcome.scan.device_sequence) == (moment, 42)
    assert outcome.scan.server_time >= moment


def test_scans_are_append_only(gate: Gate) -> None:
    outcome = scan(gate.device, "garbage")
    with pytest.raises(ValueError, match="append-only"):
        outcome.scan.save()


def test_every_result_is_reachable(db: None) -> None:
    """One scenario per result: the enum has no dead values."""
    seen: set[str] = set()
    gate_org = OrganizationFactory()
    event = live_event(gate_org)
    device, _ = new_device(event)
    single = ticket_type_with(event)
    multi = ticket_type_with(event, AdmissionPolicy.MULTI_ENTRY, max_entries=1)
    daily = ticket_type_with(event, AdmissionPolicy.DAILY)

    def record(what, direction: str = "in") -> None:
        seen.add(scan(device, what, direction).result)

    t1 = issue(single)[0]
    record(t1)  # ok
    record(t1)  # already_inside
    record(issue(single)[0], "out")  # not_inside
    t2 = issue(multi)[0]
    record(t2)
    record(t2)  # too_many_entries
    t3 = issue(daily)[0]
    record(t3)
    record(t3)  # already_today
    record("not a code")  # unknown
    record(_flip_last_byte(code_of(t1)))  # invalid_signature
    revoked = issue(single)[0]
    code = code_of(revoked)
    ticket_revoke(ticket_id=revoked.pk)
    record(code)  # revoked
    refunded = issue(single)[0]
    code = code_of(refunded)
    ticket_mark_refunded(ticket_id=refunded.pk)
    record(code)  # refunded
    record(issue(ticket_type_with(live_event(gate_org)))[0])  # wrong_event
    early = live_event(starts_at=timezone.now() + timedelta(days=9), ends_at=timezone.now() + timedelta(days=10))
    seen.add(scan(new_device(early)[0], issue(ticket_type_with(early))[0]).result)  # not_yet_valid
    late = live_event(starts_at=timezone.now() - timedelta(days=9), ends_at=timezone.now() - timedelta(days=8))
    seen.add(scan(new_device(late)[0], issue(ticket_type_with(late))[0]).result)  # expired
    assert seen == set(ScanResult.values)
