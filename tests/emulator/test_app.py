"""The emulated Vapi API behaves as shared/vapi/API.md describes the live one."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.emulator import EmulatorStore, SandboxTransport, VapiEmulator
from provisioner.emulator.app import E164_MESSAGE, INVALID_KEY_MESSAGE
from tests.emulator.conftest import (
    AUTH,
    assistant_body,
    board_body,
    insight_body,
    structured_output_body,
    twilio_body,
)

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def create(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def bad_request(r: httpx.Response) -> Any:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "Bad Request"
    assert body["statusCode"] == 400
    return body["message"]


# -- CRUD per kind -----------------------------------------------------------------------


def _crud_cases(client: httpx.Client) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(path, create body, patch) for every kind; creates what they reference."""
    assistant = create(client, "/assistant", assistant_body("Referenced"))
    insight = create(client, "/reporting/insight", insight_body("Referenced"))
    return [
        ("/assistant", assistant_body(), {"name": "Renamed"}),
        ("/phone-number", twilio_body(assistantId=assistant["id"]), {"name": "Renamed"}),
        (
            "/structured-output",
            structured_output_body(assistantIds=[assistant["id"]]),
            {"name": "Renamed"},
        ),
        ("/reporting/insight", insight_body(), {"name": "Renamed"}),
        ("/reporting/board", board_body(insight["id"]), {"name": "Renamed"}),
    ]


