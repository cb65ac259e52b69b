"""What a web process would otherwise pay for in its first requests, done
before it takes any: a fresh process spent ~130 ms on its first checkout
(importing every view, compiling the URL patterns for reverse(), connecting),
and at the start of an on-sale every worker's first request is a buyer's.

`warm_up_code` runs where the application is loaded (config.wsgi): with
gunicorn's preload_app (config/gunicorn.py) once, in the master, and the
workers inherit it. `warm_up_connections` runs in each worker after the fork
(connections are never shared between processes)."""

from __future__ import annotations

import logging

from django.core.validators import validate_email
from django.db import connections
from django.urls import get_resolver

logger = logging.getLogger(__name__)


def warm_up_code() -> None:
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - imports every view module
    resolver.reverse_dict  # noqa: B018 - compiles every pattern, as the first reverse() would
    # Django compiles its e-mail validator's patterns (large Unicode character
    # classes, ~25 ms) at their first use: a buyer's checkout.
    validate_email("warm-up@example.com")


def warm_up_connections() -> None:
    """The database and the cache connected; a failure here is the first
    request's to report (as a 503), never the worker's start."""
    try:
        connections["default"].ensure_connection()
    except Exception:
        logger.warning("no database connection at worker start", exc_info=True)
    try:
        from django.core.cache import cache

        cache.get("warm-up")
    except Exception:
        logger.warning("no cache connection at worker start", exc_info=True)
