"""Signed ticket codes: format, verification, key storage and rotation, QR rendering."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.template import Context, Template
from django.test import override_settings
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.concurrency import run_concurrently
from tests.factories import EventFactory, TicketTypeFactory, issued_order, large_installation_claims
from ticketing.exceptions import InvalidState
from ticketing.models import AuditLogEntry, Event, EventSigningKey, Ticket, TicketType, signing_key
from ticketing.qr import MASK, QUIET_ZONE, qr_png
from ticketing.services.signing_keys import (
    event_public_keys,
    signing_key_for_event,
    signing_key_rotate,
    ticket_code_for,
)
from ticketing.ticket_codes import (
    KID_BYTES,
    PREFIX,
    SIGNATURE_BYTES,
    VALID_AFTER_END,
    VALID_BEFORE_START,
    InvalidTicketCode,
    TicketClaims,
    TicketCodeExpired,
    TicketCodeNotYetValid,
    b64url_decode,
    b64url_encode,
    new_kid,
    ticket_code_decode,
    ticket_code_encode,
    ticket_code_sign,
    ticket_code_verify,
)

# --- helpers --------------------------------------------------------------------


def _make_ticket(*, event: Event | None = None, ticket_type: TicketType | None = None) -> Ticket:
    ticket_type = ticket_type or TicketTypeFactory(**({"event": event} if event else {}))
    return issued_order(ticket_type.event, [(ticket_type, None)]).tickets.get()


def _during(event: Event) -> datetime:
    return event.starts_at + timedelta(minutes=30)


def _raw(token: str) -> bytes:
    return b64url_decode(token[len(PREFIX) :])


def _from_raw(raw: bytes) -> str:
    return PREFIX + b64url_encode(raw)


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


# Pure (database-free) material for the property tests: Hypothesis runs each
# example many times, which function-scoped database fixtures do not allow.
_OFFLINE_KEY = Ed25519PrivateKey.generate()
_OFFLINE_KID = new_kid()
_OFFLINE_KEYS = {_OFFLINE_KID: _raw_public(_OFFLINE_KEY)}
_OFFLINE_CLAIMS = TicketClaims(
    ticket_id=48213,
    event_id=77,
    ticket_type_id=391,
    seat_id=10452,
    generation=3,
    not_before=1_790_000_000,
    not_after=1_790_097_200,
)
_OFFLINE_TOKEN = ticket_code_encode(claims=_OFFLINE_CLAIMS, kid=_OFFLINE_KID, private_key=_OFFLINE_KEY)
_OFFLINE_NOW = datetime.fromtimestamp(1_790_050_000, tz=UTC)
# Without a seat the code is one byte shorter, so its last base64 character
# carries unused low bits: the case a lenient decoder gets wrong.
_UNSEATED_TOKEN = ticket_code_encode(
    claims=TicketClaims(
        ticket_id=48213,
        event_id=77,
        ticket_type_id=391,
        seat_id=None,
        generation=3,
        not_before=1_790_000_000,
        not_after=1_790_097_200,
    ),
    kid=_OFFLINE_KID,
    private_key=_OFFLINE_KEY,
)


def _assert_invalid(token: object, public_keys: dict[str, bytes] | None = None) -> InvalidTicketCode:
    with pytest.raises(InvalidTicketCode) as info:
        ticket_code_verify(token, public_keys=public_keys or _OFFLINE_KEYS, now=_OFFLINE_NOW)  # type: ignore[arg-type]
    assert info.value.code == "invalid_code"
    return info.value


# --- round trip -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_signed_code_verifies_offline_and_carries_the_tickets_claims():
    # given a ticket and its event's key
    ticket = _make_ticket()
    key = signing_key_for_event(event=ticket.event)

    # when it is signed and checked against the public keys only
    token = ticket_code_sign(ticket=ticket, key=key)
    claims = ticket_code_verify(
        token, public_keys=event_public_keys(event_id=ticket.event_id), now=_during(ticket.event)
    )

    # then every claim matches the ticket, and the window follows the event
    assert token.startswith("T1.")
    assert claims == TicketClaims(
        ticket_id=ticket.pk,
        event_id=ticket.event_id,
        ticket_type_id=ticket.ticket_type_id,
        seat_id=None,
        generation=1,
        not_before=int((ticket.event.starts_at - VALID_BEFORE_START).timestamp()),
        not_after=int((ticket.event.ends_at + VALID_AFTER_END).timestamp()),
    )
    decoded = ticket_code_decode(token)
    assert decoded.kid == key.kid
    assert len(decoded.signature) == SIGNATURE_BYTES
    # Ed25519 is deterministic: rendering again gives the same code.
    assert ticket_code_for(ticket=ticket) == token


@given(
    ticket_id=st.integers(1, 2**64 - 1),
    event_id=st.integers(1, 2**64 - 1),
    ticket_type_id=st.integers(1, 2**64 - 1),
    seat_id=st.none() | st.integers(1, 2**64 - 1),
    generation=st.integers(0, 2**64 - 1),
    not_before=st.integers(0, 2**37),  # up to year 6325: datetime stops at 9999
    duration=st.integers(1, 2**40),
)
@settings(max_examples=200, deadline=None)
def test_any_claims_round_trip_exactly(ticket_id, event_id, ticket_type_id, seat_id, generation, not_before, duration):
    claims = TicketClaims(
        ticket_id=ticket_id,
        event_id=event_id,
        ticket_type_id=ticket_type_id,
        seat_id=seat_id,
        generation=generation,
        not_before=not_before,
        not_after=not_before + duration,
    )
    token = ticket_code_encode(claims=claims, kid=_OFFLINE_KID, private_key=_OFFLINE_KEY)
    now = datetime.fromtimestamp(not_before, tz=UTC)
    assert ticket_code_verify(token, public_keys=_OFFLINE_KEYS, now=now) == claims
    assert ticket_code_decode(token).claims == claims


def test_seated_claims_round_trip_and_decode_needs_no_key():
    decoded = ticket_code_decode(_OFFLINE_TOKEN)
    assert decoded.claims == _OFFLINE_CLAIMS
    assert decoded.claims.seat_id == 10452
    assert decoded.kid == _OFFLINE_KID
    # decode does not verify: a code under a key nobody knows still parses
    stranger = ticket_code_encode(claims=_OFFLINE_CLAIMS, kid=new_kid(), private_key=Ed25519PrivateKey.generate())
    assert ticket_code_decode(stranger).claims == _OFFLINE_CLAIMS
    assert _assert_invalid(stranger).detail == {"reason": "unknown_key"}


# --- tampering ------------------------------------------------------------------


def test_flipping_any_bit_of_any_byte_is_rejected():
    raw = _raw(_OFFLINE_TOKEN)
    for position in range(len(raw)):
        for bit in range(8):
            tampered = bytearray(raw)
            tampered[position] ^= 1 << bit
            _assert_invalid(_from_raw(bytes(tampered)))


def test_tampering_reports_why():
    raw = bytearray(_raw(_OFFLINE_TOKEN))
    raw[-1] ^= 0x01  # in the signature
    assert _assert_invalid(_from_raw(bytes(raw))).detail == {"reason": "bad_signature"}
    raw = bytearray(_raw(_OFFLINE_TOKEN))
    raw[0] ^= 0x01  # in the key id
    assert _assert_invalid(_from_raw(bytes(raw))).detail == {"reason": "unknown_key"}
    assert _assert_invalid("T1.").detail == {"reason": "malformed"}


def test_a_changed_key_id_fails_even_when_the_verifier_knows_that_key():
    # given a verifier that trusts two keys
    other_key = Ed25519PrivateKey.generate()
    other_kid = new_kid()
    keys = {**_OFFLINE_KEYS, other_kid: _raw_public(other_key)}
    raw = _raw(_OFFLINE_TOKEN)

    # when the code claims the other key id
    swapped = _from_raw(b64url_decode(other_kid) + raw[KID_BYTES:])

    # then the signature no longer matches (the key id is signed too)
    assert _assert_invalid(swapped, keys).detail == {"reason": "bad_signature"}
    assert ticket_code_verify(_OFFLINE_TOKEN, public_keys=keys, now=_OFFLINE_NOW) == _OFFLINE_CLAIMS


def test_every_truncation_and_extension_is_rejected():
    for length in range(len(_OFFLINE_TOKEN)):
        _assert_invalid(_OFFLINE_TOKEN[:length])
    _assert_invalid(_OFFLINE_TOKEN + "A")
    _assert_invalid(_OFFLINE_TOKEN + "AA")
    _assert_invalid(_from_raw(_raw(_OFFLINE_TOKEN) + b"\x00"))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "T1",
        "T1.",
        "garbage",
        "T1.!!!!",
        "T1.not base64 at all",
        "https://example.com/t/abc",
        "\x00" * 40,
        "T1." + "A" * 200,
        "T1." + "A" * 5000,
        "T1." + "é" * 120,
    ],
)
def test_garbage_is_rejected(token):
    _assert_invalid(token)


def test_non_string_input_is_rejected():
    _assert_invalid(None)
    _assert_invalid(_OFFLINE_TOKEN.encode("ascii"))


def test_other_spellings_of_a_valid_code_are_rejected():
    body = _OFFLINE_TOKEN[len(PREFIX) :]
    for prefix in ("T2.", "t1.", "T1:", "T1..", ""):
        _assert_invalid(prefix + body)
    _assert_invalid(PREFIX + body + "=")  # padding
    _assert_invalid(PREFIX + body.replace("-", "+").replace("_", "/") + ("+" if "-" not in body else ""))
    _assert_invalid(" " + _OFFLINE_TOKEN)
    _assert_invalid(_OFFLINE_TOKEN + "\n")


def test_unused_low_bits_of_the_last_character_must_be_zero():
    # given the unseated code, whose last character encodes 4 payload bits + 2 unused ones
    assert len(_raw(_UNSEATED_TOKEN)) % 3 == 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(_UNSEATED_TOKEN[-1])
    assert last & 0b11 == 0

    for low_bits in (1, 2, 3):
        # when only the unused bits change, the bytes stay the same...
        respelled = _UNSEATED_TOKEN[:-1] + alphabet[last | low_bits]
        assert _raw(respelled) == _raw(_UNSEATED_TOKEN)
        # ...but the code is refused: one code, one spelling
        assert _assert_invalid(respelled).detail == {"reason": "malformed"}


def _signed_raw(body: bytes) -> bytes:
    """kid + body + a genuine signature: what only a key holder could make."""
    kid_raw = _raw(_OFFLINE_TOKEN)[:KID_BYTES]
    return kid_raw + body + _OFFLINE_KEY.sign(PREFIX.encode() + kid_raw + body)


def test_trailing_bytes_are_rejected_even_if_signed():
    body = _raw(_OFFLINE_TOKEN)[KID_BYTES:-SIGNATURE_BYTES]
    assert ticket_code_verify(_from_raw(_signed_raw(body)), public_keys=_OFFLINE_KEYS, now=_OFFLINE_NOW)
    assert _assert_invalid(_from_raw(_signed_raw(body + b"\x00"))).detail == {"reason": "malformed"}


def test_a_non_minimal_varint_is_rejected_even_if_signed():
    # given a code whose ticket id is spelled with a redundant zero group, and
    # signed (only a key holder could make it): one code, one spelling
    raw = _raw(_OFFLINE_TOKEN)
    body = bytearray(raw[KID_BYTES:-SIGNATURE_BYTES])
    first_end = next(i for i, byte in enumerate(body) if not byte & 0x80)
    body[first_end] |= 0x80
    body.insert(first_end + 1, 0x00)

    # then it is refused as malformed before the signature is looked at
    assert _assert_invalid(_from_raw(_signed_raw(bytes(body)))).detail == {"reason": "malformed"}


@given(data=st.data(), mask=st.integers(1, 255))
@settings(max_examples=500, deadline=None)
def test_random_byte_tampering_is_always_rejected(data, mask):
    raw = bytearray(_raw(data.draw(st.sampled_from([_OFFLINE_TOKEN, _UNSEATED_TOKEN]))))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= mask
    _assert_invalid(_from_raw(bytes(raw)))


_TOKEN_CHARS = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ")


@given(data=st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_text_edits_are_always_rejected(data):
    # Edits on the text, not the bytes: this also covers the unused low bits
    # of the last base64 character, which a lenient decoder would ignore.
    original = data.draw(st.sampled_from([_OFFLINE_TOKEN, _UNSEATED_TOKEN]))
    token = list(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        index = data.draw(st.integers(0, len(token) - 1))
        if op == "replace":
            token[index] = data.draw(_TOKEN_CHARS)
        elif op == "insert":
            token.insert(index, data.draw(_TOKEN_CHARS))
        else:
            del token[index]
    edited = "".join(token)
    assume(edited != original)
    _assert_invalid(edited)


# --- keys of other events ---------------------------------------------------------


@pytest.mark.django_db
def test_a_code_signed_with_another_events_key_fails():
    # given two events with their keys, and a ticket of the first
    ticket = _make_ticket()
    other_event = EventFactory(organization=ticket.organization)
    own_keys = event_public_keys(event_id=ticket.event_id)
    assert own_keys == {}  # no key yet: one is made on first use
    signing_key_for_event(event=ticket.event)
    other_key = signing_key_for_event(event=other_event)
    own_keys = event_public_keys(event_id=ticket.event_id)

    # when the ticket's claims are signed with the other event's key
    genuine = ticket_code_decode(ticket_code_for(ticket=ticket)).claims
    forged = ticket_code_encode(claims=genuine, kid=other_key.kid, private_key=other_key.private_key())

    # then the ticket's event does not accept it, and the service refuses to make it
    with pytest.raises(InvalidTicketCode) as info:
        ticket_code_verify(forged, public_keys=own_keys, now=_during(ticket.event))
    assert info.value.detail == {"reason": "unknown_key"}
    with pytest.raises(ValueError, match="belongs to event"):
        ticket_code_sign(ticket=ticket, key=other_key)
    # nor does a genuine code of the other event pass at this event's gate
    other_ticket = _make_ticket(event=other_event)
    with pytest.raises(InvalidTicketCode):
        ticket_code_verify(ticket_code_for(ticket=other_ticket), public_keys=own_keys, now=_during(ticket.event))


# --- rotation ---------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_keeps_old_codes_valid_and_signs_new_ones_with_the_new_key(staff_user):
    # given a code signed before rotation
    ticket = _make_ticket()
    old_key = signing_key_for_event(event=ticket.event)
    old_token = ticket_code_for(ticket=ticket)

    # when the key rotates
    new_key = signing_key_rotate(event=ticket.event, by=staff_user, reason="device lost")
    new_token = ticket_code_for(ticket=ticket)

    # then new codes use the new key id and both verify
    assert new_key.kid != old_key.kid
    assert ticket_code_decode(new_token).kid == new_key.kid
    assert ticket_code_decode(old_token).kid == old_key.kid
    keys = event_public_keys(event_id=ticket.event_id)
    assert set(keys) == {old_key.kid, new_key.kid}
    for token in (old_token, new_token):
        assert ticket_code_verify(token, public_keys=keys, now=_during(ticket.event)).ticket_id == ticket.pk
    old_key.refresh_from_db()
    assert not old_key.is_active and old_key.retired_at is not None
    assert signing_key_for_event(event=ticket.event) == new_key
    assert EventSigningKey.objects.filter(event=ticket.event, is_active=True).count() == 1
    with pytest.raises(ValueError, match="retired"):
        ticket_code_sign(ticket=ticket, key=old_key)
    # and both halves of the rotation are audited with actor and reason
    audit = AuditLogEntry.objects.filter(transition="rotate").order_by("id")
    assert [(e.object_id, e.source_state, e.target_state) for e in audit] == [
        (str(old_key.pk), "active", "retired"),
        (str(new_key.pk), "none", "active"),
    ]
    assert all(e.actor == staff_user and e.reason == "device lost" for e in audit)


@pytest.mark.django_db
def test_rotating_an_event_without_a_key_just_creates_one(event):
    key = signing_key_rotate(event=event)
    assert key.is_active
    assert list(EventSigningKey.objects.filter(event=event)) == [key]


@pytest.mark.django_db
def test_the_database_refuses_a_second_active_key(event):
    signing_key_for_event(event=event)
    with pytest.raises(IntegrityError), transaction.atomic():
        EventSigningKey.generate(event_id=event.pk, organization_id=event.organization_id).save()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_uses_agree_on_one_key(require_postgres):
    event = EventFactory()
    results = run_concurrently([lambda: signing_key_for_event(event=event).kid for _ in range(8)])
    assert [exc for _, exc in results] == [None] * 8
    assert len({kid for kid, _ in results}) == 1
    assert EventSigningKey.objects.filter(event=event).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_exactly_one_active_key(require_postgres):
    event = EventFactory()
    first = signing_key_for_event(event=event)
    results = run_concurrently(
        [lambda: signing_key_rotate(event=event).kid for _ in range(8)]
        + [lambda: signing_key_for_event(event=event).kid for _ in range(4)]
    )
    assert [exc for _, exc in results] == [None] * 12
    keys = EventSigningKey.objects.filter(event=event)
    assert keys.count() == 9  # the first key and one per rotation
    assert keys.filter(is_active=True).count() == 1
    assert keys.get(kid=first.kid).retired_at is not None
    assert set(event_public_keys(event_id=event.pk)) == set(keys.values_list("kid", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_rotation_that_loses_the_race_to_a_first_use_retries(require_postgres, monkeypatch):
    # given an event without a key, and a first use that commits its key while
    # a rotation is between retiring the active keys (none) and inserting its
    # own. (Had the rotation locked the event row FOR UPDATE, this first use
    # would block on its foreign key check at commit: a deadlock.)
    event = EventFactory()
    real_generate = EventSigningKey.generate
    raced: list[str] = []

    def generate_after_a_racing_first_use(**kwargs):
        if not raced:
            raced.append("started")
            [(kid, exc)] = run_concurrently([lambda: signing_key_for_event(event=event).kid])
            assert exc is None
            raced.append(kid)
        return real_generate(**kwargs)

    monkeypatch.setattr(EventSigningKey, "generate", staticmethod(generate_after_a_racing_first_use))

    # when the rotation runs
    new_key = signing_key_rotate(event=event)

    # then it retried: the racing key is retired and the rotation's key is the active one
    racing_key = EventSigningKey.objects.get(kid=raced[1])
    assert racing_key.retired_at is not None and not racing_key.is_active
    assert EventSigningKey.objects.get(event=event, is_active=True) == new_key


# --- validity window and generation -------------------------------------------------


@pytest.mark.django_db
def test_the_validity_window_opens_before_the_event_and_closes_after_it():
    ticket = _make_ticket()
    token = ticket_code_for(ticket=ticket)
    keys = event_public_keys(event_id=ticket.event_id)
    opens = ticket.event.starts_at - VALID_BEFORE_START
    closes = ticket.event.ends_at + VALID_AFTER_END

    for now in (opens, opens + timedelta(seconds=1), ticket.event.ends_at, closes - timedelta(seconds=1)):
        assert ticket_code_verify(token, public_keys=keys, now=now).ticket_id == ticket.pk
    with pytest.raises(TicketCodeNotYetValid) as early:
        ticket_code_verify(token, public_keys=keys, now=opens - timedelta(seconds=1))
    assert early.value.code == "not_yet_valid"
    assert early.value.detail["ticket_id"] == ticket.pk
    for now in (closes, closes + timedelta(days=3)):
        with pytest.raises(TicketCodeExpired) as late:
            ticket_code_verify(token, public_keys=keys, now=now)
        assert late.value.code == "expired"


@pytest.mark.django_db
def test_a_forged_code_is_invalid_rather_than_expired():
    # The signature is checked first: an attacker learns nothing from the window.
    ticket = _make_ticket()
    raw = bytearray(_raw(ticket_code_for(ticket=ticket)))
    raw[-5] ^= 0x10
    with pytest.raises(InvalidTicketCode):
        ticket_code_verify(
            _from_raw(bytes(raw)),
            public_keys=event_public_keys(event_id=ticket.event_id),
            now=ticket.event.ends_at + timedelta(days=10),
        )


def test_verification_refuses_a_naive_now():
    with pytest.raises(ValueError, match="timezone-aware"):
        ticket_code_verify(_OFFLINE_TOKEN, public_keys=_OFFLINE_KEYS, now=datetime(2026, 1, 1))


@pytest.mark.django_db
def test_the_generation_claim_follows_the_ticket_and_revoked_tickets_have_no_code():
    # given a code for generation 1
    ticket = _make_ticket()
    first = ticket_code_for(ticket=ticket)

    # when a transfer bumps the generation
    Ticket.objects.filter(pk=ticket.pk).update(generation=2)
    ticket.refresh_from_db()
    second = ticket_code_for(ticket=ticket)

    # then both codes verify, and the claim tells the caller which one is current
    keys = event_public_keys(event_id=ticket.event_id)
    now = _during(ticket.event)
    assert ticket_code_verify(first, public_keys=keys, now=now).generation == 1
    assert ticket_code_verify(second, public_keys=keys, now=now).generation == 2

    with transaction.atomic():
        ticket.revoke(reason="refund")
        ticket.save()
    with pytest.raises(InvalidState):
        ticket_code_for(ticket=ticket)


# --- key storage ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_private_key_is_encrypted_at_rest(event):
    key = signing_key_for_event(event=event)
    private = key.private_key()
    raw_private = _raw_private(private)
    assert _raw_public(private) == key.public_key_bytes

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ticketing_eventsigningkey WHERE id = %s", [key.pk])
        row_text = " ".join(str(value) for value in cursor.fetchone())
    for spelling in (
        raw_private.hex(),
        base64.b64encode(raw_private).decode().rstrip("="),
        base64.urlsafe_b64encode(raw_private).decode().rstrip("="),
        raw_private.decode("latin-1"),
    ):
        assert spelling not in row_text
    # what is stored is a Fernet token, not the key
    stored = EventSigningKey.objects.values_list("private_key_encrypted", flat=True).get(pk=key.pk)
    assert stored.startswith("gAAAAA")
    assert raw_private not in base64.urlsafe_b64decode(stored)


@pytest.mark.django_db
def test_a_changed_secret_key_needs_the_old_one_as_a_fallback(event, settings):
    key = signing_key_for_event(event=event)
    old_secret = settings.SECRET_KEY
    token_before = ticket_code_decode(ticket_code_for(ticket=_make_ticket(event=event)))

    with (
        override_settings(SECRET_KEY="a-brand-new-secret", SECRET_KEY_FALLBACKS=[]),
        pytest.raises(ImproperlyConfigured, match="rotate the event's signing key"),
    ):
        EventSigningKey.objects.get(pk=key.pk).private_key()
    with override_settings(SECRET_KEY="a-brand-new-secret", SECRET_KEY_FALLBACKS=[old_secret]):
        private = EventSigningKey.objects.get(pk=key.pk).private_key()
    assert _raw_public(private) == key.public_key_bytes
    assert token_before.kid == key.kid


# --- size -------------------------------------------------------------------------


@pytest.mark.django_db
def test_codes_stay_small():
    ticket = _make_ticket()
    assert len(ticket_code_for(ticket=ticket)) < 140
    # and with ids of a large, long-running installation (about 2**34)
    big = large_installation_claims()
    assert len(ticket_code_encode(claims=big, kid=_OFFLINE_KID, private_key=_OFFLINE_KEY)) < 140
    assert len(_OFFLINE_TOKEN) < 125


# --- QR rendering ---------------------------------------------------------------------


_SVG_OPENING = re.compile(
    r'<svg role="img" aria-label="([^"]*)" width="(\d+)" height="(\d+)" viewBox="0 0 (\d+) (\d+)" class="ticket-qr"'
)

_PATH_COMMAND = re.compile(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?")


def _modules(svg: str) -> list[list[bool]]:
    """The module grid (True dark) an SVG from `qr_svg` shows, quiet zone
    included: its viewBox is a module a unit, on a white square, and its one
    black path is a stroke 1 unit wide along runs of dark modules."""
    opening = _SVG_OPENING.search(svg)
    assert opening, svg
    side = int(opening.group(4))
    # square, 4 pixels a module where no CSS sizes it
    assert opening.group(2, 3, 5) == (str(4 * side), str(4 * side), str(side))
    assert f'<path fill="#fff" d="M0 0h{side}v{side}h-{side}z"/>' in svg  # an opaque background for scanners
    dark = re.findall(r'<path stroke="#000" d="([^"]+)"/>', svg)
    assert len(dark) == 1 and "stroke-width" not in svg and "transform" not in svg, svg
    assert dark[0].startswith("M") and _PATH_COMMAND.sub("", dark[0]) == ""  # nothing but moves and lines
    grid = [[False] * side for _ in range(side)]
    x = y = 0.0
    for command, dx, dy in _PATH_COMMAND.findall(dark[0]):
        if command == "M":
            x, y = float(dx), float(dy)
        elif command == "m":
            x, y = x + float(dx), y + float(dy)
        else:
            assert y % 1 == 0.5 and x % 1 == 0 and float(dx) > 0  # along the middle of a row of modules
            assert 0 < y < side and x >= 0 and x + float(dx) <= side  # inside the picture
            for column in range(int(x), int(x + float(dx))):
                assert not grid[int(y)][column]  # each module drawn once
                grid[int(y)][column] = True
            x += float(dx)
    return grid


def _read_svg(svg: str) -> zxingcpp.Barcode:
    """What a reader finds in the SVG, rasterized at 4 pixels a module."""
    grid = _modules(svg)
    image = Image.new("L", (len(grid), len(grid)), 255)
    image.putdata([0 if dark else 255 for row in grid for dark in row])
    # Matrix codes only, as a gate scanner reads: a 1-D reader now and then
    # "finds" a short ITF barcode in a QR symbol's modules.
    found = zxingcpp.read_barcodes(
        image.resize((4 * len(grid),) * 2, Image.Resampling.NEAREST), formats=zxingcpp.BarcodeFormat.AllMatrix
    )
    assert len(found) == 1
    return found[0]


def _render(token: str) -> str:
    return Template("{% load qr %}{{ code|qr_svg }}").render(Context({"code": token}))


@pytest.mark.django_db
def test_the_page_qr_reads_as_exactly_the_tickets_code():
    # given two tickets' codes
    ticket = _make_ticket()
    token = ticket_code_for(ticket=ticket)
    other = ticket_code_for(ticket=_make_ticket(event=ticket.event))

    # when a page renders them
    html = Template("{% load qr %}<p>{{ code|qr_svg:label }}</p>").render(
        Context({"code": token, "label": 'Ticket for "Jane" <A12>'})
    )

    # then each reads as exactly its own code: a QR symbol (never a Micro QR),
    # level M or better, mask fixed
    symbol = _read_svg(html)
    assert symbol.format == zxingcpp.BarcodeFormat.QRCode
    assert symbol.bytes == token.encode("ascii") and symbol.text == token
    assert symbol.ec_level in {"M", "Q", "H"} and symbol.extra["DataMask"] == MASK
    assert _read_svg(_render(other)).text == other
    # labelled for screen readers, the label escaped
    assert html.startswith('<p><svg role="img" aria-label="Ticket for &quot;Jane&quot; &lt;A12&gt;" ')
    assert "<title>Ticket for &quot;Jane&quot; &lt;A12&gt;</title>" in html
    assert html.endswith("</svg></p>")
    # and the code is only encoded, never written out
    assert token[len(PREFIX) :][:8] not in html and "<text" not in html


@pytest.mark.django_db
def test_the_page_shows_the_same_symbol_as_the_email():
    token = ticket_code_for(ticket=_make_ticket())
    grid = _modules(_render(token))
    png = Image.open(io.BytesIO(qr_png(token, scale=1))).convert("L")
    assert png.size == (len(grid), len(grid))
    assert png.tobytes() == bytes(0 if dark else 255 for row in grid for dark in row)
    # with a light quiet zone all round
    border = [row[:QUIET_ZONE] + row[-QUIET_ZONE:] for row in grid] + grid[:QUIET_ZONE] + grid[-QUIET_ZONE:]
    assert not any(any(row) for row in border)


@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=160))
@settings(max_examples=60, deadline=None)
def test_any_text_reads_back_from_the_page_qr(text):
    assert _read_svg(_render(text)).text == text


def test_the_qr_filter_has_a_default_label_and_renders_nothing_without_a_code():
    html = _render(_OFFLINE_TOKEN)
    assert 'aria-label="Ticket QR code"' in html and "<title>Ticket QR code</title>" in html
    assert _read_svg(html).text == _OFFLINE_TOKEN
    assert _render("") == ""
    assert Template("{% load qr %}{{ missing|qr_svg }}").render(Context({})) == ""


@pytest.mark.django_db
def test_a_private_half_is_decrypted_once_per_process(event, monkeypatch):
    key = signing_key_for_event(event=event)
    decrypts: list[bytes] = []
    original = MultiFernet.decrypt

    def counted(self: MultiFernet, token: bytes, ttl: int | None = None) -> bytes:
        decrypts.append(token)
        return original(self, token, ttl)

    monkeypatch.setattr(MultiFernet, "decrypt", counted)
    signing_key._private_key.cache_clear()

    first = EventSigningKey.objects.get(pk=key.pk).private_key()
    again = EventSigningKey.objects.get(pk=key.pk).private_key()

    assert len(decrypts) == 1
    assert _raw_public(again) == _raw_public(first) == key.public_key_bytes
