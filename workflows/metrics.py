"""Prometheus metrics of the workflows layer, served at /metrics.

Counters and histograms are recorded by the engine in the process where
things happen (after commit, so a rolled-back change is never counted). With
several processes (gunicorn workers, Celery workers) set
PROMETHEUS_MULTIPROC_DIR and the view aggregates them. Gauges about the
backlog (overdue runs, outbox) are computed from the database at scrape time,
so they are right whichever process serves the scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from workflows import selectors
from workflows.models import ACTIVE_STATUSES, OutboxMessage, WorkflowRun

logger = logging.getLogger(__name__)

RUNS_STARTED = Counter("workflow_runs_started", "Workflow runs started.", ["workflow_type"])
RUNS_FINISHED = Counter("workflow_runs_finished", "Workflow runs finished.", ["workflow_type", "status"])
STEP_ATTEMPTS = Counter(
    "workflow_step_attempts", "Attempts of actions and compensations.", ["workflow_type", "kind", "outcome"]
)
COMPENSATIONS = Counter("workflow_compensations", "Compensations finished.", ["workflow_type", "outcome"])
RUN_DURATION = Histogram(
    "workflow_run_duration_seconds",
    "From start to finish of a run.",
    ["workflow_type", "status"],
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 86400, 7 * 86400),
)
STEP_DURATION = Histogram(
    "workflow_step_duration_seconds",
    "Duration of one attempt of an action or compensation.",
    ["workflow_type", "kind"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)


def run_started(workflow_type: str) -> None:
    RUNS_STARTED.labels(workflow_type).inc()


def run_finished(workflow_type: str, status: str, created_at: datetime, finished_at: datetime) -> None:
    RUNS_FINISHED.labels(workflow_type, status).inc()
    RUN_DURATION.labels(workflow_type, status).observe((finished_at - created_at).total_seconds())


def step_attempted(workflow_type: str, kind: str, *, ok: bool, seconds: float) -> None:
    STEP_ATTEMPTS.labels(workflow_type, kind, "ok" if ok else "error").inc()
    STEP_DURATION.labels(workflow_type, kind).observe(seconds)


def compensation_finished(workflow_type: str, *, ok: bool) -> None:
    COMPENSATIONS.labels(workflow_type, "completed" if ok else "failed").inc()


class WorkflowBacklogCollector(Collector):
    """Gauges read from the database at scrape time."""

    def describe(self) -> Iterator[Metric]:
        # Registration asks for the names; answering here keeps it from
        # querying the database at import time.
        yield GaugeMetricFamily("workflow_runs_overdue", "")
        yield GaugeMetricFamily("workflow_runs_active", "", labels=["workflow_type", "status"])
        yield GaugeMetricFamily("workflow_outbox_pending", "")
        yield GaugeMetricFamily("workflow_outbox_oldest_age_seconds", "")

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        try:
            overdue = selectors.stuck_runs(now=now).count()
            active = (
                WorkflowRun.objects.filter(status__in=ACTIVE_STATUSES)
                .values_list("workflow_type", "status")
                .annotate(n=Count("id"))
                .order_by()
            )
            active_rows = list(active)
            outbox = OutboxMessage.objects.filter(published_at__isnull=True).aggregate(
                n=Count("id"), oldest=Min("created_at")
            )
        except DatabaseError:
            logger.warning("workflow backlog metrics unavailable", exc_info=True)
            return
        yield GaugeMetricFamily(
            "workflow_runs_overdue", "Active runs past their wake-up or lease by the stuck margin.", value=overdue
        )
        by_status = GaugeMetricFamily(
            "workflow_runs_active", "Active runs by type and status.", labels=["workflow_type", "status"]
        )
        for workflow_type, status, n in active_rows:
            by_status.add_metric([workflow_type, status], n)
        yield by_status
        yield GaugeMetricFamily("workflow_outbox_pending", "Outbox messages not yet published.", value=outbox["n"])
        age = (now - outbox["oldest"]).total_seconds() if outbox["oldest"] else 0.0
        yield GaugeMetricFamily(
            "workflow_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox message.", value=age
        )


_backlog = WorkflowBacklogCollector()
REGISTRY.register(_backlog)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. If settings.METRICS_TOKEN is set, the scraper
    must send it as a bearer token (the numbers describe the business)."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if token and not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse(status=401)
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(_backlog)
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")
