"""The PostgreSQL backend's health check between requests: no round trip
while the connection is idle and the server sent nothing; Django's `SELECT 1`
and a reconnection when the server closed the connection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connections
from django.db.backends.postgresql import base as django_postgresql

from config.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wrapper() -> Iterator[DatabaseWrapper]:
    """A connection of its own, with health checks on, as in production."""
    connection = connections.create_connection("default")
    assert isinstance(connection, DatabaseWrapper)
    connection.health_check_enabled = True
    connection.ensure_connection()
    yield connection
    connection.close()


@pytest.fixture
def round_trip_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts Django's own health check (`SELECT 1`)."""
    calls: list[int] = []
    original = django_postgresql.DatabaseWrapper.is_usable

    def counted(self: django_postgresql.DatabaseWrapper) -> bool:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", counted)
    return calls


def _request_starts(wrapper: DatabaseWrapper) -> None:
    """What Django does around a request: close_old_connections at its start
    and end, then the first statement runs the health check."""
    wrapper.close_if_unusable_or_obsolete()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        cursor.fetchone()


def test_an_idle_connection_is_checked_without_a_round_trip(
    wrapper: DatabaseWrapper, round_trip_checks: list[int]
) -> None:
    pid = wrapper.connection.info.backend_pid

    for _ in range(3):
        _request_starts(wrapper)

    assert round_trip_checks == []
    assert wrapper.connection.info.backend_pid == pid, "the same connection served every request"


def test_a_connection_the_server_closed_is_replaced_before_the_request_uses_it(
    wrapper: DatabaseWrapper, round_trip_checks: list[int]
) -> None:
    pid = wrapper.connection.info.backend_pid
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)  # the server's FATAL message and close reach the socket

    _request_starts(wrapper)

    assert round_trip_checks == [1], "a readable socket goes to Django's own check"
    assert wrapper.connection.info.backend_pid != pid, "reconnected, and the request's statement ran"


def test_a_connection_left_in_a_transaction_gets_the_round_trip_check(
    wrapper: DatabaseWrapper, round_trip_checks: list[int]
) -> None:
    wrapper.connection.execute("BEGIN")
    wrapper.health_check_done = False

    wrapper.close_if_health_check_failed()

    assert round_trip_checks == [1]
