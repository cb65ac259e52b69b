"""The sandbox pay page as a buyer in a rush uses it (bench/loadgen.py): GET the
page, POST the card with the page's CSRF token. CSRF is enforced, the page
reads the session once, paying reads it once more only under its lock, and
the card form's HTML (rendered once per process for a fresh form) is the same
as a full render and never carries one buyer's input or errors to another."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments import views
from payments.forms import SandboxCardForm
from tests.pages.conftest import DECLINE, PAY, buy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def pay_path(ga: Any) -> str:
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])
    return urlparse(started.payment_url).path


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True, REMOTE_ADDR="127.1.0.7")


def _sandbox_selects(queries: Any) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"payments_sandboxsession"' in q["sql"]]


def test_the_buyer_pays_with_the_pages_csrf_token(browser: Client, pay_path: str, django_assert_num_queries: Any):
    # when: the page, then the card without and with its token
    with django_assert_num_queries(1):
        page = browser.get(pay_path)
    token = CSRF_INPUT.search(page.content.decode())
    refused = browser.post(pay_path, {"card_number": PAY, "action": "pay"})
    paid = browser.post(pay_path, {"csrfmiddlewaretoken": token.group(1) if token else "", "card_number": PAY})

    # then
    assert page.status_code == 200 and token is not None
    assert refused.status_code == 403
    assert paid.status_code == 302 and paid["Location"].endswith("?status=paid")


def test_paying_charges_the_session_in_one_locking_update(browser: Client, pay_path: str) -> None:
    page = browser.get(pay_path)
    token = CSRF_INPUT.search(page.content.decode())
    assert token is not None

    with CaptureQueriesContext(connection) as queries:
        paid = browser.post(pay_path, {"csrfmiddlewaretoken": token.group(1), "card_number": PAY})

    # then: no read of the session; one conditional UPDATE locks, changes and returns it
    assert paid.status_code == 302
    assert _sandbox_selects(queries.captured_queries) == []
    sqls = [q["sql"] for q in queries.captured_queries]
    charges = [sql for sql in sqls if sql.startswith('UPDATE "payments_sandboxsession"')]
    assert len(charges) == 1 and " RETURNING " in charges[0], sqls


def test_unknown_pages_are_404_whatever_is_posted(client: Client) -> None:
    path = "/pay/sandbox/no-such-token/"
    assert client.get(path).status_code == 404
    assert client.post(path, {"card_number": PAY, "action": "pay"}).status_code == 404
    assert client.post(path, {"card_number": "12", "action": "pay"}).status_code == 404
    assert client.post(path, {"action": "cancel"}).status_code == 404


def test_the_fresh_card_form_is_a_full_render_and_keeps_no_buyers_input(client: Client, pay_path: str) -> None:
    # given: the fragment the process keeps for a fresh form
    fresh = render_to_string(views.CARD_FIELDS_TEMPLATE, {"form": SandboxCardForm(), "outcome": ""})
    assert views._card_fields(SandboxCardForm(), "") == fresh
    assert 'name="card_number"' in fresh and "error" not in fresh

    # when: one buyer is declined, then another opens the page
    declined = client.post(pay_path, {"card_number": DECLINE, "expiry": "12/30", "action": "pay"})
    other = Client().get(pay_path)

    # then: the declined buyer sees their input and the error; the other a fresh form
    assert declined.status_code == 402
    declined_page = declined.content.decode()
    assert 'value="12/30"' in declined_page and 'data-outcome="declined"' in declined_page
    assert other.status_code == 200
    assert fresh in other.content.decode()
    assert "12/30" not in other.content.decode()
