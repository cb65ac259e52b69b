"""API tokens: create (the secret is returned once), authenticate, revoke.

A token reads `tk_<prefix>_<secret>` (the scheme of ticketing.bearer_tokens);
authentication keeps `last_used_at` to the minute."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ticketing.bearer_tokens import BearerTokenKind, token_hash
from ticketing.exceptions import InvalidInput, NotFound
from ticketing.models import ApiToken, Organization, Role

API_TOKENS = BearerTokenKind(marker="tk_")


def api_token_create(
    *, organization: Organization, name: str, role: str, created_by: Any = None
) -> tuple[ApiToken, str]:
    """A new token and its secret; the secret cannot be recovered afterwards."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", detail={"role": role})
    if not name.strip():
        raise InvalidInput("Name the token.", detail={"name": "This field is required."})
    prefix, raw = API_TOKENS.new()
    with transaction.atomic():
        token = ApiToken.objects.create(
            organization=organization,
            name=name.strip()[:100],
            role=role,
            prefix=prefix,
            secret_hash=token_hash(raw),
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
    return token, raw


def api_token_authenticate(*, raw: str, now: datetime | None = None) -> ApiToken | None:
    """The live token for `raw`, or None (unknown, malformed or revoked)."""
    return API_TOKENS.find(ApiToken.objects.select_related("organization"), raw, used_field="last_used_at", now=now)


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
