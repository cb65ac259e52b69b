"""The short fault drills (bench/drills) as tests, and the 503 they rely on.

Each drill starts the production-style stack (gunicorn, a Celery worker,
beat) on a PostgreSQL cluster and a Redis server of its own, rushes it with
buyers while it injects its fault, and fails unless nothing was lost,
duplicated or oversold and the ledger balances (bench/README.md, "Fault
drills"). Together they take about four minutes on a 2-core machine, so they
run on CI (CI=true) or when asked (RUN_DRILLS=1), and are skipped when this
machine cannot start the stack: no PostgreSQL server programs, no
redis-server, no gunicorn or celery in the venv.

    RUN_DRILLS=1 .venv/bin/pytest tests/bench/test_drills.py -v
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from config.middleware import DatabaseUnavailableMiddleware

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ("worker-kill", "pg-restart", "redis-outage", "webhook-shuffle")


def _cannot_run() -> str | None:
    if not (os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("RUN_DRILLS")):
        return "the fault drills run on CI (CI=true) or with RUN_DRILLS=1 (about four minutes)"
    from bench.drills.services import missing_programs

    missing = missing_programs()
    bin_dir = Path(sys.executable).parent
    missing += [f"{name} in {bin_dir}" for name in ("gunicorn", "celery") if not (bin_dir / name).exists()]
    return f"the stack cannot start here: missing {', '.join(missing)}" if missing else None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("drill", DRILLS)
def test_short_drill_loses_nothing(drill, tmp_path):
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "summary.json"
    # given the stack, a rush and the drill's fault
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.drills", drill, "--short", "--source", "tree", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        # SIGTERM: the drill stops the stack and removes its PostgreSQL and
        # Redis (they run in sessions of their own: a SIGKILL would orphan them).
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=25)
        pytest.fail(f"drill {drill} took more than 270 s:\n{stderr[-3000:]}")
    # then
    tail = "\n".join(stdout.splitlines()[-3:]) + "\n--- stderr ---\n" + stderr[-3000:]
    assert proc.returncode == 0, f"drill {drill} exited {proc.returncode}:\n{tail}"
    summary = json.loads(out.read_text())
    verdict = summary["verdict"]
    assert (verdict["lost"], verdict["duplicated"], verdict["oversold"]) == (0, 0, 0), tail
    assert verdict["ledger_balanced"], tail
    assert verdict["server_errors_500"] == 0, tail
    assert summary["rush"]["paid_by_buyers"] > 0, "the rush sold nothing"


# --- the 503 the PostgreSQL drill relies on (no stack needed) ------------------------------------


def _fail(request):
    raise AssertionError("not reached")


@pytest.mark.parametrize("error", [OperationalError("connection refused"), InterfaceError("connection already closed")])
def test_database_unavailable_is_a_503_with_the_error_format_on_the_api(error):
    request = RequestFactory().post("/api/v1/public/checkouts/")

    response = DatabaseUnavailableMiddleware(_fail).process_exception(request, error)

    assert response is not None
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == "unavailable"


def test_database_unavailable_is_a_plain_503_page_elsewhere():
    request = RequestFactory().get("/events/1/")

    response = DatabaseUnavailableMiddleware(_fail).process_exception(request, OperationalError("shutting down"))

    assert response is not None
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b'data-error-code="unavailable"' in response.content


def test_other_errors_are_left_alone():
    request = RequestFactory().get("/api/v1/public/events/")

    assert DatabaseUnavailableMiddleware(_fail).process_exception(request, ValueError("bug")) is None
