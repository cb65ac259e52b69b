"""Staff see their organization's runs, find stuck ones, and retry or cancel them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from tests.factories import MembershipFactory, OrganizationFactory
from tests.workflows.helpers import fresh, rewind
from ticketing.models import AuditLogEntry, Role
from workflows.engine import Context, RetryPolicy, start, workflow
from workflows.models import RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:workflows_workflowrun_changelist"
switches = {"provider_down": True}


def _call_provider(key: str) -> str:
    if switches["provider_down"]:
        raise ConnectionError("provider is down")
    return "ok"


@workflow("test.admin_flow")
def admin_flow(ctx: Context) -> str:
    ctx.step("book", lambda: "booked")
    return ctx.step("call", _call_provider, external=True, retry=RetryPolicy(max_attempts=5, initial_delay=600))


@pytest.fixture
def tenants():
    switches["provider_down"] = True
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    our_run = start("test.admin_flow", "order:ours", organization=ours)
    their_run = start("test.admin_flow", "order:theirs", organization=theirs)
    manager = MembershipFactory(organization=ours, role=Role.MANAGER).user
    finance = MembershipFactory(organization=ours, role=Role.FINANCE).user
    return fresh(our_run), fresh(their_run), manager, finance


def test_staff_see_only_their_organizations_runs_and_the_step_timeline(client, tenants) -> None:
    our_run, their_run, manager, _ = tenants
    client.force_login(manager)

    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "order:ours" in page and "order:theirs" not in page

    page = client.get(reverse("admin:workflows_workflowrun_change", args=[our_run.pk])).content.decode()
    assert "book" in page and "provider is down" in page  # each attempt, with its error
    response = client.get(reverse("admin:workflows_workflowrun_change", args=[their_run.pk]))
    assert response.status_code in (302, 404) and b"order:theirs" not in response.content


def test_the_stuck_filter_finds_runs_past_their_wake_up(client, tenants) -> None:
    our_run, _, manager, _ = tenants
    late = start("test.admin_flow", "order:late", organization=our_run.organization)
    rewind(late, seconds=600 + 5 * 60)  # its retry was due five minutes ago and nobody came
    client.force_login(manager)

    page = client.get(reverse(CHANGELIST), {"stuck": "yes"}).content.decode()

    assert "order:late" in page and "order:ours" not in page


def test_a_manager_retries_a_run_now(client, tenants) -> None:
    our_run, their_run, manager, _ = tenants
    switches["provider_down"] = False
    client.force_login(manager)

    client.post(reverse(CHANGELIST), {"action": "retry_now_action", "_selected_action": [our_run.pk, their_run.pk]})

    assert fresh(our_run).status == RunStatus.COMPLETED
    assert fresh(their_run).status == RunStatus.WAITING  # not theirs to retry
    assert AuditLogEntry.objects.get(object_id=our_run.pk, transition="retry_now").actor == manager


def test_a_manager_cancels_a_run(client, tenants) -> None:
    our_run, _, manager, _ = tenants
    client.force_login(manager)

    client.post(reverse(CHANGELIST), {"action": "cancel_action", "_selected_action": [our_run.pk]})

    assert fresh(our_run).status == RunStatus.CANCELLED
    assert AuditLogEntry.objects.get(object_id=our_run.pk, transition="cancel").actor == manager


def test_finance_staff_may_look_but_not_operate(client, tenants) -> None:
    our_run, _, _, finance = tenants
    client.force_login(finance)

    response = client.get(reverse(CHANGELIST))
    assert "order:ours" in response.content.decode()
    assert "retry_now_action" not in response.content.decode()

    client.post(reverse(CHANGELIST), {"action": "cancel_action", "_selected_action": [our_run.pk]})
    run = fresh(our_run)
    assert run.status == RunStatus.WAITING and not run.cancel_requested
    assert run.wake_at > run.updated_at + timedelta(seconds=60)
