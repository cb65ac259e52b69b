"""API tokens: create (the secret is returned once), authenticate, revoke.

A token reads `tk_<prefix>_<secret>`. The prefix is public and finds the row;
only sha256(token) is stored. Authentication writes `last_used_at` at most once
a minute per token (a conditional UPDATE), not once per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from ticketing.exceptions import InvalidInput, NotFound
from ticketing.models import ApiToken, Organization, Role

TOKEN_PREFIX = "tk_"  # noqa: S105 - the public marker of our tokens, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    prefix, sep, secret = raw[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


def api_token_create(
    *, organization: Organization, name: str, role: str, created_by: Any = None
) -> tuple[ApiToken, str]:
    """A new token and its secret; the secret cannot be recovered afterwards."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", detail={"role": role})
    if not name.strip():
        raise InvalidInput("Name the token.", detail={"name": "This field is required."})
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            organization=organization,
            name=name.strip()[:100],
            role=role,
            prefix=prefix,
            secret_hash=_hash(raw),
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
    return token, raw


def api_token_authenticate(*, raw: str, now: datetime | None = None) -> ApiToken | None:
    """The live token for `raw`, or None (unknown, malformed or revoked)."""
    parts = _split(raw)
    if parts is None:
        return None
    token = ApiToken.objects.select_related("organization").filter(prefix=parts[0]).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(raw)) or token.revoked_at is not None:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        # Conditional: of many concurrent requests, one writes per minute.
        stale = ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gt=now - LAST_USED_RESOLUTION)
        if stale.update(last_used_at=now):
            token.last_used_at = now
    return token


def api_token_revoke(*, token_id: int, now: datetime | None = None) -> ApiToken:
    """Revoke a token; revoking twice keeps the first revocation time."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
        if token is None:
            raise NotFound("This API token does not exist.")
        if token.revoked_at is None:
            token.revoked_at = now or timezone.now()
            token.save(update_fields=["revoked_at"])
        return token
