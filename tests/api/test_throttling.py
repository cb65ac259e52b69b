"""The API's rate limits (ticketing.api.throttling): DRF's sliding-window rule,
kept in Redis in one round trip per request, and DRF's own implementation
when the cache is not Redis. Both must answer alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import override_settings
from redis.exceptions import NoScriptError
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from tests.api.conftest import client_for, token_for
from tests.factories import OrganizationFactory
from ticketing.api import throttling
from ticketing.api.throttling import ClientRateThrottle, PublicRateThrottle

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle-tests"}}


def _redis_cache() -> bool:
    return hasattr(cache, "client") and hasattr(cache.client, "get_client")


@pytest.fixture(params=["redis", "locmem"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis":
        if not _redis_cache():
            pytest.skip("needs REDIS_URL (django-redis)")
        yield "redis"
        return
    with override_settings(CACHES=LOCMEM):
        cache.clear()
        yield "locmem"
        cache.clear()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _request(ip: str = "10.1.2.3") -> Request:
    request = Request(APIRequestFactory().post("/api/v1/public/checkouts/", REMOTE_ADDR=ip))
    request.user = None  # anonymous, as after DRF's authentication
    return request


def _ask(clock: Clock, at: float, rate: str, ip: str = "10.1.2.3") -> tuple[bool, float | None]:
    clock.now = at
    throttle = PublicRateThrottle()
    throttle.rate = rate
    throttle.num_requests, throttle.duration = throttle.parse_rate(rate)
    allowed = throttle.allow_request(_request(ip), APIView())
    return allowed, (None if allowed else throttle.wait())


def test_the_sliding_window_and_retry_after_are_drfs(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: 2 requests a minute, and a clock we move
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(PublicRateThrottle, "timer", clock)
    start = clock.now

    # when / then: the same answers from the Redis log and from DRF's list
    assert _ask(clock, start, "2/min") == (True, None)
    assert _ask(clock, start + 10, "2/min") == (True, None)
    assert _ask(clock, start + 20, "2/min") == (False, pytest.approx(40.0))  # until the first leaves the window
    assert _ask(clock, start + 30, "2/min") == (False, pytest.approx(30.0))  # refused requests are not counted
    assert _ask(clock, start + 60.5, "2/min") == (True, None)  # the first left the window
    assert _ask(clock, start + 65, "2/min") == (False, pytest.approx(5.0))
    assert _ask(clock, start + 65, "2/min", ip="10.9.9.9") == (True, None)  # another address, its own budget
    # A rate lowered below what the window holds: DRF answers no wait time.
    assert _ask(clock, start + 66, "1/min") == (False, None)


def test_one_redis_round_trip_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _redis_cache():
        pytest.skip("needs REDIS_URL (django-redis)")
    commands: list[str] = []
    execute = redis.Redis.execute_command

    def counted(self: Any, *args: Any, **options: Any) -> Any:
        commands.append(str(args[0]).upper())
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    throttle = PublicRateThrottle()

    assert throttle.allow_request(_request(), APIView())

    assert commands == ["EVALSHA"]


def test_the_log_is_kept_apart_from_drfs_key() -> None:
    # A deploy meets DRF's pickled lists under the old keys: never the same key.
    if not _redis_cache():
        pytest.skip("needs REDIS_URL (django-redis)")
    cache.set("throttle_anon_10.1.2.3", [1.0, 2.0], 60)
    throttle = PublicRateThrottle()

    assert throttle.allow_request(_request(), APIView())
    assert cache.get("throttle_anon_10.1.2.3") == [1.0, 2.0]


def test_a_lost_script_cache_falls_back_to_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _redis_cache():
        pytest.skip("needs REDIS_URL (django-redis)")

    def no_script(self: Any, *args: Any) -> Any:
        raise NoScriptError("NOSCRIPT No matching script.")

    monkeypatch.setattr(redis.Redis, "evalsha", no_script)
    throttle = PublicRateThrottle()
    throttle.num_requests, throttle.duration = 1, 60

    assert throttle.allow_request(_request(), APIView())
    assert not throttle.allow_request(_request(), APIView())


def test_the_limit_fails_open_when_redis_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _redis_cache():
        pytest.skip("needs REDIS_URL (django-redis)")

    def down(self: Any, *args: Any) -> Any:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(redis.Redis, "evalsha", down)
    throttle = PublicRateThrottle()
    throttle.num_requests, throttle.duration = 0, 60

    assert throttle.allow_request(_request(), APIView())


@pytest.mark.django_db
def test_tokens_are_limited_per_token_over_http(backend: str, settings: Any) -> None:
    # given: 2 requests a minute per token, none for anonymous callers' budget
    rest = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "100/min", "client": "2/min"}}
    organization = OrganizationFactory()
    one, two = client_for(token_for(organization, "owner")), client_for(token_for(organization, "owner"))
    with override_settings(REST_FRAMEWORK=rest):
        # when / then
        assert [one.get("/api/v1/events/").status_code for _ in range(2)] == [200, 200]
        refused = one.get("/api/v1/events/")
        assert refused.status_code == 429 and refused.json()["code"] == "throttled"
        assert 0 < int(refused["Retry-After"]) <= 60
        assert two.get("/api/v1/events/").status_code == 200  # another token, its own budget
        assert APIClient().get("/api/v1/public/events/").status_code == 200


def test_client_throttle_ignores_anonymous_callers() -> None:
    assert ClientRateThrottle().allow_request(_request(), APIView())
    assert throttling.ClientRateThrottle().get_cache_key(_request(), APIView()) is None
