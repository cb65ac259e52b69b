"""Device authentication for the scan endpoint: `Authorization: Bearer dv_…`
(or `Device dv_…`). An authenticated device becomes request.user; staff
tokens and sessions are not accepted there, nor device tokens anywhere else."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from scanning.models import Device
from scanning.services.devices import device_authenticate

KEYWORDS = ("bearer", "device")


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Device, Device] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <device token>'.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The device token is not valid.") from exc
        device = device_authenticate(raw=raw)
        if device is None:
            raise exceptions.AuthenticationFailed("This is not a valid device token, or the device was revoked.")
        return device, device

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="scanning-devices"'


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "scanning.api.authentication.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A scanning device's token (dv_…), created with the device in the admin or the API.",
        }
