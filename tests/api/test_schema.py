"""Schemathesis against /api/schema/: every GET operation, with an owner's
token, bounded in examples and time. No 5xx, and every response (errors
included) matches the documented schema, status codes and content type."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import World, token_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(world_a: World) -> Iterator[Any]:
    # Like Django's test client: the WSGI handler must not close the test's
    # connection (and its transaction) at the end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def owner_headers(world_a: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(world_a.organization, 'owner')}"}


# Per operation; about 20 GET operations, so well under the time budget.
EXAMPLES_PER_OPERATION = 12
TIME_BUDGET_SECONDS = 60


def test_api_conforms_to_its_schema(api_schema: Any, owner_headers: dict[str, str]) -> None:
    started = time.monotonic()
    operations = [result.ok() for result in api_schema.include(method="GET").get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=owner_headers, checks=CHECKS)

        check()
        assert time.monotonic() - started < TIME_BUDGET_SECONDS, "schemathesis run over its time budget"


PUBLIC_WRITE_EXAMPLES = 25


def test_public_writes_conform_to_the_schema(api_schema: Any) -> None:
    """The public POSTs (checkout start, buyer cancel, seat hold and its
    release) without credentials: whatever the body, a documented 4xx or a
    checkout or hold, never a 5xx."""
    started = time.monotonic()
    public = api_schema.include(path_regex="^/api/v1/public/", method="POST")
    operations = [result.ok() for result in public.get_all_operations()]
    assert len(operations) == 4
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=PUBLIC_WRITE_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
    assert time.monotonic() - started < TIME_BUDGET_SECONDS, "schemathesis run over its time budget"


def test_the_schema_documents_every_endpoint(client: Any, db: None) -> None:
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = set(document["paths"])
    assert "/api/v1/orders/" in paths and "/api/v1/public/events/" in paths
    assert "/api/v1/workflow-runs/{id}/" in paths and "/api/v1/events/{id}/seat-holds/" in paths
    assert {
        "/api/v1/public/checkouts/",
        "/api/v1/public/orders/{code}/",
        "/api/v1/public/orders/{code}/cancel/",
        "/api/v1/public/events/{id}/seat-holds/",
        "/api/v1/public/seat-holds/{token}/release/",
        "/api/v1/orders/{id}/cancel/",
        "/api/v1/orders/{id}/refunds/",
        "/api/v1/tickets/{id}/transfer/",
        "/api/v1/tickets/{id}/revoke/",
    } <= paths
    create = document["paths"]["/api/v1/events/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert {"400", "401", "403", "404", "409", "422", "429"} <= set(create["responses"])
    assert client.get("/api/docs/").status_code == 200
