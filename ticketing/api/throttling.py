"""Rate limits: anonymous callers per IP (the public endpoints), authenticated
callers per token or staff user. Rates come from
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read at request time.

The rule is DRF's own (SimpleRateThrottle): at most N requests in any window
of the rate's duration, refused requests not counted, Retry-After as DRF
computes it. With django-redis (REDIS_URL set) a caller's request times are a
Redis list that one Lua script trims, checks and appends: one round trip per
request, where DRF reads the pickled list of times and writes it back (two
round trips and a pickle that grows with the rate, and two concurrent
requests of one caller could both count as one). Without Redis (the
local-memory cache of development) DRF's implementation runs. If Redis is
unreachable the limit fails open, as every other use of the cache does."""

from __future__ import annotations

import hashlib
from typing import Any

from django_redis.client import DefaultClient, ShardClient
from redis.exceptions import NoScriptError, RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from ticketing.models import ApiToken

# KEYS[1]: the caller's list of request times, newest first.
# ARGV: now, duration (seconds), limit. Returns {1} when the request is allowed
# (and recorded), {0, count, oldest} when it is refused.
SLIDING_LOG_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
local oldest = redis.call('LINDEX', key, -1)
while oldest and tonumber(oldest) <= now - duration do
  redis.call('RPOP', key)
  oldest = redis.call('LINDEX', key, -1)
end
local count = redis.call('LLEN', key)
if count >= tonumber(ARGV[3]) then
  return {0, count, oldest}
end
redis.call('LPUSH', key, ARGV[1])
redis.call('EXPIRE', key, math.ceil(duration))
return {1}
"""
SLIDING_LOG_SHA = hashlib.sha1(SLIDING_LOG_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisSlidingLogMixin:
    """SimpleRateThrottle.allow_request and wait(), in one Redis round trip.
    The list lives under its own key (`throttle-log:...`), never the key of
    DRF's pickled list."""

    cache: Any
    timer: Any
    rate: str | None
    num_requests: int
    duration: int
    key: str | None
    now: float

    _refused: tuple[int, float | None] | None = None  # (requests in the window, the oldest's time)

    def allow_request(self, request: Request, view: Any) -> bool:
        client = getattr(self.cache, "client", None)
        if not isinstance(client, DefaultClient) or isinstance(client, ShardClient):
            return bool(super().allow_request(request, view))  # type: ignore[misc]
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
            return True
        self.key = key
        self.now = self.timer()
        args = (str(self.cache.make_key(f"throttle-log:{key}")), repr(self.now), self.duration, self.num_requests)
        try:
            redis = client.get_client(write=True)
            try:
                reply = redis.evalsha(SLIDING_LOG_SHA, 1, *args)
            except NoScriptError:  # Redis restarted or its script cache was flushed
                reply = redis.eval(SLIDING_LOG_SCRIPT, 1, *args)
        except RedisError:
            return True  # fail open: a buyer is never refused because Redis is down
        if int(reply[0]):
            self._refused = None
            return True
        oldest = reply[2] if len(reply) > 2 else None
        self._refused = (int(reply[1]), float(oldest) if oldest is not None else None)
        return False

    def wait(self) -> float | None:
        if self._refused is None:
            return super().wait()  # type: ignore[misc, no-any-return]
        # DRF's formula, with its history's length and oldest entry.
        count, oldest = self._refused
        remaining = self.duration - (self.now - oldest) if oldest is not None else self.duration
        available = self.num_requests - count + 1
        if available <= 0:
            return None
        return remaining / float(available)


class PublicRateThrottle(RedisSlidingLogMixin, AnonRateThrottle):
    scope = "anon"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate is not None else None


class ClientRateThrottle(RedisSlidingLogMixin, SimpleRateThrottle):
    scope = "client"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate is not None else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not user or not user.is_authenticated:
            return None
        kind = "token" if isinstance(user, ApiToken) else "user"
        return self.cache_format % {"scope": self.scope, "ident": f"{kind}-{user.pk}"}
