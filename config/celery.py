"""The Celery application. Settings (broker, acks_late, prefetch, the beat
schedule) come from config.settings under the CELERY_ namespace.

Database connections live across tasks, as they do across requests. Celery's
Django fixup closes them around every task unless CELERY_DB_REUSE_MAX is set:
a new PostgreSQL connection per task, which doubled pretix's database CPU
(PERFORMANCE.md) and cost ours a connection per ticket e-mail. The setting
leaves the fixup a close every CELERY_DB_REUSE_MAX tasks; before and after
each task the connections are tidied as Django tidies them around a request
(close_old_connections): kept for CONN_MAX_AGE, closed if they broke or
errored, and health-checked before their next query, so a worker goes on
by itself after a database restart."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ticketing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="config.celery.tidy_connections_before")
@task_postrun.connect(dispatch_uid="config.celery.tidy_connections_after")
def tidy_connections(*, task: Any, **kwargs: Any) -> None:
    # An eager task runs inside its caller's request or transaction, which
    # owns the connection.
    if not getattr(task.request, "is_eager", False):
        close_old_connections()
