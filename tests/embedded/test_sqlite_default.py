"""`make run`'s default is SQLite with eager Celery and no Redis: the hot
paths' hand-written SQL (ticketing.rows and the services' statements) must
work there too, not only on the PostgreSQL the rest of the suite runs on.
A buyer's whole path runs in a process of its own on a fresh SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_buyer_checks_out_and_pays_on_the_embedded_default(tmp_path: Path) -> None:
    # given: the embedded default, as `make run` starts it
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"

    # when
    done = subprocess.run(
        [sys.executable, "-m", "tests.embedded.buyer_flow"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    # then
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "vendor": "sqlite",
        "ga_checkout": 201,
        "ga_pay": 302,
        "ga_status": "paid",
        "ga_tickets": 2,
        "ga_emails": ["sent"],
        "seat_hold": 201,
        "seated_checkout": 201,
        "seated_pay": 302,
        "seated_status": "paid",
        "seated_tickets": 2,
        "mails_sent": 2,
        "ledger": "balanced",
    }
