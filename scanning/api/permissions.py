from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from scanning.models import Device

# Who reads devices and scans: the organization's gate staff and those who
# run the event; finance has no business at the gates.
SCAN_READERS = frozenset({"owner", "manager", "box_office", "scanner"})


class IsActiveDevice(BasePermission):
    message = "Only a scanning device may record scans."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Device) and request.user.is_active
