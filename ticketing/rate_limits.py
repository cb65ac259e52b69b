"""Fixed-window rate limits for customer pages, kept in the cache.

With REDIS_URL set the default cache is django-redis, so every web process
shares the counters (INCR is atomic in Redis); without it the local-memory
cache limits per process, which is what a single development server needs.
The cache only guards; it never holds inventory. If the cache is down the
limit fails open: a buyer is never refused because Redis is."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest


@dataclass(frozen=True)
class RateLimit:
    scope: str
    limit: int
    window_seconds: int


# Per client IP: a person buying for a group needs a few tries, a bot many.
CHECKOUT_STARTS = RateLimit("checkout-start", limit=10, window_seconds=60)
# Per order: the ticket e-mail again, a few times an hour.
RESEND_EMAIL = RateLimit("resend-email", limit=3, window_seconds=3600)


def client_ip(request: HttpRequest) -> str:
    """The address the request came from. Behind a load balancer, configure it
    (or a middleware) to set REMOTE_ADDR from the trusted proxy header; a
    client-supplied X-Forwarded-For is never trusted here."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def rate_limit_hit(*, rule: RateLimit, key: str, now: float | None = None) -> int | None:
    """Count one attempt against `rule` for `key`. Returns None if it is
    allowed, else the seconds until the window resets (for Retry-After)."""
    now = time.time() if now is None else now
    window = int(now // rule.window_seconds)
    cache_key = f"ratelimit:{rule.scope}:{key}:{window}"
    # add() is a no-op if the key exists; incr() is atomic in Redis.
    cache.add(cache_key, 0, timeout=rule.window_seconds + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # evicted between add and incr (or the cache is down): fail open
        return None
    if count is None or count <= rule.limit:
        return None
    return max(int((window + 1) * rule.window_seconds - now), 1)
