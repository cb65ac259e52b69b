"""Signed ticket codes: what a ticket's QR code says.

A code is self-contained, so a scanning device can check it offline with
nothing but the event's public keys. Version 1 looks like

    "T1." + base64url_without_padding(kid || body || signature)

- kid: KID_BYTES (6) raw bytes of the signing key's id (the key id as text
  is their base64url, 8 characters);
- body: unsigned LEB128 varints, in this order: ticket id, event id, ticket
  type id, seat id (0 = no seat), generation, not before (unix seconds), and
  the validity length in seconds (not after - not before). Varints keep small
  ids small: a code is about 115-125 characters, which fits a QR code of
  version 7-8 at error correction level M;
- signature: the 64-byte Ed25519 signature of b"T1." + kid + body, so the
  version prefix and the key id are signed too.

Parsing is strict (canonical base64url, minimal varints, no trailing bytes),
so each set of claims has exactly one valid spelling. The signature is checked
before the validity window: nothing in an unverified code is trusted.

What verification does not decide: whether the code's `generation` is still
the ticket's current one (transfer, refund and seat changes bump it: the
caller compares it with the server's ticket or the device's revocation list),
and whether `event_id` is the event being scanned (`wrong_event`). A code
signed for another event fails anyway when the caller passes only the
scanned event's public keys, which is how the services and bundles use it.

This module holds no Django model at run time, so it also serves offline
tools and tests.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ticketing.exceptions import DomainError

if TYPE_CHECKING:
    from ticketing.models import Event, EventSigningKey, Ticket

PREFIX = "T1."
KID_BYTES = 6
SIGNATURE_BYTES = 64
# Codes open this long before the event starts (doors, early entry, offline
# devices whose clocks run late) and close this long after it ends.
VALID_BEFORE_START = timedelta(hours=12)
VALID_AFTER_END = timedelta(hours=12)

# Above any v1 code (seven 64-bit fields at most make 198 characters);
# bounds the work done on hostile scanner input.
MAX_TOKEN_CHARS = 256
_MAX_UINT64 = (1 << 64) - 1
_MAX_VARINT_BYTES = 10  # 64 bits in 7-bit groups
_BODY_FIELDS = 7
_MIN_RAW_BYTES = KID_BYTES + _BODY_FIELDS + SIGNATURE_BYTES
_B64URL_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_SIGNED_PREFIX = PREFIX.encode("ascii")


# --- errors ---------------------------------------------------------------------


class InvalidTicketCode(DomainError):
    """Malformed, wrongly signed, or signed with a key the verifier does not know.

    `detail["reason"]` says which ("malformed", "unknown_key", "bad_signature")
    for logs; callers treat them all alike."""

    code = "invalid_code"
    message = "This is not a valid ticket code."
    status = 400


class TicketCodeNotYetValid(DomainError):
    code = "not_yet_valid"
    message = "This ticket is not valid yet."
    status = 409


class TicketCodeExpired(DomainError):
    code = "expired"
    message = "This ticket is no longer valid."
    status = 410


# --- data -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """What a code asserts. Times are unix seconds; valid while
    `not_before <= now < not_after`."""

    ticket_id: int
    event_id: int
    ticket_type_id: int
    seat_id: int | None
    generation: int
    not_before: int
    not_after: int


@dataclass(frozen=True, slots=True)
class DecodedTicketCode:
    """A parsed, *unverified* code: the claims, the key id, the signature and
    the exact bytes the signature covers."""

    claims: TicketClaims
    kid: str
    signature: bytes
    signed_message: bytes


# --- base64url and varints -------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url_encode`. Lenient (the stdlib skips stray characters):
    use only on trusted text; `ticket_code_decode` validates first."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_kid() -> str:
    """A fresh random key id (KID_BYTES bytes as base64url: 8 characters)."""
    return b64url_encode(secrets.token_bytes(KID_BYTES))


def _kid_bytes(kid: str) -> bytes:
    if not _B64URL_TEXT.fullmatch(kid):
        raise ValueError(f"key id {kid!r} is not base64url")
    raw = b64url_decode(kid)
    if len(raw) != KID_BYTES or b64url_encode(raw) != kid:
        raise ValueError(f"key id {kid!r} is not {KID_BYTES} bytes of base64url")
    return raw


def _put_uvarint(out: bytearray, value: int) -> None:
    if not 0 <= value <= _MAX_UINT64:
        raise ValueError(f"{value} does not fit an unsigned 64-bit field")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _Malformed(Exception):
    pass


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); rejects truncated, overlong and non-minimal varints."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise _Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            # A zero final group after the first byte is a second spelling of
            # a shorter varint: refuse it so every code has one encoding.
            if byte == 0 and index > 0:
                raise _Malformed("non-minimal varint")
            if value > _MAX_UINT64:
                raise _Malformed("varint over 64 bits")
            return value, pos
    raise _Malformed("varint too long")


def _unix_seconds(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime's timestamp() depends on the server's local zone.
        raise ValueError("ticket code times must be timezone-aware")
    return int(moment.timestamp())


# --- encode, decode, verify -------------------------------------------------------


def ticket_code_encode(*, claims: TicketClaims, kid: str, private_key: Ed25519PrivateKey) -> str:
    """Sign `claims` under key `kid` and return the code. The low-level
    primitive: it checks the claims' shape, not that they match a ticket."""
    if min(claims.ticket_id, claims.event_id, claims.ticket_type_id) < 1:
        raise ValueError("ticket, event and ticket type ids must be positive")
    if claims.seat_id is not None and claims.seat_id < 1:
        raise ValueError("a seat id must be positive (None means no seat)")
    if claims.not_after < claims.not_before:
        raise ValueError("not_after must not be before not_before")
    body = bytearray()
    for value in (
        claims.ticket_id,
        claims.event_id,
        claims.ticket_type_id,
        claims.seat_id or 0,
        claims.generation,
        claims.not_before,
        claims.not_after - claims.not_before,
    ):
        _put_uvarint(body, value)
    kid_raw = _kid_bytes(kid)
    signature = private_key.sign(_SIGNED_PREFIX + kid_raw + body)
    return PREFIX + b64url_encode(kid_raw + body + signature)


