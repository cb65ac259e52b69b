"""The scan endpoint (device tokens) and the staff endpoints (devices,
scans), over HTTP: authentication, hostile input, tenancy, throttling."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from scanning.models import AdmissionState, Device, Scan
from tests.scanning.conftest import Gate, code_of, device_client, make_gate
from ticketing.models import AuditLogEntry, Ticket
from ticketing.services.api_tokens import api_token_create

SCANS = "/api/v1/scanning/scans/"
DEVICES = "/api/v1/scanning/devices/"


def _staff(gate: Gate, role: str = "owner") -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_token_create(organization=gate.organization, name='t', role=role)[1]}"
    )
    return client


def _body(code: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "nonce": uuid.uuid4().hex, **extra}


def _assert_error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    if code:
        assert body["code"] == code


# --- the device's scan --------------------------------------------------------------------


def test_a_device_scans_and_replays(gate: Gate) -> None:
    ticket = gate.ticket()
    client = device_client(gate.token)
    body = _body(code_of(ticket), direction="in", device_time="2030-01-01T20:00:00+01:00", device_sequence=7)

    first = client.post(SCANS, body, format="json")
    assert first.status_code == 201, first.json()
    answer = first.json()
    assert answer["result"] == "ok" and answer["admitted"] is True and answer["replayed"] is False
    assert answer["ticket"] == {
        "id": ticket.pk,
        "holder_name": "Ada Lovelace",
        "seat_label": None,
        "ticket_type": gate.ticket_type.name,
    }
    assert answer["reason"]

    again = client.post(SCANS, body, format="json")
    assert again.status_code == 200
    assert {**again.json(), "replayed": False} == answer

    second_entry = client.post(SCANS, _body(code_of(ticket)), format="json")
    assert second_entry.status_code == 201
    assert second_entry.json()["result"] == "already_inside" and second_entry.json()["admitted"] is False
    assert Scan.objects.filter(device=gate.device).count() == 2
    scan = Scan.objects.get(pk=answer["scan"])
    assert scan.device_sequence == 7 and scan.device_time.isoformat() == "2030-01-01T19:00:00+00:00"


def test_a_reused_nonce_with_another_code_is_422(gate: Gate) -> None:
    client = device_client(gate.token)
    client.post(SCANS, {"code": "one", "nonce": "n1"}, format="json")
    _assert_error(client.post(SCANS, {"code": "two", "nonce": "n1"}, format="json"), 422, "nonce_reused")


def test_the_scan_endpoint_wants_a_device_token(gate: Gate) -> None:
    body = _body(code_of(gate.ticket()))
    _assert_error(APIClient().post(SCANS, body, format="json"), 401, "not_authenticated")
    # A staff token is not a device token.
    _assert_error(_staff(gate).post(SCANS, body, format="json"), 401, "authentication_failed")
    _assert_error(device_client("dv_nope_nope").post(SCANS, body, format="json"), 401, "authentication_failed")
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer a b")
    _assert_error(malformed.post(SCANS, body, format="json"), 401)
    assert not Scan.objects.exists()


def test_a_device_token_opens_nothing_else(gate: Gate) -> None:
    client = device_client(gate.token)
    _assert_error(client.get(SCANS), 401)
    _assert_error(client.get(DEVICES), 401)
    _assert_error(client.get("/api/v1/events/"), 401)
    _assert_error(client.get(f"/api/v1/tickets/{gate.ticket().pk}/"), 401)


def test_a_revoked_device_is_401_at_once(gate: Gate) -> None:
    staff = _staff(gate)
    assert staff.post(f"{DEVICES}{gate.device.pk}/revoke/", {"reason": "lost"}, format="json").status_code == 200
    _assert_error(device_client(gate.token).post(SCANS, _body("x"), format="json"), 401)
    entry = AuditLogEntry.objects.get(object_id=str(gate.device.pk), transition="revoke")
    assert (entry.source_state, entry.target_state, entry.reason) == ("active", "revoked", "lost")


def test_last_seen_is_kept(gate: Gate) -> None:
    assert gate.device.last_seen_at is None
    device_client(gate.token).post(SCANS, _body("x"), format="json")
    assert Device.objects.get(pk=gate.device.pk).last_seen_at is not None


HOSTILE_BODIES: list[Any] = [
    pytest.param({"nonce": "n"}, id="no-code"),
    pytest.param({"code": "x"}, id="no-nonce"),
    pytest.param({"code": "x" * 5000, "nonce": "n"}, id="huge-code"),
    pytest.param({"code": "T1.\u0000abc", "nonce": "n"}, id="nul-in-code"),
    pytest.param({"code": ["T1.x"], "nonce": "n"}, id="list-code"),
    pytest.param({"code": {"a": 1}, "nonce": "n"}, id="object-code"),
    pytest.param({"code": None, "nonce": "n"}, id="null-code"),
    pytest.param({"code": "x", "nonce": "has space"}, id="nonce-space"),
    pytest.param({"code": "x", "nonce": "n" * 65}, id="nonce-too-long"),
    pytest.param({"code": "x", "nonce": "\ud800"}, id="nonce-lone-surrogate"),
    pytest.param({"code": "T1.\ud800abc", "nonce": "n"}, id="code-lone-surrogate"),
    pytest.param({"code": "x", "nonce": ""}, id="nonce-empty"),
    pytest.param({"code": "x", "nonce": "n", "direction": "sideways"}, id="bad-direction"),
    pytest.param({"code": "x", "nonce": "n", "device_time": "yesterday"}, id="bad-device-time"),
    pytest.param({"code": "x", "nonce": "n", "device_time": "0001-01-01T00:00:00+14:00"}, id="overflowing-time"),
    pytest.param({"code": "x", "nonce": "n", "device_sequence": -1}, id="negative-sequence"),
    pytest.param({"code": "x", "nonce": "n", "device_sequence": 2**64}, id="huge-sequence"),
    pytest.param({"code": "x", "nonce": "n", "device_sequence": "seven"}, id="text-sequence"),
    pytest.param(["code", "nonce"], id="a-list"),
    pytest.param("just a string", id="a-string"),
]


def _post_raw(client: APIClient, body: Any) -> Any:
    # json.dumps escapes lone surrogates (\\ud800), as a hostile client would send them.
    return client.post(SCANS, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_are_400_and_change_nothing(gate: Gate, body: Any) -> None:
    _assert_error(_post_raw(device_client(gate.token), body), 400)
    assert not Scan.objects.exists()


def test_a_number_is_scanned_as_text(gate: Gate) -> None:
    response = _post_raw(device_client(gate.token), {"code": 12345678, "nonce": "n"})
    assert response.status_code == 201 and response.json()["result"] == "unknown"


HOSTILE_CODES = [
    pytest.param("T1." + "A" * 250, id="long-but-allowed"),
    pytest.param("T1." + "A" * 3000, id="over-the-code-limit"),
    pytest.param("T1.====", id="padding"),
    pytest.param("T1.%%%%%", id="not-base64"),
    pytest.param("T1.\ud800\udfff", id="surrogate-pair"),
    pytest.param(
        "T1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id="zeros"
    ),
    pytest.param("t1." + "A" * 100, id="lowercase-prefix"),
    pytest.param("\u202eT1.abc", id="bidi"),
    pytest.param("'; DROP TABLE scanning_scan; --", id="sql"),
    pytest.param("<script>alert(1)</script>", id="html"),
]


@pytest.mark.parametrize("code", HOSTILE_CODES)
def test_hostile_codes_get_a_result(gate: Gate, code: str) -> None:
    response = _post_raw(device_client(gate.token), _body(code))
    assert response.status_code == 201, response.content
    assert response.json()["result"] in {"unknown", "invalid_signature"}
    assert response.json()["ticket"] is None
    assert not AdmissionState.objects.exists()


def test_a_body_that_is_not_json_is_a_clean_4xx(gate: Gate) -> None:
    client = device_client(gate.token)
    response = client.post(SCANS, data=b"{not json", content_type="application/json")
    _assert_error(response, 400)
    response = client.post(SCANS, data=b"code=x&nonce=y", content_type="application/x-www-form-urlencoded")
    _assert_error(response, 415)
    response = client.post(SCANS, data=json.dumps(_body("x" * 3_000_000)), content_type="application/json")
    assert 400 <= response.status_code < 500
    assert not Scan.objects.exists()


def test_the_scan_endpoint_is_throttled_per_device(gate: Gate, settings: Any) -> None:
    rest = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "device": "3/min"},
    }
    with override_settings(REST_FRAMEWORK=rest):
        client = device_client(gate.token)
        statuses = [client.post(SCANS, _body("x"), format="json").status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        # Another device has its own budget.
        other = make_gate("Other")
        assert device_client(other.token).post(SCANS, _body("x"), format="json").status_code == 201


# --- tenants ------------------------------------------------------------------------------


def test_a_device_of_one_organization_cannot_touch_anothers_ticket(gate: Gate, other_gate: Gate) -> None:
    theirs = other_gate.ticket()
    response = device_client(gate.token).post(SCANS, _body(code_of(theirs)), format="json")
    assert response.status_code == 201
    assert response.json()["result"] == "wrong_event" and response.json()["ticket"] is None
    assert not AdmissionState.objects.filter(ticket=theirs).exists()
    assert not Scan.objects.filter(organization=other_gate.organization).exists()
    assert not Scan.objects.filter(ticket=theirs).exists()
    # Their ticket is untouched and still admits at their gate.
    assert Ticket.objects.get(pk=theirs.pk).generation == 1
    again = device_client(other_gate.token).post(SCANS, _body(code_of(theirs)), format="json")
    assert again.json()["result"] == "ok"


def test_staff_see_only_their_organizations_devices_and_scans(gate: Gate, other_gate: Gate) -> None:
    device_client(gate.token).post(SCANS, _body(code_of(gate.ticket())), format="json")
    device_client(other_gate.token).post(SCANS, _body(code_of(other_gate.ticket())), format="json")
    ours = Scan.objects.get(organization=gate.organization)

    theirs = _staff(other_gate, "scanner")
    listed = theirs.get(SCANS).json()
    assert ours.pk not in {row["id"] for row in listed["results"]} and listed["count"] == 1
    assert theirs.get(SCANS, {"event": gate.event.pk}).json()["count"] == 0
    assert theirs.get(SCANS, {"device": gate.device.pk}).json()["count"] == 0
    _assert_error(theirs.get(f"{SCANS}{ours.pk}/"), 404, "not_found")
    assert gate.device.pk not in {row["id"] for row in theirs.get(DEVICES).json()["results"]}
    _assert_error(theirs.get(f"{DEVICES}{gate.device.pk}/"), 404)

    owner_b = _staff(other_gate)
    _assert_error(owner_b.post(f"{DEVICES}{gate.device.pk}/revoke/", {}, format="json"), 404)
    _assert_error(owner_b.post(DEVICES, {"event": gate.event.pk, "name": "x", "gate": "y"}, format="json"), 404)
    assert Device.objects.get(pk=gate.device.pk).revoked_at is None
    assert Device.objects.filter(event=gate.event).count() == 1


def test_staff_list_scans_with_filters(gate: Gate) -> None:
    ticket = gate.ticket()
    device = device_client(gate.token)
    for direction in ("in", "in", "out"):
        device.post(SCANS, _body(code_of(ticket), direction=direction), format="json")
    staff = _staff(gate, "box_office")
    rows = staff.get(SCANS, {"ticket": ticket.pk}).json()["results"]
    assert [r["result"] for r in rows] == ["ok", "already_inside", "ok"]
    assert rows[0]["direction"] == "out" and rows[0]["gate"] == "North gate"
    assert staff.get(SCANS, {"result": "already_inside"}).json()["count"] == 1
    assert staff.get(SCANS, {"direction": "out"}).json()["count"] == 1
    _assert_error(staff.get(SCANS, {"result": "maybe"}), 400, "invalid")
    _assert_error(staff.get(SCANS, {"event": "0"}), 400)
    _assert_error(staff.get(SCANS, {"since": "soon"}), 400)
    _assert_error(_staff(gate, "finance").get(SCANS), 403, "permission_denied")


def test_staff_add_a_device_and_its_token_scans(gate: Gate) -> None:
    staff = _staff(gate, "manager")
    response = staff.post(DEVICES, {"event": gate.event.pk, "name": "Handheld 9", "gate": "VIP"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["token"].startswith("dv_") and body["organization"] == gate.organization.pk
    assert staff.get(f"{DEVICES}{body['id']}/").json().get("token") is None  # shown once
    answer = device_client(body["token"]).post(SCANS, _body(code_of(gate.ticket())), format="json").json()
    assert answer["result"] == "ok"
    assert Scan.objects.get(pk=answer["scan"]).device_id == body["id"]
    _assert_error(staff.post(DEVICES, {"event": gate.event.pk, "name": "", "gate": "VIP"}, format="json"), 400)
    _assert_error(
        _staff(gate, "scanner").post(DEVICES, {"event": gate.event.pk, "name": "x", "gate": "y"}, format="json"), 403
    )


def test_device_list_filters(gate: Gate) -> None:
    staff = _staff(gate)
    staff.post(f"{DEVICES}{gate.device.pk}/revoke/", {}, format="json")
    staff.post(DEVICES, {"event": gate.event.pk, "name": "New", "gate": "South"}, format="json")
    assert [d["name"] for d in staff.get(DEVICES, {"active": "true"}).json()["results"]] == ["New"]
    assert [d["is_active"] for d in staff.get(DEVICES, {"active": "false"}).json()["results"]] == [False]
    assert staff.get(DEVICES, {"event": gate.event.pk}).json()["count"] == 2


def test_the_schema_documents_scanning(client: Any, db: None) -> None:
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = document["paths"]
    assert {
        "/api/v1/scanning/scans/",
        "/api/v1/scanning/scans/{id}/",
        "/api/v1/scanning/devices/",
        "/api/v1/scanning/devices/{id}/",
        "/api/v1/scanning/devices/{id}/revoke/",
    } <= set(paths)
    post = paths["/api/v1/scanning/scans/"]["post"]
    assert post["security"] == [{"deviceToken": []}]
    assert not any(p["name"] == "Idempotency-Key" for p in post.get("parameters", []))
    assert {"200", "201", "400", "401", "422", "429"} <= set(post["responses"])
    get = paths["/api/v1/scanning/scans/"]["get"]
    assert {"apiToken": []} in get["security"]
    assert "deviceToken" in document["components"]["securitySchemes"]


def test_query_counts_on_the_gate_path_are_pinned(gate: Gate, django_assert_max_num_queries: Any) -> None:
    """Each scan is a handful of indexed statements (the test's own
    transaction adds a SAVEPOINT and its RELEASE to each)."""
    client = device_client(gate.token)
    client.post(SCANS, _body("warm-up"), format="json")  # last_seen_at is written once a minute
    ticket = gate.ticket()
    code = code_of(ticket)
    # device, replay check, key, ticket, state insert + lock, replay re-check, scan, state, subscriptions
    with django_assert_max_num_queries(12):
        assert client.post(SCANS, {"code": code, "nonce": "a"}, format="json").json()["result"] == "ok"
    with django_assert_max_num_queries(11):
        assert client.post(SCANS, {"code": code, "nonce": "b"}, format="json").json()["result"] == "already_inside"
    with django_assert_max_num_queries(4):
        assert client.post(SCANS, {"code": code, "nonce": "b"}, format="json").json()["replayed"] is True
    with django_assert_max_num_queries(7):
        assert client.post(SCANS, {"code": "junk", "nonce": "c"}, format="json").json()["result"] == "unknown"
