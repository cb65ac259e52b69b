from __future__ import annotations

import pytest
from django.db import connection

from tests.factories import EventFactory, MembershipFactory, OrganizationFactory, TicketTypeFactory, UserFactory
from tests.invariants import assert_inventory_consistent


@pytest.fixture(autouse=True)
def _eager_celery_by_default(request: pytest.FixtureRequest):
    """Tests run Celery tasks inline unless they start a real worker."""
    from config.celery import app

    eager = "celery_worker" not in request.keywords
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def require_postgres(db):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL: run it with DATABASE_URL=postgres://...")


@pytest.fixture
def check_inventory():
    """Use in race and fault tests: checks the invariants after the test body."""
    yield
    assert_inventory_consistent()


@pytest.fixture
def organization(db):
    return OrganizationFactory()


@pytest.fixture
def event(organization):
    return EventFactory(organization=organization)


@pytest.fixture
def ticket_type(event):
    return TicketTypeFactory(event=event)


@pytest.fixture
def staff_user(organization):
    return MembershipFactory(organization=organization).user


@pytest.fixture
def make_user():
    return UserFactory
