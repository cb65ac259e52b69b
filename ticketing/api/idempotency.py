"""Idempotency-Key on API writes, as Stripe defines it.

For POST, PATCH and DELETE with an `Idempotency-Key` header:

- the first request claims the key: a row inserted and committed *before* the
  view runs (a unique constraint on owner + key), so a concurrent duplicate
  finds it and gets 409 `idempotency_key_in_use`;
- when the view returns, its status and body are stored on the row; the same
  key with the same method, path and body then replays that response with
  `Idempotent-Replayed: true`;
- the same key with a different method, path or body gets 422
  `idempotency_key_reused`;
- keys belong to their owner (token, staff user, or IP for anonymous callers)
  and expire after 24 hours (`ticketing.tasks.purge_idempotency_keys`).

Responses that ask the client to retry (429, any 5xx) are not stored: the claim
is dropped, so the retry runs the request again. A claim whose process died
mid-request is taken over after IN_FLIGHT_TIMEOUT. The view's own writes and
the stored response are separate commits (as in pretix's middleware): a crash
between them leaves the key in flight until that timeout, and the retry then
runs again; services are idempotent or fail cleanly on a repeat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from ticketing.exceptions import DomainError
from ticketing.models import ApiToken, IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
METHODS = frozenset({"POST", "PATCH", "DELETE"})
KEY_TTL = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"
    message = f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable characters."
    status = 400


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."
    status = 422


class IdempotencyKeyInUse(DomainError):
    code = "idempotency_key_in_use"
    message = "A request with this Idempotency-Key is still being processed; retry shortly."
    status = 409


@dataclass(frozen=True)
class Claim:
    record: IdempotencyRecord
    replay: bool  # True: a finished request's response is to be returned


def request_owner(request: Request) -> str:
    user = request.user
    if isinstance(user, ApiToken):
        return f"token:{user.pk}"
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{BaseThrottle().get_ident(request)}"


def request_fingerprint(request: Request) -> str:
    # Computed once per request: the claim and idempotent_public_code both need it.
    fingerprint: str | None = getattr(request, "_idempotency_fingerprint", None)
    if fingerprint is None:
        body = json.dumps(request.data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(body.encode()).hexdigest()
        request._idempotency_fingerprint = fingerprint  # type: ignore[attr-defined]
    return fingerprint


def idempotent_public_code(request: Request) -> str | None:
    """For a POST with an Idempotency-Key: a public code (as new_public_code
    makes) derived from the caller, the key and the body, so that the request
    repeated creates nothing new even when its idempotency record could not
    be kept (the database went away while it ran, or the record expired): the
    checkout's run is keyed by its order code. Unguessable to anyone else (an
    HMAC under the secret key); None without a key."""
    key = request.headers.get(HEADER)
    if not key:
        return None
    material = f"{request_owner(request)}|{key}|{request_fingerprint(request)}"
    digest = hmac.new(settings.SECRET_KEY.encode(), material.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def idempotency_claim(
    *, owner: str, key: str, method: str, path: str, request_hash: str, now: datetime | None = None
) -> Claim:
    """Claim `key` for this request, or find the earlier request that has it.

    Raises IdempotencyKeyReused (different request) or IdempotencyKeyInUse
    (the same request still in flight)."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey()
    now = now or timezone.now()
    for _ in range(3):
        try:
            with _statement_scope():
                record = IdempotencyRecord.objects.create(
                    owner=owner, key=key, method=method, path=path[:500], request_hash=request_hash, created_at=now
                )
            return Claim(record=record, replay=False)
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
        if existing is None:
            continue  # released or purged in between: claim again
        if existing.created_at <= now - KEY_TTL:
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if (existing.method, existing.path, existing.request_hash) != (method, path[:500], request_hash):
            raise IdempotencyKeyReused(detail={"key": key})
        if not existing.in_flight:
            return Claim(record=existing, replay=True)
        if existing.created_at <= now - IN_FLIGHT_TIMEOUT:
            # Its request died without an answer: take the claim over, once.
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk, completed_at__isnull=True, created_at=existing.created_at
            ).update(created_at=now)
            if taken:
                existing.created_at = now
                return Claim(record=existing, replay=False)
        raise IdempotencyKeyInUse(detail={"key": key})
    raise IdempotencyKeyInUse(detail={"key": key})


def _statement_scope() -> AbstractContextManager[Any]:
    """Where a failed INSERT must not break the caller's transaction: a
    savepoint inside one. Outside any (the API's requests, in autocommit) the
    INSERT is its own transaction already, and BEGIN/COMMIT around it would
    only add two round trips to every request with a key."""
    if transaction.get_connection().in_atomic_block:
        return transaction.atomic()
    return nullcontext()


def idempotency_complete(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body, completed_at=timezone.now()
    )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, completed_at__isnull=True).delete()


def idempotency_records_purge(*, now: datetime | None = None) -> int:
    """Delete keys older than 24 hours (the beat task)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lte=now - KEY_TTL).delete()
    return deleted


class _Replay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _storable(status: int) -> bool:
    # Retryable answers are not the request's outcome: the retry must run again.
    return status < 500 and status != 429


class IdempotentMixin:
    """For APIViews: the key is claimed after authentication, permissions and
    throttling (so 401/403/429 are never stored), before the handler runs."""

    _idempotency_record: IdempotencyRecord | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency_record = None
        key = request.headers.get(HEADER)
        if key is None or request.method not in METHODS:
            return
        claim = idempotency_claim(
            owner=request_owner(request),
            key=key,
            method=request.method,
            path=request.get_full_path(),
            request_hash=request_fingerprint(request),
        )
        if claim.replay:
            record = claim.record
            response = Response(record.response_body, status=record.response_status)
            response[REPLAYED_HEADER] = "true"
            raise _Replay(response)
        self._idempotency_record = claim.record

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            return exc.response
        try:
            return super().handle_exception(exc)  # type: ignore[misc]
        except Exception:
            self._idempotency_forget()
            raise

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        record, self._idempotency_record = self._idempotency_record, None
        if record is not None:
            status = response.status_code
            if _storable(status):
                idempotency_complete(record=record, status=status, body=getattr(response, "data", None))
            else:
                idempotency_release(record=record)
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]

    def _idempotency_forget(self) -> None:
        record, self._idempotency_record = self._idempotency_record, None
        if record is not None:
            idempotency_release(record=record)
