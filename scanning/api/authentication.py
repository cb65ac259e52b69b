"""Device authentication for the scan endpoint: `Authorization: Bearer dv_…`
(or `Device dv_…`). An authenticated device becomes request.user; staff
tokens and sessions are not accepted there, nor device tokens anywhere else."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from scanning.models import Device
from scanning.services.devices import device_authenticate
from ticketing.api.authentication import BearerAuthentication


class DeviceTokenAuthentication(BearerAuthentication):
    keywords = ("bearer", "device")
    realm = "scanning-devices"
    usage = "Send 'Authorization: Bearer <device token>'."
    unreadable = "The device token is not valid."
    refused = "This is not a valid device token, or the device was revoked."

    def find(self, raw: str) -> Device | None:
        return device_authenticate(raw=raw)


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "scanning.api.authentication.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A scanning device's token (dv_…), created with the device in the admin or the API.",
        }
