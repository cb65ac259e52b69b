"""Admin for the API: tokens (secret shown once), webhook subscriptions and
the webhook delivery log with a resend action. Owners only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from ticketing.admin.tenant import ReadOnlyTenantAdmin, TenantAdmin
from ticketing.models import WEBHOOK_EVENT_TYPES, ApiToken, WebhookDelivery, WebhookSubscription
from ticketing.services.api_tokens import api_token_create, api_token_revoke
from ticketing.services.outbound_webhooks import webhook_delivery_resend

OWNERS = frozenset({"owner"})


@admin.register(ApiToken)
class ApiTokenAdmin(TenantAdmin):
    view_roles = OWNERS
    change_roles = OWNERS
    list_display = ["name", "organization", "role", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", "organization"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[Any]:
        if obj is None:
            return ["organization", "name", "role"]
        return ["organization", "name", "role", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        # A token's scope never changes: revoke it and create another.
        return ["organization", "role", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is not None and obj.organization_id not in org_ids:
            raise PermissionDenied("You can only manage your own organization's tokens.")
        if change:
            obj.save(update_fields=["name"])
            return
        token, secret = api_token_create(
            organization=obj.organization, name=obj.name, role=obj.role, created_by=request.user
        )
        obj.pk = token.pk
        obj.prefix, obj.secret_hash, obj.created_at = token.prefix, token.secret_hash, token.created_at
        self.message_user(
            request,
            f"Copy this token now; it is stored hashed and will not be shown again: {secret}",
            level=messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays for the audit trail

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        done = 0
        for token in queryset:
            if self.has_change_permission(request, token):
                api_token_revoke(token_id=token.pk)
                done += 1
        self.message_user(request, f"Revoked {done} token(s).", level=messages.SUCCESS)


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in WEBHOOK_EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ["organization", "url", "event_types", "description", "is_active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Use an http or https URL.")
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(TenantAdmin):
    view_roles = OWNERS
    change_roles = OWNERS
    form = WebhookSubscriptionForm
    list_display = ["url", "organization", "is_active", "created_at"]
    list_filter = ["is_active", "organization"]
    readonly_fields = ["secret", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyTenantAdmin):
    view_roles = OWNERS
    change_roles = OWNERS
    list_display = [
        "created_at",
        "event_type",
        "subscription",
        "status",
        "attempts",
        "response_status",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "subscription__url"]
    actions = ["resend"]

    @admin.action(description="Resend selected deliveries")
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done = 0
        for delivery in queryset:
            if self._allowed(request, self.change_roles, delivery):
                webhook_delivery_resend(delivery_id=delivery.pk)
                done += 1
        self.message_user(request, f"Queued {done} delivery(ies) again.", level=messages.SUCCESS)