def test_crud_of_every_kind(any_client: httpx.Client) -> None:
    for path, body, patch in _crud_cases(any_client):
        made = create(any_client, path, body)
        uuid.UUID(made["id"])
        assert STAMP.match(made["createdAt"]) and made["createdAt"] == made["updatedAt"]
        assert made["orgId"]
        got = any_client.get(f"{path}/{made['id']}")
        assert got.status_code == 200 and got.json() == made
        updated = any_client.patch(f"{path}/{made['id']}", json=patch)
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "Renamed"
        assert updated.json()["updatedAt"] > made["updatedAt"]
        assert updated.json()["createdAt"] == made["createdAt"]
        deleted = any_client.delete(f"{path}/{made['id']}")
        assert deleted.status_code == 200 and deleted.json()["id"] == made["id"]
        missing = any_client.get(f"{path}/{made['id']}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "Not Found"
        assert any_client.delete(f"{path}/{made['id']}").status_code == 404


def test_server_fields_of_each_kind(client: httpx.Client, app: VapiEmulator) -> None:
    assistant = create(client, "/assistant", assistant_body())
    assert assistant["isServerUrlSecretSet"] is False
    line = create(client, "/phone-number", twilio_body())
    assert line["status"] == "active"
    free = create(client, "/phone-number", {"provider": "vapi", "numberDesiredAreaCode": "212"})
    assert re.fullmatch(r"\+1212555\d{4}", free["number"])
    default = create(client, "/phone-number", {"provider": "vapi"})
    assert default["number"].startswith("+1415555")
    assert default["number"] != free["number"]
    output = create(client, "/structured-output", structured_output_body())
    assert set(output) == {*structured_output_body(), "id", "orgId", "createdAt", "updatedAt"}
    assert {o["orgId"] for o in (assistant, line, output)} == {app.store.org_id}


# -- validation ------------------------------------------------------------------------


def test_unknown_property_is_rejected_with_a_message_array(client: httpx.Client) -> None:
    body = {**assistant_body(), "serverUrl": "https://old.example", "hipaaEnabled": True}
    body["model"] = {**body["model"], "bogus": 1}
    message = bad_request(client.post("/assistant", json=body))
    assert isinstance(message, list)
    assert "property serverUrl should not exist" in message
    assert "property hipaaEnabled should not exist" in message
    assert "model.property bogus should not exist" in message
    assert client.get("/assistant").json() == []


def test_name_longer_than_40_characters(client: httpx.Client) -> None:
    message = bad_request(client.post("/assistant", json={"name": "x" * 41}))
    assert message == ["name must be shorter than or equal to 40 characters"]
    assert client.post("/assistant", json={"name": "x" * 40}).status_code == 201


def test_nested_enum_and_unknown_discriminators(client: httpx.Client) -> None:
    body = assistant_body()
    body["model"]["messages"] = [{"role": "narrator", "content": "x"}]
    body["voice"] = {"provider": "nobody", "voiceId": "x"}
    message = bad_request(client.post("/assistant", json=body))
    assert any(m.startswith("model.messages.0.role must be one of the following") for m in message)
    assert any(m.startswith("voice.provider must be one of the following values:") for m in message)
    unknown = bad_request(client.post("/phone-number", json={"provider": "skype"}))
    assert unknown[0].startswith("provider must be one of the following values: ")
    listed = unknown[0].split(": ", 1)[1].split(", ")
    assert sorted(listed) == ["byo-phone-number", "telnyx", "twilio", "vapi", "vonage"]
    assert bad_request(client.post("/reporting/insight", json={"type": "radar", "queries": []}))


def test_required_fields(client: httpx.Client) -> None:
    message = bad_request(client.post("/phone-number", json={"provider": "twilio"}))
    assert "number must be a string" in message
    assert "twilioAccountSid must be a string" in message
    assert bad_request(client.post("/reporting/board", json={"name": "B"}))


@pytest.mark.parametrize("provider", ["twilio", "vonage", "telnyx"])
def test_imported_numbers_must_be_e164(client: httpx.Client, provider: str) -> None:
    body: dict[str, Any] = {"provider": provider, "number": "4155550100"}
    if provider == "twilio":
        body["twilioAccountSid"] = "AC0123456789abcdef0123456789abcdef"
    else:
        body["credentialId"] = str(uuid.uuid4())
    message = bad_request(client.post("/phone-number", json=body))
    assert message == [E164_MESSAGE]
    assert E164_MESSAGE.startswith(
        "number must be a valid phone number in the E.164 format. Hot tip"
    )
    body["number"] = "+14155550100"
    made = create(client, "/phone-number", body)
    patch = client.patch(f"/phone-number/{made['id']}", json={"number": "555-0100"})
    assert bad_request(patch) == [E164_MESSAGE]


def test_byo_numbers_skip_e164_only_when_asked(client: httpx.Client) -> None:
    body = {"provider": "byo-phone-number", "number": "1001", "credentialId": str(uuid.uuid4())}
    assert bad_request(client.post("/phone-number", json=body)) == [E164_MESSAGE]
    create(client, "/phone-number", {**body, "numberE164CheckEnabled": False})


def test_malformed_json(client: httpx.Client) -> None:
    r = client.post("/assistant", content=b"{nope", headers={"Content-Type": "application/json"})
    assert isinstance(bad_request(r), str)


# -- auth, ids and routes ---------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Bearer ", "Basic abc"])
def test_bad_or_missing_key_is_401(app: VapiEmulator, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with httpx.Client(transport=SandboxTransport(app=app), base_url="http://sandbox") as c:
        r = c.get("/assistant", headers=headers)
    assert r.status_code == 401
    assert r.json() == {"message": INVALID_KEY_MESSAGE, "error": "Unauthorized", "statusCode": 401}


def test_any_key_when_no_token_is_configured() -> None:
    transport = SandboxTransport(app=VapiEmulator())
    with httpx.Client(transport=transport, base_url="http://sandbox") as c:
        assert c.get("/assistant", headers={"Authorization": "Bearer anything"}).status_code == 200
        assert c.get("/assistant").status_code == 401


def test_malformed_id_is_400_and_unknown_id_404(client: httpx.Client) -> None:
    r = client.get("/assistant/not-a-uuid")
    assert r.status_code == 400
    assert r.json() == {
        "message": "Validation failed (uuid is expected)",
        "error": "Bad Request",
        "statusCode": 400,
    }
    for method in ("GET", "PATCH", "DELETE"):
        r = client.request(method, f"/reporting/board/{uuid.uuid4()}", json={})
        assert r.status_code == 404
        assert r.json()["error"] == "Not Found" and r.json()["statusCode"] == 404


def test_unknown_route_is_404_cannot(client: httpx.Client) -> None:
    r = client.get("/foo")
    assert r.status_code == 404
    assert r.json() == {"message": "Cannot GET /foo", "error": "Not Found", "statusCode": 404}
    assert client.put("/assistant", json={}).json()["message"] == "Cannot PUT /assistant"


# -- lists -------------------------------------------------------------------------------


def _fill(store: EmulatorStore, kind: str, count: int) -> None:
    with store.transaction() as tx:
        for i in range(count):
            tx.insert(kind, {"name": f"n{i}"})


def test_array_lists_cap_and_page_backwards_with_created_at_lt(
    client: httpx.Client, app: VapiEmulator
) -> None:
    _fill(app.store, "assistant", 1005)
    assert len(client.get("/assistant").json()) == 100
    assert bad_request(client.get("/assistant", params={"limit": 1001})) == [
        "limit must not be greater than 1000"
    ]
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = client.get("/assistant", params=params).json()
        assert isinstance(page, list)
        if not page:
            break
        seen.extend(page)
        params["createdAtLt"] = page[-1]["createdAt"]
    assert len(seen) == 1005 and len({o["id"] for o in seen}) == 1005
    stamps = [o["createdAt"] for o in seen]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 1005
    assert seen[0]["name"] == "n1004"  # newest first


def test_date_filters(client: httpx.Client) -> None:
    first = create(client, "/assistant", assistant_body("first"))
    second = create(client, "/assistant", assistant_body("second"))
    client.patch(f"/assistant/{first['id']}", json={"firstMessage": "changed"})

    def names(**params: str) -> list[str]:
        return [o["name"] for o in client.get("/assistant", params=params).json()]

    assert names(createdAtGt=first["createdAt"]) == ["second"]
    assert names(createdAtGe=first["createdAt"]) == ["second", "first"]
    assert names(createdAtLe=first["createdAt"]) == ["first"]
    assert names(updatedAtGt=second["updatedAt"]) == ["first"]
    message = bad_request(client.get("/assistant", params={"createdAtLt": "yesterday"}))
    assert message == ["createdAtLt must be a valid ISO 8601 date string"]
    assert bad_request(client.get("/assistant", params={"page": 2})) == [
        "property page should not exist"
    ]


def test_paged_envelope(client: httpx.Client) -> None:
    for i in range(5):
        create(client, "/structured-output", structured_output_body(name=f"out {i}"))
    page = client.get("/structured-output", params={"limit": 2, "page": 2}).json()
    assert page["metadata"] == {
        "itemsPerPage": 2,
        "totalItems": 5,
        "currentPage": 2,
        "totalPages": 3,
    }
    assert [o["name"] for o in page["results"]] == ["out 2", "out 1"]
    asc = client.get("/structured-output", params={"sortOrder": "ASC", "limit": 1}).json()
    assert asc["results"][0]["name"] == "out 0"
    by_name = client.get("/structured-output", params={"name": "out 3"}).json()
    assert [o["name"] for o in by_name["results"]] == ["out 3"]
    one = by_name["results"][0]["id"]
    assert (
        client.get("/structured-output", params={"id": one}).json()["metadata"]["totalItems"] == 1
    )
    assert bad_request(client.get("/reporting/board", params={"page": 0})) == [
        "page must not be less than 1"
    ]
    assert bad_request(client.get("/reporting/insight", params={"sortOrder": "UP"}))
    assert client.get("/reporting/board").json() == {
        "results": [],
        "metadata": {"itemsPerPage": 100, "totalItems": 0, "currentPage": 1, "totalPages": 0},
    }


# -- update semantics ----------------------------------------------------------------------


def test_patch_replaces_nested_objects_and_arrays_whole(client: httpx.Client) -> None:
    made = create(client, "/assistant", assistant_body())
    r = client.patch(
        f"/assistant/{made['id']}",
        json={"model": {"provider": "openai", "model": "gpt-4o-mini"}, "endCallPhrases": ["bye"]},
    )
    assert r.status_code == 200, r.text
    got = client.get(f"/assistant/{made['id']}").json()
    assert got["model"] == {"provider": "openai", "model": "gpt-4o-mini"}  # no deep merge
    assert got["voice"] == made["voice"] and got["name"] == made["name"]
    client.patch(f"/assistant/{made['id']}", json={"endCallPhrases": ["see you"]})
    assert client.get(f"/assistant/{made['id']}").json()["endCallPhrases"] == ["see you"]
    cleared = client.patch(f"/assistant/{made['id']}", json={"metadata": None}).json()
    assert "metadata" not in cleared


def test_patch_validates_against_the_stored_variant(client: httpx.Client) -> None:
    line = create(client, "/phone-number", twilio_body())
    r = client.patch(f"/phone-number/{line['id']}", json={"provider": "vapi"})
    assert bad_request(r) == ["provider must be one of the following values: twilio"]
    r = client.patch(f"/phone-number/{line['id']}", json={"numberDesiredAreaCode": "212"})
    assert bad_request(r) == ["property numberDesiredAreaCode should not exist"]
    insight = create(client, "/reporting/insight", insight_body())
    r = client.patch(f"/reporting/insight/{insight['id']}", json={"type": "bar"})
    assert bad_request(r) == ["type must be one of the following values: line"]
    ok = client.patch(f"/phone-number/{line['id']}", json={"provider": "twilio", "name": "New"})
    assert ok.status_code == 200


def test_structured_output_patch_accepts_optional_schema_override(client: httpx.Client) -> None:
    made = create(client, "/structured-output", structured_output_body())
    path = f"/structured-output/{made['id']}"
    assert client.patch(path, json={"description": "d"}).status_code == 200
    r = client.patch(path, params={"schemaOverride": "true"}, json={"description": "e"})
    assert r.status_code == 200 and r.json()["description"] == "e"


# -- secrets, references, limits ------------------------------------------------------------


def test_secrets_are_stored_but_never_echoed(client: httpx.Client, app: VapiEmulator) -> None:
    line = create(client, "/phone-number", twilio_body(twilioApiSecret="api-secret-5678"))
    auth = {"username": "u" * 20, "password": "sip-password-1234567890", "realm": "r"}
    sip = create(
        client, "/phone-number", {"provider": "vapi", "sipUri": "sip:a@b.c", "authentication": auth}
    )
    patched = client.patch(f"/phone-number/{line['id']}", json={"twilioAuthToken": "rotated-0000"})
    answers = [
        line,
        sip,
        patched.text,
        client.get(f"/phone-number/{line['id']}").text,
        client.get("/phone-number").text,
        client.delete(f"/phone-number/{sip['id']}").text,
    ]
    for text in map(str, answers):
        for secret in ("twilio-secret-1234", "api-secret-5678", "rotated-0000", "sip-password"):
            assert secret not in text
    assert "twilioAuthToken" not in line and sip["authentication"] == {
        "username": "u" * 20,
        "realm": "r",
    }
    # Stored only as digests: a PATCH replaces the digest, and the clear value is nowhere.
    stored = app.store.get("phoneNumber", line["id"])
    assert stored is not None
    assert stored["twilioAuthToken"] == "sha256:" + hashlib.sha256(b"rotated-0000").hexdigest()
    assert stored["twilioApiSecret"] == "sha256:" + hashlib.sha256(b"api-secret-5678").hexdigest()


def test_the_data_file_holds_digests_of_secrets_only(tmp_path: Path) -> None:
    data = tmp_path / "vapi.json"
    transport = SandboxTransport(app=VapiEmulator(EmulatorStore(path=data)))
    with httpx.Client(transport=transport, base_url="http://s", headers=AUTH) as client:
        line = create(client, "/phone-number", twilio_body(twilioApiSecret="api-secret-5678"))
        auth = {"username": "u" * 20, "password": "sip-password-1234567890", "realm": "r"}
        body = {"provider": "vapi", "sipUri": "sip:a@b.c", "authentication": auth}
        sip = create(client, "/phone-number", body)
        patch = {"twilioAuthToken": "rotated-0000"}
        assert client.patch(f"/phone-number/{line['id']}", json=patch).status_code == 200
    text = data.read_text()
    for secret in ("twilio-secret-1234", "api-secret-5678", "rotated-0000", "sip-password"):
        assert secret not in text
    stored = EmulatorStore(path=data).get("phoneNumber", sip["id"])
    assert stored is not None
    digest = hashlib.sha256(b"sip-password-1234567890").hexdigest()
    assert stored["authentication"] == {**auth, "password": "sha256:" + digest}


def test_references_must_exist(client: httpx.Client) -> None:
    ghost = str(uuid.uuid4())
    r = client.post("/phone-number", json=twilio_body(assistantId=ghost))
    assert r.status_code == 400 and ghost in r.json()["message"]
    r = client.post("/structured-output", json=structured_output_body(assistantIds=[ghost]))
    assert r.status_code == 400 and ghost in r.json()["message"]
    r = client.post("/reporting/board", json=board_body(ghost))
    assert r.status_code == 400 and ghost in r.json()["message"]
    line = create(client, "/phone-number", twilio_body())
    r = client.patch(f"/phone-number/{line['id']}", json={"assistantId": ghost})
    assert r.status_code == 400 and ghost in r.json()["message"]
    assistant = create(client, "/assistant", assistant_body())
    r = client.patch(f"/phone-number/{line['id']}", json={"assistantId": assistant["id"]})
    assert r.status_code == 200


def test_free_vapi_number_limit(client: httpx.Client, app: VapiEmulator) -> None:
    made = [create(client, "/phone-number", {"provider": "vapi"}) for _ in range(5)]
    r = client.post("/phone-number", json={"provider": "vapi"})
    assert r.status_code == 400 and "limit" in r.json()["message"]
    create(client, "/phone-number", {"provider": "vapi", "sipUri": "sip:x@y.z"})  # no digits
    create(client, "/phone-number", twilio_body())  # imports do not count
    client.delete(f"/phone-number/{made[0]['id']}")
    again = create(client, "/phone-number", {"provider": "vapi"})
    assert again["number"] not in {m["number"] for m in made}  # digits are never given back
    app.free_vapi_numbers = 7
    create(client, "/phone-number", {"provider": "vapi"})


# -- admin -------------------------------------------------------------------------------


def test_admin_stats_faults_and_reset(client: httpx.Client) -> None:
    create(client, "/assistant", assistant_body())
    client.get("/assistant")
    client.get("/assistant", headers={"Authorization": "Bearer nope"})
    stats = client.get("/__emulator/stats", headers={"Authorization": ""}).json()
    assert stats["requests"] == 3
    assert stats["by_method"] == {"POST": 1, "GET": 2}
    assert stats["by_status"] == {"201": 1, "200": 1, "401": 1}
    assert stats["creates"]["assistant"] == 1 and stats["rate_limited"] == 0
    r = client.put("/__emulator/faults", json={"p_429": 1.0, "seed": 3})
    assert r.status_code == 200 and r.json()["p_429"] == 1.0
    assert client.get("/assistant").status_code == 429
    assert client.get("/__emulator/faults").json()["seed"] == 3
    assert client.put("/__emulator/faults", json={"p_429": 2}).status_code == 400
    assert client.put("/__emulator/faults", json={"bogus": 1}).status_code == 400
    client.put("/__emulator/faults", json={})
    assert client.post("/__emulator/reset").status_code == 200
    stats = client.get("/__emulator/stats").json()
    assert stats["requests"] == 0 and stats["objects"]["assistant"] == 0
    assert client.get("/__emulator/nothing").status_code == 404


def test_reject_create_names_fault(client: httpx.Client, app: VapiEmulator) -> None:
    client.put("/__emulator/faults", json={"reject_create_names": ["Calls per day"]})
    assert client.post("/reporting/insight", json=insight_body()).status_code == 400
    assert client.post("/reporting/insight", json=insight_body("Other")).status_code == 201
