"""Database unavailable: 503 and "try again shortly", never a 500.

While PostgreSQL restarts or fails over, every request that needs it raises
django.db.OperationalError (cannot connect, connection terminated, the
server is starting up) or InterfaceError (the connection is already closed).
Nothing is wrong with the request and nothing was written (the transaction
died with the connection): the client should retry. The API and the webhook
endpoints answer 503 with Retry-After and the one error format
{"code", "message", "detail"} (a provider retries a webhook it got a 503
for); pages get a plain page built without the database (no template
inheritance, no context processor that reads the session or the user).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
ERROR_CODE = "unavailable"
MESSAGE = "The service is briefly unavailable; please try again in a few seconds."
JSON_PREFIXES = ("/api/", "/webhooks/")
PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Please try again</title>"
    f'<main role=alert data-error-code="{ERROR_CODE}"><h1>Please try again in a moment</h1>'
    f"<p>{MESSAGE}</p></main></html>"
)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    response: HttpResponse
    if request.path.startswith(JSON_PREFIXES):
        response = JsonResponse(
            {"code": ERROR_CODE, "message": MESSAGE, "detail": {"retry_after_seconds": RETRY_AFTER_SECONDS}},
            status=503,
        )
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
