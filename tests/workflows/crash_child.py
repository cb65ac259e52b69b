"""A worker process for the crash tests: `python -m tests.workflows.crash_child RUN_ID STEP`,
or `... one-transaction WORKFLOW_TYPE BUSINESS_KEY INPUT_JSON STEP` to start a run
in one transaction (workflows.engine.one_transaction) instead.

It advances (or starts) the run and, right after the body of STEP returns and before the
step is recorded, prints BODY_DONE and blocks, so the test can SIGKILL it at
exactly that point. The environment points it at the test database.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _setup(step_name: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    import tests.workflows.flows  # noqa: F401 - registers the workflows
    from workflows.engine.attempts import step_body_finished

    def block(sender: Any, *, name: str, **kwargs: Any) -> None:
        if name == step_name:
            print("BODY_DONE", flush=True)
            time.sleep(600)

    step_body_finished.connect(block, weak=False)


def main(run_id: int, step_name: str) -> None:
    _setup(step_name)
    from workflows.engine import advance

    advance(run_id)
    print("ADVANCE_RETURNED", flush=True)


def main_one_transaction(workflow_type: str, business_key: str, data: dict[str, Any], step_name: str) -> None:
    _setup(step_name)
    from workflows.engine.one_transaction import run_in_one_transaction

    run_in_one_transaction(workflow_type, business_key, data)
    print("ADVANCE_RETURNED", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "one-transaction":
        main_one_transaction(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5])
    else:
        main(int(sys.argv[1]), sys.argv[2])
