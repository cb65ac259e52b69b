"""Bearer secrets that name their own row: `<marker><prefix>_<secret>`.

API tokens (`tk_`) and scanning devices (`dv_`) use the same scheme: the
prefix is public and finds the row, only sha256(token) is stored (the secret
has 256 bits of entropy, so a plain hash is enough and costs nothing per
request), and using a token records the time at most once a minute (a
conditional UPDATE), not once per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import models
from django.utils import timezone

MAX_TOKEN_CHARS = 128
USE_RESOLUTION = timedelta(minutes=1)

M = TypeVar("M", bound=models.Model)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class BearerTokenKind:
    marker: str  # "tk_", "dv_": tells the kinds apart at a glance

    def new(self) -> tuple[str, str]:
        """(public prefix, the whole token) for a new row; store token_hash(token)."""
        prefix = secrets.token_hex(6)
        return prefix, f"{self.marker}{prefix}_{secrets.token_urlsafe(32)}"

    def is_one(self, raw: str) -> bool:
        return raw.startswith(self.marker)

    def prefix_of(self, raw: str) -> str | None:
        if len(raw) > MAX_TOKEN_CHARS or not raw.startswith(self.marker):
            return None
        prefix, sep, secret = raw[len(self.marker) :].partition("_")
        if not sep or not prefix or not secret or len(prefix) > 16:
            return None
        return prefix

    def find(self, queryset: models.QuerySet[M], raw: str, *, used_field: str, now: datetime | None = None) -> M | None:
        """The live row of `queryset` whose token is `raw` (its prefix and hash
        match and it is not revoked), with `used_field` brought up to date;
        None otherwise."""
        prefix = self.prefix_of(raw)
        if prefix is None:
            return None
        row: Any = queryset.filter(prefix=prefix).first()
        if row is None or not hmac.compare_digest(row.secret_hash, token_hash(raw)) or row.revoked_at is not None:
            return None
        now = now or timezone.now()
        used = getattr(row, used_field)
        if used is None or used <= now - USE_RESOLUTION:
            # Conditional: of many concurrent requests, one writes per minute.
            stale = queryset.model._default_manager.filter(pk=row.pk).exclude(
                **{f"{used_field}__gt": now - USE_RESOLUTION}
            )
            if stale.update(**{used_field: now}):
                setattr(row, used_field, now)
        return row  # type: ignore[no-any-return]
