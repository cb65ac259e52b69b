"""Workflow runs in the staff admin: read-only history, two operator actions.

Runs are scoped to the staff's organizations (platform runs without an
organization are for superusers). Rows are never edited here; owners and
managers may "retry now" (skip a retry backoff, release an expired lease,
or retry a compensation that gave up) and "cancel" (compensate and stop),
both through the engine, which locks the run and records who did it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ticketing.admin.tenant import ReadOnlyTenantAdmin
from workflows import selectors
from workflows.engine import cancel, retry_now
from workflows.models import WorkflowRun, WorkflowSignal, WorkflowStep


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        minutes = int(selectors.STUCK_MARGIN.total_seconds() // 60)
        return [("yes", f"Stuck (expired lease, or due for over {minutes} min)")]

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(pk__in=selectors.stuck_runs().values("pk"))
        return queryset


class _RunChildInline(admin.TabularInline):
    """Rows of a run follow the run's permissions (TenantAdmin), not Django's
    model permissions, which staff users do not carry. Read-only."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.admin_site._registry[WorkflowRun].has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class WorkflowStepInline(_RunChildInline):
    model = WorkflowStep
    fk_name = "run"
    ordering = ("sequence",)
    fields = (
        "sequence",
        "kind",
        "name",
        "status",
        "attempt",
        "attempts",
        "error_message",
        "compensates",
        "child_run",
        "started_at",
        "duration_ms",
        "next_attempt_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return super().get_queryset(request).select_related("compensates", "child_run")

    @admin.display(description="attempts (when, ms, error)")
    def attempts(self, obj: WorkflowStep) -> str:
        items = format_html_join(
            "",
            "<li>#{} {} {} ms {}</li>",
            (
                (entry["attempt"], entry["at"][:19], entry["ms"], (entry.get("error") or {}).get("message", "ok"))
                for entry in obj.history
            ),
        )
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="error")
    def error_message(self, obj: WorkflowStep) -> str:
        return (obj.error or {}).get("message", "")


class WorkflowSignalInline(_RunChildInline):
    model = WorkflowSignal
    fields = ("name", "dedup_key", "consumed", "received_at", "consumed_at", "payload")
    readonly_fields = fields


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyTenantAdmin):
    list_display = (
        "id",
        "workflow_type",
        "version",
        "business_key",
        "status",
        "organization",
        "wake_at",
        "created_at",
        "duration",
    )
    list_select_related = ("organization",)
    list_filter = ("workflow_type", "status", StuckFilter)
    search_fields = ("business_key",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "organization",
        "workflow_type",
        "version",
        "business_key",
        "status",
        "parent",
        "pretty_input",
        "pretty_output",
        "pretty_error",
        "wake_at",
        "deadline",
        "cancel_requested",
        "lease_owner",
        "lease_expires_at",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    inlines = (WorkflowStepInline, WorkflowSignalInline)
    actions = ("retry_now_action", "cancel_action")

    # Actions change runs through the engine, so they are allowed to the roles
    # that may change (owner, manager) although the rows themselves are read-only.
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.change_roles, None)

    def _operable(self, request: HttpRequest, queryset: models.QuerySet[WorkflowRun]) -> list[int]:
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is not None:
            queryset = queryset.filter(organization_id__in=org_ids)
        return list(queryset.order_by("pk").values_list("pk", flat=True))

    @admin.action(description="Retry now", permissions=["operate"])
    def retry_now_action(self, request: HttpRequest, queryset: models.QuerySet[WorkflowRun]) -> None:
        run_ids = self._operable(request, queryset)
        done = sum(retry_now(run_id, by=request.user, reason="retry now in the admin") for run_id in run_ids)
        self.message_user(request, f"{done} of {len(run_ids)} run(s) queued to retry now.", messages.SUCCESS)

    @admin.action(description="Cancel (compensate and stop)", permissions=["operate"])
    def cancel_action(self, request: HttpRequest, queryset: models.QuerySet[WorkflowRun]) -> None:
        run_ids = self._operable(request, queryset)
        done = sum(cancel(run_id, by=request.user, reason="cancelled in the admin") for run_id in run_ids)
        self.message_user(request, f"{done} of {len(run_ids)} run(s) cancelled.", messages.SUCCESS)

    @admin.display(description="duration")
    def duration(self, obj: WorkflowRun) -> str:
        end = obj.finished_at or timezone.now()
        return str(timedelta(seconds=int((end - obj.created_at).total_seconds())))

    @admin.display(description="input")
    def pretty_input(self, obj: WorkflowRun) -> str:
        return _pretty(obj.input)

    @admin.display(description="output")
    def pretty_output(self, obj: WorkflowRun) -> str:
        return _pretty(obj.output)

    @admin.display(description="error")
    def pretty_error(self, obj: WorkflowRun) -> str:
        return _pretty(obj.error)


def _pretty(value: Any) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))
