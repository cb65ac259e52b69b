from __future__ import annotations

import pytest
from django.db import connection

from tests.factories import EventFactory, MembershipFactory, OrganizationFactory, TicketTypeFactory, UserFactory
from tests.invariants import assert_inventory_consistent, ledger_problems


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ledger_unverified(reason): the test leaves a ledger that does not verify on purpose; "
        "the after-test ledger check skips it (say why)",
    )


@pytest.fixture(autouse=True)
def _eager_celery_by_default(request: pytest.FixtureRequest):
    """Tests run Celery tasks inline unless they start a real worker."""
    from config.celery import app

    eager = "celery_worker" not in request.keywords
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def _ledger_verified_at_session_end(django_db_setup, django_db_blocker):
    """At the very end, on the test database (before it is dropped):
    `manage.py verify_ledger` must exit 0 on whatever the suite left there.
    Requested by the first test that uses the database."""
    yield
    import io

    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with django_db_blocker.unblock():
        try:
            call_command("verify_ledger", stdout=out, stderr=err)
        except SystemExit as exc:
            code = exc.code
    if code != 0:
        pytest.fail(f"verify_ledger exited {code} after the suite:\n{err.getvalue()}", pytrace=False)


@pytest.fixture(autouse=True)
def _ledger_verified_after_each_test(request: pytest.FixtureRequest):
    """After every test that used the database: the ledger verifies (the
    checks of `manage.py verify_ledger`), unless it is empty (one query) or
    the test is marked ledger_unverified. The database fixture is set up
    first, so this runs before its rollback or flush."""
    uses_db = "_django_db_helper" in request.fixturenames or request.node.get_closest_marker("django_db")
    if not uses_db:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    request.getfixturevalue("_ledger_verified_at_session_end")
    yield
    if request.node.get_closest_marker("ledger_unverified") is not None:
        return
    problems = ledger_problems()
    assert not problems, "the ledger does not verify after this test:\n" + "\n".join(problems)


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
