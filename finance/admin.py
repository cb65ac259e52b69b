"""Admin for finance staff (owners and finance members), scoped to their
organizations: fee schedules (publish new versions, never edit), settlements
(approve, export the statement as CSV), payouts, and a read-only ledger
browser (accounts with balances, transactions with their entries and the
business object behind them). Nothing here edits a ledger row."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html

from finance.exports import csv_streaming_response, statement_lines_csv, statement_summary_csv
from finance.fees import FeeRules
from finance.models import (
    Account,
    FeeSchedule,
    JournalEntry,
    JournalTransaction,
    OrganizationFinanceSettings,
    Payout,
    Settlement,
    SettlementStatus,
)
from finance.selectors import account_balance
from finance.services import fee_schedule_publish, settlement_approve
from ticketing.admin.tenant import ReadOnlyTenantAdmin, TenantAdmin

FINANCE_ROLES = frozenset({"owner", "finance"})

# A schedule's numbers: FeeRules' fields but its version, which publishing sets.
_FEE_FIELDS = tuple(f.name for f in fields(FeeRules) if f.name != "version")


@admin.register(FeeSchedule)
class FeeScheduleAdmin(TenantAdmin):
    """Adding publishes a new version; an existing version is read-only."""

    view_roles = FINANCE_ROLES
    change_roles = FINANCE_ROLES
    list_display = ["organization", "event", "version", "platform_rate_bp", "processor_rate_bp", "created_at"]
    list_filter = ["organization"]
    fields = ("organization", "event", "version", *_FEE_FIELDS, "created_at")
    readonly_fields = ("version", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # versions are never edited
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is not None and obj.organization_id not in org_ids:
            raise PermissionDenied("You can only change your own organization's data.")
        published = fee_schedule_publish(
            organization_id=obj.organization_id,
            event_id=obj.event_id,
            **{name: getattr(obj, name) for name in _FEE_FIELDS},
        )
        obj.pk, obj.version, obj.created_at = published.pk, published.version, published.created_at


@admin.register(OrganizationFinanceSettings)
class OrganizationFinanceSettingsAdmin(TenantAdmin):
    view_roles = FINANCE_ROLES
    change_roles = FINANCE_ROLES
    list_display = [
        "organization",
        "clearing_days",
        "reserve_percent_bp",
        "reserve_days",
        "require_settlement_approval",
    ]


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyTenantAdmin):
    """Statements export as CSV, streamed (finance.exports): the summary
    (one row per settlement), or every posting each settlement covers, also
    from a settlement's page (<id>/statement.csv)."""

    view_roles = FINANCE_ROLES
    change_roles = FINANCE_ROLES
    list_display = ["id", "organization", "event", "cutoff", "status", "gross_cents", "reserve_cents", "net_cents"]
    list_filter = ["status", "organization"]
    date_hierarchy = "cutoff"
    actions = ["approve", "export_csv", "export_lines_csv"]
    readonly_fields = [f.name for f in Settlement._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Actions need "change"; the form itself stays read-only.
        return self._allowed(request, self.change_roles, obj)

    def get_urls(self) -> list[URLPattern]:
        statement = path(
            "<int:settlement_id>/statement.csv",
            self.admin_site.admin_view(self.statement_csv_view),
            name="finance_settlement_statement",
        )
        return [statement, *super().get_urls()]

    @admin.action(description="Approve the selected settlements (moves their money)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        approved = 0
        for settlement in queryset.filter(status=SettlementStatus.AWAITING_APPROVAL):
            approved += settlement_approve(settlement_id=settlement.pk, by=request.user)[1]
        self.message_user(request, f"{approved} settlements approved.", messages.SUCCESS)

    @admin.action(description="Export the statements as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> StreamingHttpResponse:
        return csv_streaming_response(statement_summary_csv(queryset), filename="settlements.csv")

    @admin.action(description="Export the statements with every posting as CSV")
    def export_lines_csv(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> StreamingHttpResponse:
        return csv_streaming_response(statement_lines_csv(queryset), filename="settlement-lines.csv")

    def statement_csv_view(self, request: HttpRequest, settlement_id: int) -> StreamingHttpResponse:
        """One settlement's statement with its postings (scoped like the list)."""
        settlements = self.get_queryset(request).filter(pk=settlement_id)
        settlement = settlements.first()
        if settlement is None:
            raise Http404("No such settlement.")
        if not self.has_view_permission(request, settlement):
            raise PermissionDenied
        return csv_streaming_response(statement_lines_csv(settlements), filename=f"settlement-{settlement_id}.csv")


@admin.register(Payout)
class PayoutAdmin(ReadOnlyTenantAdmin):
    view_roles = FINANCE_ROLES
    change_roles = frozenset()
    list_display = ["id", "organization", "amount_cents", "currency", "status", "provider_payout_id", "created_at"]
    list_filter = ["status", "organization"]
    search_fields = ["idempotency_key", "provider_payout_id"]


@admin.register(Account)
class AccountAdmin(ReadOnlyTenantAdmin):
    view_roles = FINANCE_ROLES
    change_roles = frozenset()
    list_display = ["code", "type", "currency", "organization", "balance"]
    list_filter = ["kind", "type", "currency"]
    search_fields = ["code"]

    @admin.display(description="Balance (cents, normal side)")
    def balance(self, obj: Account) -> int:
        return account_balance(account=obj)


class JournalEntryInline(admin.TabularInline):
    model = JournalEntry
    extra = 0
    can_delete = False
    fields = ("account", "side", "amount_cents", "currency")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JournalTransaction)
class JournalTransactionAdmin(ReadOnlyTenantAdmin):
    view_roles = FINANCE_ROLES
    change_roles = frozenset()
    list_display = ["id", "idempotency_key", "kind", "effective_at", "organization", "source"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "reference", "source_id"]
    date_hierarchy = "effective_at"
    inlines = [JournalEntryInline]
    readonly_fields = [f.name for f in JournalTransaction._meta.fields] + ["source"]

    @admin.display(description="Source")
    def source(self, obj: JournalTransaction) -> str:
        if not obj.source_type:
            return "-"
        app_label, model = obj.source_type.split(".", 1)
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[obj.source_id])
        except NoReverseMatch:
            return f"{obj.source_type} {obj.source_id}"
        return format_html('<a href="{}">{} {}</a>', url, obj.source_type, obj.source_id)
