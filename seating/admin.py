"""Seating in the staff admin, scoped to the staff member's organizations.

Plans are built by seating.services.plans (the seeder, imports), not drawn
here: staff rename sections and categories and switch the orphan rule. Seat
state changes only through services: blocking and unblocking are actions,
and the status itself is read-only. Seat holds are history.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count
from django.http import HttpRequest

from seating.models import PriceCategory, Seat, SeatHold, SeatingPlan, SeatStatus, Section
from seating.services.plans import seat_block, seat_unblock
from ticketing.admin.tenant import ReadOnlyTenantAdmin, TenantAdmin
from ticketing.exceptions import DomainError


class _PlanChildInline(admin.TabularInline):
    """Children of a plan follow the plan's permissions (TenantAdmin), not
    Django's model permissions, which staff users do not carry. No adding or
    deleting: seats hang off these rows (see the module docstring)."""

    extra = 0
    can_delete = False

    def _plan_admin(self) -> admin.ModelAdmin:
        return self.admin_site._registry[SeatingPlan]

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._plan_admin().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._plan_admin().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class SectionInline(_PlanChildInline):
    model = Section
    fields = ("name", "position")


class PriceCategoryInline(_PlanChildInline):
    model = PriceCategory
    fields = ("code", "name", "color", "ticket_type")
    readonly_fields = ("code", "ticket_type")


@admin.register(SeatingPlan)
class SeatingPlanAdmin(TenantAdmin):
    list_display = ("name", "event", "forbid_orphans", "seat_count")
    list_select_related = ("event",)
    search_fields = ("name", "event__name")
    fields = ("organization", "event", "name", "width", "height", "forbid_orphans")
    readonly_fields = ("organization", "event")
    inlines = (SectionInline, PriceCategoryInline)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return super().get_queryset(request).annotate(n_seats=Count("sections__rows__seats"))

    @admin.display(description="seats", ordering="n_seats")
    def seat_count(self, obj: SeatingPlan) -> int:
        return getattr(obj, "n_seats", 0)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # built with seating.services.plans.seating_plan_create

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        # Deleting a plan deletes its seats: never once any is held or sold.
        if obj is None:
            return True
        taken = Seat.objects.filter(row__section__plan_id=obj.pk, status__in=[SeatStatus.HELD, SeatStatus.SOLD])
        return not taken.exists()


@admin.register(Seat)
class SeatAdmin(TenantAdmin):
    list_display = ("label", "section_name", "category", "status", "is_accessible", "hold")
    list_select_related = ("row__section", "category", "hold")
    list_filter = (
        "status",
        ("category", admin.RelatedOnlyFieldListFilter),
        ("event", admin.RelatedOnlyFieldListFilter),
        "is_accessible",
    )
    search_fields = ("label",)
    fields = ("label", "event", "row", "number", "category", "status", "hold", "is_accessible", "x", "y")
    readonly_fields = ("event", "row", "number", "category", "status", "hold")
    actions = ("block_seats", "unblock_seats")

    @admin.display(description="section", ordering="row__section__name")
    def section_name(self, obj: Seat) -> str:
        return obj.row.section.name

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # seats come with their plan

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # tickets point at seats; block a seat instead

    def _changeable(self, request: HttpRequest, queryset: models.QuerySet[Seat]) -> models.QuerySet[Seat]:
        # The changelist shows every organization the user may *view*; act
        # only on those where they may *change*.
        org_ids = self._org_ids(request, self.change_roles)
        return queryset if org_ids is None else queryset.filter(organization_id__in=org_ids)

    def _apply(self, request: HttpRequest, queryset: models.QuerySet[Seat], service: Any, verb: str) -> None:
        done, failed = 0, []
        for seat_id, label in self._changeable(request, queryset).order_by("pk").values_list("pk", "label"):
            try:
                service(seat_id=seat_id, by=request.user, reason=f"{verb} in the admin")
                done += 1
            except DomainError as exc:
                failed.append(f"{label}: {exc.message}")
        if done:
            self.message_user(request, f"{done} seat(s) {verb}.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not changed: " + "; ".join(failed), messages.WARNING)

    @admin.action(description="Block the selected seats (take them off sale)", permissions=["change"])
    def block_seats(self, request: HttpRequest, queryset: models.QuerySet[Seat]) -> None:
        self._apply(request, queryset, seat_block, "blocked")

    @admin.action(description="Unblock the selected seats (put them on sale)", permissions=["change"])
    def unblock_seats(self, request: HttpRequest, queryset: models.QuerySet[Seat]) -> None:
        self._apply(request, queryset, seat_unblock, "unblocked")


@admin.register(SeatHold)
class SeatHoldAdmin(ReadOnlyTenantAdmin):
    list_display = ("short_token", "event", "status", "expires_at", "seat_count", "reference", "created_at")
    list_select_related = ("event",)
    list_filter = ("status",)
    search_fields = ("reference", "token")
    date_hierarchy = "created_at"

    @admin.display(description="token")
    def short_token(self, obj: SeatHold) -> str:
        return obj.token[:8]

    @admin.display(description="seats")
    def seat_count(self, obj: SeatHold) -> int:
        return len(obj.seat_ids)
