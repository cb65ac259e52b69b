"""The one error format of the API: {"code", "message", "detail"} for every 4xx."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ticketing.exceptions import Busy, DomainError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message = "invalid", "The request is not valid."
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        message = str(exc.detail) if isinstance(exc.detail, str) else "The request could not be completed."
    handled.data = {"code": code, "message": message, "detail": handled.data}
    return handled
