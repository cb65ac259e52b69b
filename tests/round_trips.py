"""Count the round trips to the database, not only its statements.

Inside ticketing.rows.deferred(), writes travel with the next statement in a
psycopg pipeline: Django logs each statement, but the pipeline crosses the
network once. Every statement Django logs outside a pipeline is a round trip
of its own (BEGIN and COMMIT are logged too, and each is one), and a pipeline
is one, however many statements it carries: the deferred writes, and the
statement they travel with (which Django logs once its execute returns,
after the pipeline)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


class RoundTrips:
    def __init__(self, log: CaptureQueriesContext) -> None:
        self._log = log
        self.pipelines = 0
        self.carried = 0  # statements logged that went in a pipeline

    @property
    def statements(self) -> int:
        return len(self._log.captured_queries)

    @property
    def count(self) -> int:
        return self.statements - self.carried + self.pipelines


@contextmanager
def counting_round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    pipeline = psycopg.Connection.pipeline
    state = {"pipelines": 0, "executing": 0, "carrier": False}
    with CaptureQueriesContext(connection) as log, monkeypatch.context() as patch:
        seen = RoundTrips(log)

        @contextmanager
        def counted(self: psycopg.Connection[Any]) -> Iterator[Any]:
            before = len(connection.queries_log)
            state["pipelines"] += 1
            try:
                with pipeline(self) as p:
                    yield p
            finally:
                state["pipelines"] -= 1
                if state["pipelines"] == 0:
                    seen.pipelines += 1
                    seen.carried += len(connection.queries_log) - before
                    # Opened inside an execute: that statement went in it too.
                    state["carrier"] = state["executing"] > 0

        def executing(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            state["executing"] += 1
            try:
                return execute(sql, params, many, context)
            finally:
                state["executing"] -= 1
                if state["carrier"] and state["executing"] == 0:
                    seen.carried += 1
                    state["carrier"] = False

        patch.setattr(psycopg.Connection, "pipeline", counted)
        connection.ensure_connection()
        with connection.execute_wrapper(executing):
            yield seen
