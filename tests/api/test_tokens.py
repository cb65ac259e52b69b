"""API tokens: stored hashed, shown once in the admin, revocable, last-used time."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.api.conftest import client_for
from tests.factories import MembershipFactory, OrganizationFactory
from ticketing.models import ApiToken, Role
from ticketing.services.api_tokens import api_token_authenticate, api_token_create, api_token_revoke


@pytest.fixture
def organization_with_token(db):
    organization = OrganizationFactory()
    token, raw = api_token_create(organization=organization, name="POS", role=Role.BOX_OFFICE)
    return organization, token, raw


def test_only_the_hash_is_stored(organization_with_token):
    _, token, raw = organization_with_token
    row = ApiToken.objects.get(pk=token.pk)
    assert raw.startswith(f"tk_{row.prefix}_")
    assert row.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().first())


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_bearer_and_token_keywords_authenticate(organization_with_token, keyword):
    _, _, raw = organization_with_token
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    assert client.get("/api/v1/orders/").status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Bearer tk_abc_def", "Bearer", "Bearer a b", "Token tk_", "Bearer tk_x_y_z\u00e9"],
)
def test_bad_tokens_get_401_in_the_error_format(organization_with_token, header):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/orders/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert set(response.json()) == {"code", "message", "detail"}


def test_a_token_with_the_right_prefix_but_a_wrong_secret_is_refused(organization_with_token):
    _, token, raw = organization_with_token
    forged = f"tk_{token.prefix}_{'x' * 43}"
    assert forged != raw
    assert api_token_authenticate(raw=forged) is None
    assert client_for(forged).get("/api/v1/orders/").status_code == 401


def test_revoked_tokens_stop_working(organization_with_token):
    _, token, raw = organization_with_token
    assert client_for(raw).get("/api/v1/orders/").status_code == 200
    revoked = api_token_revoke(token_id=token.pk)
    first_revocation = revoked.revoked_at
    assert client_for(raw).get("/api/v1/orders/").status_code == 401
    # Revoking again keeps the first time.
    assert api_token_revoke(token_id=token.pk).revoked_at == first_revocation


def test_last_used_is_written_at_most_once_a_minute(organization_with_token, django_assert_num_queries):
    _, token, raw = organization_with_token
    now = timezone.now()
    api_token_authenticate(raw=raw, now=now)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now

    # Within the minute: a read, no write.
    with django_assert_num_queries(1):
        api_token_authenticate(raw=raw, now=now + timedelta(seconds=30))
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now

    later = now + timedelta(seconds=61)
    api_token_authenticate(raw=raw, now=later)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == later


def test_admin_creates_a_token_and_shows_the_secret_once(client, db):
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    client.force_login(owner)
    response = client.post(
        reverse("admin:ticketing_apitoken_add"),
        {"organization": organization.pk, "name": "Integration", "role": Role.FINANCE},
        follow=True,
    )
    assert response.status_code == 200
    shown = re.findall(r"tk_[0-9a-f]{12}_[A-Za-z0-9_\-]+", response.content.decode())
    assert len(shown) == 1
    token = ApiToken.objects.get(name="Integration")
    assert token.role == Role.FINANCE and token.created_by == owner
    assert token.secret_hash == hashlib.sha256(shown[0].encode()).hexdigest()
    # The change page never shows it again.
    page = client.get(reverse("admin:ticketing_apitoken_change", args=[token.pk])).content.decode()
    assert shown[0] not in page
    assert client_for(shown[0]).get("/api/v1/orders/").status_code == 200


def test_a_manager_cannot_manage_tokens_in_the_admin(client, db):
    organization = OrganizationFactory()
    manager = MembershipFactory(organization=organization, role=Role.MANAGER).user
    client.force_login(manager)
    response = client.post(
        reverse("admin:ticketing_apitoken_add"), {"organization": organization.pk, "name": "x", "role": "owner"}
    )
    assert response.status_code == 403
    assert not ApiToken.objects.exists()
