"""Event signing keys, and the one way to get a ticket's QR code.

- `signing_key_for_event` gets the event's active key, creating it on first
  use. It takes no lock: concurrent first uses race to insert, the partial
  unique constraint (one active key per event) lets one win, and the losers
  read the winner's key.
- `signing_key_rotate` locks the event row (FOR NO KEY UPDATE, see there),
  retires the active key, creates a new one and audits both, in one
  transaction. Retired keys keep verifying the codes they signed.
- `ticket_code_for` renders a ticket's code on demand (codes are never
  stored: they are deterministic, so rendering twice gives the same code
  until the key rotates or the generation changes).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ticketing.exceptions import Busy, InvalidState, NotFound
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Event, EventSigningKey, Ticket, TicketStatus
from ticketing.ticket_codes import ticket_code_sign

# Rotations are serialized, so an attempt fails only when a concurrent first
# use of `signing_key_for_event` committed the event's very first key
# meanwhile, which can happen once per event: two attempts always suffice.
_ROTATE_ATTEMPTS = 3


def _active_key(*, event_id: int) -> EventSigningKey | None:
    return EventSigningKey.objects.filter(event_id=event_id, is_active=True).first()


def signing_key_for_event(*, event: Event) -> EventSigningKey:
    """The event's active signing key, created if it has none yet.

    Race-safe without a lock: the insert runs in a savepoint, so losing the
    race to the unique constraint leaves a caller's transaction usable, and
    the winner's key is read back (it is committed by then: PostgreSQL makes
    the losing insert wait for the winner's transaction)."""
    key = _active_key(event_id=event.pk)
    if key is not None:
        return key
    candidate = EventSigningKey.generate(event_id=event.pk, organization_id=event.organization_id)
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
    except IntegrityError:
        key = _active_key(event_id=event.pk)
        if key is None:  # not the race we expected (e.g. the event is gone)
            raise
        return key
    return candidate


def signing_key_rotate(*, event: Event, by: Any = None, reason: str = "") -> EventSigningKey:
    """Retire the event's active key (if any) and make a new one active.

    Rotations of one event run one at a time: each takes the event row with
    FOR NO KEY UPDATE (first in the documented lock order). Not FOR UPDATE:
    Django checks foreign keys at commit with FOR KEY SHARE on the event, so
    a FOR UPDATE lock would deadlock with a concurrent first use of
    `signing_key_for_event` (each waiting on the other's insert or lock).
    That first use is not serialized by the lock; the partial unique
    constraint settles it: the rotation's insert fails, and it retries,
    retiring the key that won. Codes signed by retired keys keep verifying
    (`event_public_keys`). The retirement and the new key are audited in the
    same transaction. Not idempotent by design: each call is a new rotation."""
    with transaction.atomic(), lock_timeout():
        locked = Event.objects.select_for_update(no_key=True, of=("self",)).filter(pk=event.pk).only("pk").first()
        if locked is None:
            raise NotFound("This event does not exist.")
        retired: list[EventSigningKey] = []
        for attempt in range(1, _ROTATE_ATTEMPTS + 1):
            now = timezone.now()
            # Re-read on every attempt: a retry follows a key that a first use
            # committed since the last read.
            active = EventSigningKey.objects.filter(event_id=event.pk, is_active=True).order_by("id")
            for old in active.select_for_update(of=("self",)):
                old.retire(at=now)
                old.save(update_fields=["is_active", "retired_at"])
                retired.append(old)
            new = EventSigningKey.generate(event_id=event.pk, organization_id=event.organization_id)
            try:
                with transaction.atomic():
                    new.save(force_insert=True)
                break
            except IntegrityError as exc:
                if attempt == _ROTATE_ATTEMPTS:
                    raise Busy(detail={"reason": "signing_key_rotation_contended", "event": event.pk}) from exc
        AuditLogEntry.objects.record_many(
            objects=retired,
            field="is_active",
            source="active",
            target="retired",
            transition="rotate",
            actor=by,
            reason=reason,
        )
        AuditLogEntry.objects.record_many(
            objects=[new],
            field="is_active",
            source="none",
            target="active",
            transition="rotate",
            actor=by,
            reason=reason,
        )
        return new


def event_public_keys(*, event_id: int) -> dict[str, bytes]:
    """Key id -> raw Ed25519 public key for every key of the event, active and
    retired: what `ticket_code_verify` and offline scanning bundles need."""
    rows = EventSigningKey.objects.filter(event_id=event_id).order_by("created_at", "id").only("kid", "public_key")
    return {key.kid: key.public_key_bytes for key in rows}


def ticket_code_for(*, ticket: Ticket) -> str:
    """The QR code payload for a valid ticket, signed with its event's active
    key. Revoked and refunded tickets have no code to show.

    May create the event's first key (see `signing_key_for_event`); reads
    `ticket.event` (select it related to save a query)."""
    if ticket.status != TicketStatus.VALID:
        raise InvalidState(
            "This ticket is no longer valid, so it has no code.",
            detail={"ticket": ticket.pk, "status": ticket.status},
        )
    return ticket_code_sign(ticket=ticket, key=signing_key_for_event(event=ticket.event))
