"""Rate limits: anonymous callers per IP (the public endpoints), authenticated
callers per token or staff user. Rates come from
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read at request time."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from ticketing.models import ApiToken


class PublicRateThrottle(AnonRateThrottle):
    scope = "anon"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate is not None else None


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate is not None else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not user or not user.is_authenticated:
            return None
        kind = "token" if isinstance(user, ApiToken) else "user"
        return self.cache_format % {"scope": self.scope, "ident": f"{kind}-{user.pk}"}