def ticket_code_validity(*, event: Event) -> tuple[int, int]:
    """The (not_before, not_after) window, in unix seconds, of codes for `event`.

    The window is fixed when a code is rendered, so a code saved before an
    event is rescheduled keeps the old window: re-render codes after a date
    change (bumping generations, if the old codes must stop working)."""
    return (
        _unix_seconds(event.starts_at - VALID_BEFORE_START),
        _unix_seconds(event.ends_at + VALID_AFTER_END),
    )


def ticket_code_sign(*, ticket: Ticket, key: EventSigningKey) -> str:
    """The code for `ticket`'s current generation, signed with `key` (which
    must be an active key of the ticket's event). Ed25519 is deterministic:
    the same ticket, generation, window and key give the same code, so a
    code can be rendered on every page view instead of stored.

    Reads `ticket.event` (select it related to save a query)."""
    if ticket.pk is None:
        raise ValueError("only a saved ticket can have a code")
    if key.event_id != ticket.event_id:
        raise ValueError(f"signing key {key.kid} belongs to event {key.event_id}, not {ticket.event_id}")
    if not key.is_active:
        raise ValueError(f"signing key {key.kid} is retired: retired keys only verify")
    not_before, not_after = ticket_code_validity(event=ticket.event)
    claims = TicketClaims(
        ticket_id=ticket.pk,
        event_id=ticket.event_id,
        ticket_type_id=ticket.ticket_type_id,
        seat_id=ticket.seat_id,
        generation=ticket.generation,
        not_before=not_before,
        not_after=not_after,
    )
    return ticket_code_encode(claims=claims, kid=key.kid, private_key=key.private_key())


def ticket_code_decode(token: str) -> DecodedTicketCode:
    """Parse a code WITHOUT checking its signature or window (use
    `ticket_code_verify` to trust it). Raises InvalidTicketCode when malformed."""
    try:
        return _decode(token)
    except _Malformed as exc:
        raise InvalidTicketCode(detail={"reason": "malformed"}) from exc


def _decode(token: str) -> DecodedTicketCode:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
        raise _Malformed("not a v1 code")
    text = token[len(PREFIX) :]
    # Validate before decoding: the stdlib decoder silently drops characters
    # outside the alphabet, which would give one code many spellings.
    if not _B64URL_TEXT.fullmatch(text) or len(text) % 4 == 1:
        raise _Malformed("not base64url")
    raw = b64url_decode(text)
    if b64url_encode(raw) != text:
        raise _Malformed("non-canonical base64url")  # unused low bits set in the last character
    if len(raw) < _MIN_RAW_BYTES:
        raise _Malformed("too short")
    kid_raw = raw[:KID_BYTES]
    body = raw[KID_BYTES:-SIGNATURE_BYTES]
    signature = raw[-SIGNATURE_BYTES:]
    fields: list[int] = []
    pos = 0
    for _ in range(_BODY_FIELDS):
        value, pos = _read_uvarint(body, pos)
        fields.append(value)
    if pos != len(body):
        raise _Malformed("trailing bytes")
    ticket_id, event_id, ticket_type_id, seat_id, generation, not_before, duration = fields
    if min(ticket_id, event_id, ticket_type_id) < 1:
        raise _Malformed("zero id")
    claims = TicketClaims(
        ticket_id=ticket_id,
        event_id=event_id,
        ticket_type_id=ticket_type_id,
        seat_id=seat_id or None,
        generation=generation,
        not_before=not_before,
        not_after=not_before + duration,
    )
    return DecodedTicketCode(
        claims=claims,
        kid=b64url_encode(kid_raw),
        signature=signature,
        signed_message=_SIGNED_PREFIX + kid_raw + body,
    )


def ticket_code_verify(token: str, *, public_keys: Mapping[str, bytes], now: datetime) -> TicketClaims:
    """Check a code's signature against `public_keys` (key id -> raw 32-byte
    Ed25519 public key: one event's active and retired keys), then its
    validity window at `now` (timezone-aware). Needs no database.

    Raises InvalidTicketCode (code "invalid_code"), TicketCodeNotYetValid
    ("not_yet_valid") or TicketCodeExpired ("expired"). The caller still
    compares `generation` (revocation) and `event_id` with what it scans for."""
    decoded = ticket_code_decode(token)
    raw_public_key = public_keys.get(decoded.kid)
    if raw_public_key is None:
        raise InvalidTicketCode(detail={"reason": "unknown_key"})
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(decoded.signature, decoded.signed_message)
    except InvalidSignature as exc:
        raise InvalidTicketCode(detail={"reason": "bad_signature"}) from exc
    claims = decoded.claims
    # Only now are the claims trusted enough to report them back.
    at = _unix_seconds(now)
    window = {"ticket_id": claims.ticket_id, "not_before": claims.not_before, "not_after": claims.not_after}
    if at < claims.not_before:
        raise TicketCodeNotYetValid(detail=window)
    if at >= claims.not_after:
        raise TicketCodeExpired(detail=window)
    return claims
