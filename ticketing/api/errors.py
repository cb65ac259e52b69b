"""The one error format of the API: {"code", "message", "detail"} for every 4xx."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ticketing.exceptions import Busy, DomainError


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx response (documented in the schema)."""

    code = serializers.CharField(help_text="Stable and machine-readable, e.g. 'sold_out' or 'not_found'.")
    message = serializers.CharField(help_text="For humans.")
    detail = serializers.JSONField(
        allow_null=True, help_text="Specifics; for validation errors, the messages per field."
    )


class Conflict(DomainError):
    code = "conflict"
    message = "This conflicts with the current state; please reload and try again."
    status = 409


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, IntegrityError):
        # A race lost against a unique or check constraint: the row changed
        # between our validation and the write. Never a 500.
        exc = Conflict()
    if isinstance(exc, DomainError):
        response = Response(exc.as_dict(), status=exc.status)
        if isinstance(exc, Busy):
            response["Retry-After"] = str(exc.retry_after_seconds)
        return response
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    handled = drf_exception_handler(exc, context)
    if handled is None or not isinstance(exc, drf_exceptions.APIException):
        return handled
    detail: Any
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message, detail = "invalid", "The request is not valid.", handled.data
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        message = str(exc.detail) if isinstance(exc.detail, str) else "The request could not be completed."
        detail = None
    handled.data = {"code": code, "message": message, "detail": detail}
    return handled
