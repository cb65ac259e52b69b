"""Staff see only their own organization's payments, and only with a role
that may see money; nobody edits payments in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from payments.models import Payment, PaymentStatus, WebhookEvent
from payments.services import payment_session_create, webhook_receive
from tests.factories import MembershipFactory, OrganizationFactory
from tests.payments.factories import SANDBOX_SECRET, hmac_header, make_order, sandbox_event
from ticketing.models import Role


def paid_payment(organization, key: str) -> Payment:
    session = payment_session_create(
        order=make_order(organization=organization), provider="sandbox", idempotency_key=key
    )
    body = sandbox_event(session, event_id=f"evt_{key}")
    webhook_receive(
        provider="sandbox", raw_body=body, headers={"Sandbox-Signature": hmac_header(body=body, secret=SANDBOX_SECRET)}
    )
    return Payment.objects.get(session=session)


@pytest.fixture
def two_tenants(db):
    ours, theirs = OrganizationFactory(name="Ours"), OrganizationFactory(name="Theirs")
    return ours, theirs, paid_payment(ours, "ours"), paid_payment(theirs, "theirs")


@pytest.mark.parametrize("role", [Role.FINANCE, Role.OWNER, Role.MANAGER])
def test_money_roles_see_only_their_own_payments(client, two_tenants, role):
    ours, _, our_payment, their_payment = two_tenants
    client.force_login(MembershipFactory(organization=ours, role=role).user)

    page = client.get(reverse("admin:payments_payment_changelist")).content.decode()
    assert our_payment.provider_payment_id in page
    assert their_payment.provider_payment_id not in page
    assert client.get(reverse("admin:payments_payment_change", args=[our_payment.pk])).status_code == 200
    response = client.get(reverse("admin:payments_payment_change", args=[their_payment.pk]))
    assert response.status_code in (302, 404)
    assert their_payment.provider_payment_id.encode() not in response.content

    for model, their_row in [
        ("paymentsession", their_payment.session),
        ("webhookevent", WebhookEvent.objects.get(payment=their_payment)),
    ]:
        page = client.get(reverse(f"admin:payments_{model}_changelist")).content.decode()
        assert str(their_row.reference if model == "paymentsession" else their_row.provider_event_id) not in page


def test_nobody_edits_payments_in_the_admin(client, two_tenants):
    ours, _, our_payment, _ = two_tenants
    client.force_login(MembershipFactory(organization=ours, role=Role.OWNER).user)
    assert client.get(reverse("admin:payments_payment_add")).status_code == 403
    client.post(reverse("admin:payments_payment_change", args=[our_payment.pk]), {"refunded_cents": 2500})
    client.post(reverse("admin:payments_payment_delete", args=[our_payment.pk]), {"post": "yes"})
    our_payment.refresh_from_db()
    assert (our_payment.status, our_payment.refunded_cents) == (PaymentStatus.SUCCEEDED, 0)


@pytest.mark.parametrize("role", [Role.BOX_OFFICE, Role.SCANNER])
def test_roles_without_money_access_are_refused(client, two_tenants, role):
    ours, *_ = two_tenants
    client.force_login(MembershipFactory(organization=ours, role=role).user)
    assert client.get(reverse("admin:payments_payment_changelist")).status_code == 403
    assert client.get(reverse("admin:payments_refund_changelist")).status_code == 403


def test_superusers_see_every_tenant(admin_client, two_tenants):
    *_, our_payment, their_payment = two_tenants
    page = admin_client.get(reverse("admin:payments_payment_changelist")).content.decode()
    assert our_payment.provider_payment_id in page and their_payment.provider_payment_id in page
