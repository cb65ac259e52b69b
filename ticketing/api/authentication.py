"""API authentication: `Authorization: Bearer <token>` (or `Token <token>`).

An authenticated token becomes request.user (ticketing.models.ApiToken speaks
the actor protocol of ticketing.tenancy); staff use their admin session."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from ticketing.models import ApiToken
from ticketing.services.api_tokens import api_token_authenticate


class BearerAuthentication(authentication.BaseAuthentication):
    """`Authorization: <keyword> <token>`: the token's row becomes request.user.
    Subclasses name their keywords, realm and messages, and find the row."""

    keywords: tuple[str, ...] = ("bearer",)
    realm = "api"
    usage = "Send 'Authorization: Bearer <token>'."
    unreadable = "The token is not valid."
    refused = "The token is not valid or was revoked."

    def find(self, raw: str) -> Any:
        raise NotImplementedError

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(self.usage)
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(self.unreadable) from exc
        row = self.find(raw)
        if row is None:
            raise exceptions.AuthenticationFailed(self.refused)
        return row, row

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return f'Bearer realm="{self.realm}"'


class ApiTokenAuthentication(BearerAuthentication):
    keywords = ("bearer", "token")

    def find(self, raw: str) -> ApiToken | None:
        return api_token_authenticate(raw=raw)


class SessionAuthentication(authentication.SessionAuthentication):
    """Staff sessions, for staff users only (CSRF-checked, as DRF does)."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None or not getattr(result[0], "is_staff", False):
            return None
        return result


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "ticketing.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token created in the admin."}


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "ticketing.api.authentication.SessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
