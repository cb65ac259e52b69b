"""Online scans: check a code, apply the ticket type's admission policy,
record the scan and the ticket's new state, in one transaction.

`scan_process` is what a gate device's request comes to:

1. A replay is answered first: the same device and nonce return the
   recorded scan (the same code is required; another code is NonceReused).
2. The code is checked the way an offline device would: the key id names an
   event signing key, the Ed25519 signature holds, the event is the device's
   event, and the validity window contains the server's clock. A code that is
   not a ticket code at all is `unknown`; a "T1." code that is malformed or
   wrongly signed, or names an unknown key, is `invalid_signature`; a
   genuine code of another event (or tenant) is `wrong_event` and is not
   linked to that ticket.
3. The ticket is looked up: refunded -> `refunded`; revoked, or an older
   generation (transferred, re-seated) -> `revoked`.
4. For a valid, current ticket, its AdmissionState row is locked (FOR
   UPDATE; created first if missing) and the policy decides
   (scanning.admission). This lock is the only lock taken, and only on a
   scanning row, so it cannot deadlock with ticketing's lock order; two gates
   scanning one ticket at once are decided one after the other.
5. The scan is inserted (append-only) and, when accepted, the state saved.

Idempotent on (device, nonce): the nonce is checked again under the state's
lock, and a twin request that raced past both checks loses to the unique
constraint (in a savepoint) and returns the winner's answer. Nothing runs
after commit here; the caller (workflows.scanning.process_scan) publishes
checkin.created in the same transaction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.utils import timezone

from scanning.admission import AdmissionFacts, admission_apply, admission_decide
from scanning.exceptions import DeviceRevoked, NonceReused
from scanning.models import AdmissionState, Device, Direction, Scan, ScanResult
from ticketing.exceptions import InvalidInput
from ticketing.locks import lock_timeout
from ticketing.models import EventSigningKey, Ticket, TicketStatus
from ticketing.ticket_codes import (
    PREFIX,
    InvalidTicketCode,
    TicketClaims,
    TicketCodeExpired,
    TicketCodeNotYetValid,
    ticket_code_decode,
    ticket_code_verify,
)

# What a device may send as its nonce: printable ASCII without spaces (UUIDs,
# counters, "<boot id>:<n>").
NONCE_PATTERN = re.compile(r"[\x21-\x7e]{1,64}")
# Results for which the gate may show the holder's name and seat: the code
# is this ticket's current one. Not for old or voided codes (the holder may
# have changed) nor for codes of other events.
SHOWS_HOLDER = frozenset(
    {
        ScanResult.OK,
        ScanResult.ALREADY_INSIDE,
        ScanResult.NOT_INSIDE,
        ScanResult.TOO_MANY_ENTRIES,
        ScanResult.ALREADY_TODAY,
    }
)

_REASONS: dict[str, str] = {
    ScanResult.UNKNOWN: "This is not a ticket code we know.",
    ScanResult.REVOKED: "This ticket code is no longer valid: the ticket was revoked or has a newer code.",
    ScanResult.REFUNDED: "This ticket was refunded.",
    ScanResult.WRONG_EVENT: "This ticket is for another event.",
    ScanResult.NOT_YET_VALID: "This ticket is not valid yet.",
    ScanResult.EXPIRED: "This ticket is no longer valid.",
    ScanResult.NOT_INSIDE: "No entry was recorded to exit from.",
    ScanResult.ALREADY_TODAY: "This ticket was already used today.",
    ScanResult.INVALID_SIGNATURE: "This code is damaged or forged: its signature does not check out.",
}


@dataclass(frozen=True)
class ScanOutcome:
    """The answer to a scan. `created` is False for a replayed nonce.
    `ticket` is set when the gate may show the holder (see SHOWS_HOLDER)."""

    scan: Scan
    created: bool
    ticket: Ticket | None

    @property
    def result(self) -> str:
        return self.scan.result

    @property
    def admitted(self) -> bool:
        return self.scan.admitted

    @property
    def holder_name(self) -> str | None:
        return self.ticket.holder_name if self.ticket else None

    @property
    def seat_label(self) -> str | None:
        return self.ticket.seat.label if self.ticket and self.ticket.seat_id and self.ticket.seat else None


@dataclass(frozen=True)
class _Verdict:
    result: ScanResult
    ticket: Ticket | None = None  # set when the ticket is the device event's

    @property
    def admissible(self) -> bool:
        return self.result == ScanResult.OK and self.ticket is not None


def code_hash(code: str) -> str:
    # surrogatepass: a JSON body can carry lone surrogates; hash them, do not fail.
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def _event_zone(tz_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def _outcome_of(scan: Scan) -> ScanOutcome:
    ticket = scan.ticket if scan.result in SHOWS_HOLDER else None
    return ScanOutcome(scan=scan, created=False, ticket=ticket)


def _replay(*, device: Device, nonce: str, hashed: str) -> ScanOutcome | None:
    scan = (
        Scan.objects.select_related("ticket__seat", "ticket__ticket_type")
        .filter(device_id=device.pk, nonce=nonce)
        .first()
    )
    if scan is None:
        return None
    if scan.code_hash != hashed:
        raise NonceReused(detail={"nonce": nonce, "scan": scan.pk})
    scan.device = device
    return _outcome_of(scan)


def _verify_code(*, device: Device, code: str, now: datetime) -> _Verdict:
    """Steps 2 and 3 of the module docstring. Reads, never locks."""
    if not code.startswith(PREFIX):
        return _Verdict(ScanResult.UNKNOWN)
    try:
        decoded = ticket_code_decode(code)
    except InvalidTicketCode:
        return _Verdict(ScanResult.INVALID_SIGNATURE)
    # Key ids are unique across events: the key says whose code this is.
    key = EventSigningKey.objects.filter(kid=decoded.kid).only("kid", "event_id", "public_key").first()
    if key is None:
        return _Verdict(ScanResult.INVALID_SIGNATURE)
    window = ScanResult.OK
    claims: TicketClaims = decoded.claims
    try:
        claims = ticket_code_verify(code, public_keys={key.kid: key.public_key_bytes}, now=now)
    except TicketCodeNotYetValid:
        window = ScanResult.NOT_YET_VALID  # the signature held: the claims are genuine
    except TicketCodeExpired:
        window = ScanResult.EXPIRED
    except InvalidTicketCode:
        return _Verdict(ScanResult.INVALID_SIGNATURE)
    if key.event_id != device.event_id or claims.event_id != device.event_id:
        return _Verdict(ScanResult.WRONG_EVENT)
    if window != ScanResult.OK:
        return _Verdict(window)
    ticket = (
        Ticket.objects.select_related("ticket_type", "seat")
        .filter(pk=claims.ticket_id, event_id=device.event_id)
        .first()
    )
    if ticket is None:
        return _Verdict(ScanResult.UNKNOWN)
    if ticket.status == TicketStatus.REFUNDED:
        return _Verdict(ScanResult.REFUNDED, ticket)
    current = (
        ticket.status == TicketStatus.VALID
        and ticket.generation == claims.generation
        and ticket.ticket_type_id == claims.ticket_type_id
        and ticket.seat_id == claims.seat_id
    )
    return _Verdict(ScanResult.OK if current else ScanResult.REVOKED, ticket)


def _lock_state(*, ticket: Ticket) -> AdmissionState:
    """The ticket's state row, locked FOR UPDATE. Inserted first if missing
    (ON CONFLICT DO NOTHING: concurrent first scans all end up locking the
    one row). Insert-then-lock is two statements on every scan, which beats
    lock-else-insert-then-lock for the usual ticket, scanned once."""
    AdmissionState.objects.bulk_create(
        [AdmissionState(ticket_id=ticket.pk, organization_id=ticket.organization_id, event_id=ticket.event_id)],
        ignore_conflicts=True,
    )
    return AdmissionState.objects.select_for_update().get(ticket_id=ticket.pk)


def _rejection_reason(*, result: str, state: AdmissionState | None, max_entries: int | None, zone: ZoneInfo) -> str:
    if result == ScanResult.ALREADY_INSIDE and state is not None:
        entry = None
        if state.last_entry_id is not None:
            entry = Scan.objects.select_related("device").filter(pk=state.last_entry_id).first()
        if entry is not None:
            at = entry.server_time.astimezone(zone)
            return f"Already inside: entered at {entry.device.gate}, {at:%H:%M}."
        return "Already inside."
    if result == ScanResult.TOO_MANY_ENTRIES:
        used = state.entries if state is not None else 0
        return f"All entries of this ticket are used ({used} of {max(max_entries or 1, 1)})."
    return _REASONS.get(result, "")


def _accepted_reason(*, direction: str) -> str:
    return "Welcome: entry recorded." if direction == Direction.IN else "Goodbye: exit recorded."


def _check_input(*, device: Device, code: str, direction: str, nonce: str) -> None:
    if not device.is_active:
        raise DeviceRevoked(detail={"device": device.pk})
    if direction not in Direction.values:
        raise InvalidInput("Direction must be 'in' or 'out'.", detail={"direction": direction})
    if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
        raise InvalidInput(
            "The nonce must be 1 to 64 printable ASCII characters without spaces.", detail={"nonce": "invalid"}
        )
    if not isinstance(code, str):
        raise InvalidInput("The code must be text.", detail={"code": "invalid"})


def scan_process(
    *,
    device: Device,
    code: str,
    direction: str,
    nonce: str,
    device_time: datetime | None = None,
    device_sequence: int | None = None,
    now: datetime | None = None,
) -> ScanOutcome:
    """Decide and record one scan; see the module docstring. Runs in the
    caller's transaction, or its own (no savepoint: an error rolls the
    caller's back too). Locks at most the ticket's AdmissionState row.
    Raises InvalidInput, DeviceRevoked, NonceReused or Busy (the state's lock
    not granted in time); a refused scan is a result, not an error."""
    _check_input(device=device, code=code, direction=direction, nonce=nonce)
    now = now or timezone.now()
    hashed = code_hash(code)
    with transaction.atomic(savepoint=False), lock_timeout():
        replayed = _replay(device=device, nonce=nonce, hashed=hashed)
        if replayed is not None:
            return replayed
        verdict = _verify_code(device=device, code=code, now=now)
        result: str = verdict.result
        state: AdmissionState | None = None
        facts: AdmissionFacts | None = None
        zone = _event_zone(device.event.timezone)
        today = now.astimezone(zone).date()
        ticket_type = verdict.ticket.ticket_type if verdict.ticket is not None else None
        if verdict.admissible and verdict.ticket is not None and ticket_type is not None:
            state = _lock_state(ticket=verdict.ticket)
            # A twin of this request may have committed while we waited.
            replayed = _replay(device=device, nonce=nonce, hashed=hashed)
            if replayed is not None:
                return replayed
            facts = AdmissionFacts(inside=state.inside, entries=state.entries, last_entry_on=state.last_entry_on)
            result = admission_decide(
                policy=ticket_type.admission_policy,
                max_entries=ticket_type.max_entries,
                direction=direction,
                facts=facts,
                today=today,
            )
        if result == ScanResult.OK:
            reason = _accepted_reason(direction=direction)
        else:
            max_entries = ticket_type.max_entries if ticket_type is not None else None
            reason = _rejection_reason(result=result, state=state, max_entries=max_entries, zone=zone)
        scan = Scan(
            organization_id=device.organization_id,
            event_id=device.event_id,
            device=device,
            ticket=verdict.ticket,
            direction=direction,
            result=result,
            reason=reason[:200],
            nonce=nonce,
            code_hash=hashed,
            device_time=device_time,
            device_sequence=device_sequence,
            server_time=now,
        )
        if state is not None:
            # Under the state's lock, after the re-check: a twin cannot be in
            # flight (the same nonce for another ticket is a device bug, and
            # its IntegrityError is the API's 409).
            scan.save(force_insert=True)
        else:
            try:
                with transaction.atomic():
                    scan.save(force_insert=True)
            except IntegrityError:
                # A twin with no state lock to wait on (a refused code) won
                # the (device, nonce) constraint: answer as it did.
                replayed = _replay(device=device, nonce=nonce, hashed=hashed)
                if replayed is None:
                    raise
                return replayed
        if result == ScanResult.OK and state is not None and facts is not None:
            change = admission_apply(direction=direction, facts=facts, today=today)
            state.inside, state.entries, state.last_entry_on = change.inside, change.entries, change.last_entry_on
            if direction == Direction.IN:
                state.last_entry = scan
            state.save(update_fields=["inside", "entries", "last_entry_on", "last_entry", "updated_at"])
        return ScanOutcome(scan=scan, created=True, ticket=verdict.ticket if result in SHOWS_HOLDER else None)
