"""Rate limit of the scan endpoint, per device.

The rate is REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["device"] when set,
else DEFAULT_RATE: far above a person scanning tickets at a gate (about one a
second), low enough to stop a leaked device token from probing codes fast."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from scanning.models import Device

DEFAULT_RATE = "600/min"


class DeviceRateThrottle(SimpleRateThrottle):
    scope = "device"

    def get_rate(self) -> str | None:
        return str(api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or DEFAULT_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        device = request.user
        if not isinstance(device, Device):
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"device-{device.pk}"}
