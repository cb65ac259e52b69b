"""A worker process for the crash tests: `python -m tests.workflows.crash_child RUN_ID STEP`.

It advances the run and, right after the body of STEP returns and before the
step is recorded, prints BODY_DONE and blocks, so the test can SIGKILL it at
exactly that point. The environment points it at the test database.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def main(run_id: int, step_name: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    import tests.workflows.flows  # noqa: F401 - registers the workflows
    from workflows.engine import advance
    from workflows.engine.attempts import step_body_finished

    def block(sender: Any, *, name: str, **kwargs: Any) -> None:
        if name == step_name:
            print("BODY_DONE", flush=True)
            time.sleep(600)

    step_body_finished.connect(block, weak=False)
    advance(run_id)
    print("ADVANCE_RETURNED", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
