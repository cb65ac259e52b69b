"""The page error path: a DomainError raised under a customer page renders as
a friendly page with its status, never a server error."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ticketing.exceptions import Busy, DomainError


class DomainErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError):
            return None
        response = render(request, "error.html", {"error": exception}, status=exception.status)
        if isinstance(exception, Busy):
            response["Retry-After"] = str(exception.retry_after_seconds)
        return response
