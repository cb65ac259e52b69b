"""OpenAPI additions: the Idempotency-Key header on writes and the error
responses every operation can give, in the one error format."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from ticketing.api.errors import ErrorSerializer
from ticketing.api.idempotency import HEADER, METHODS

_ERRORS_ALWAYS = ("400", "401", "403", "404", "405", "429")
_ERRORS_ON_WRITES = ("409", "410", "422")


class ApiAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if self.method in METHODS:
            params.append(
                OpenApiParameter(
                    HEADER,
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    required=False,
                    description="Makes the request safe to retry: the same key and body return the stored "
                    "response for 24 hours.",
                )
            )
        return params

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = _ERRORS_ALWAYS + (_ERRORS_ON_WRITES if self.method in METHODS else ())
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
        return responses
