"""Count the round trips to the database, not only its statements.

Inside a psycopg pipeline (ticketing.rows: deferred writes travelling with
the next statement, reads sent together, a transaction's BEGIN sent with its
first statement) Django logs each statement, but the pipeline crosses the
network once. So: every statement logged outside a pipeline is a round trip
(COMMIT too), a pipeline is one however many statements it carries (the
statement that a pipeline was opened for is logged after it closes), and a
BEGIN is one only if psycopg had to send it alone (Django logs a BEGIN when
the transaction starts, before psycopg sends anything)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg import pq


class RoundTrips:
    def __init__(self, log: CaptureQueriesContext) -> None:
        self._log = log
        self.pipelines = 0
        self.carried = 0  # statements logged that went in a pipeline
        self.lone_begins = 0

    @property
    def statements(self) -> int:
        return sum(1 for q in self._log.captured_queries if q["sql"] != "BEGIN")

    @property
    def count(self) -> int:
        return self.statements - self.carried + self.pipelines + self.lone_begins


def _begin_pending(pg: psycopg.Connection[Any]) -> bool:
    return (
        not pg.autocommit
        and pg.info.transaction_status == pq.TransactionStatus.IDLE
        and pg.pgconn.pipeline_status == pq.PipelineStatus.OFF
    )


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
            pg = context["connection"].connection
            begin = state["executing"] == 0 and _begin_pending(pg)
            pipelines = seen.pipelines
            state["executing"] += 1
            try:
                return execute(sql, params, many, context)
            finally:
                state["executing"] -= 1
                if begin and seen.pipelines == pipelines:
                    seen.lone_begins += 1
                if state["carrier"] and state["executing"] == 0:
                    seen.carried += 1
                    state["carrier"] = False

        patch.setattr(psycopg.Connection, "pipeline", counted)
        connection.ensure_connection()
        with connection.execute_wrapper(executing):
            yield seen
