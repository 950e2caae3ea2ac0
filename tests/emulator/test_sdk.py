"""The official Python SDK (`vapi-server-sdk`) works against the served emulator."""

from __future__ import annotations

import json

import pytest

from tests.emulator.conftest import SDK_RUN


@pytest.mark.vapi_sdk
def test_official_python_sdk_round_trip() -> None:
    out, err, code = SDK_RUN.result(timeout=180)
    assert code == 0, err
    result = json.loads(out)
    made = result["created"]
    assert made["id"] and made["name"] == "SDK assistant" and made["orgId"]
    assert result["listed"] == [made["id"]]
    assert result["got"] == {"id": made["id"], "firstMessage": "Hello from the SDK"}
    assert result["updated"] == {"name": "Renamed by SDK", "firstMessage": "Hello from the SDK"}
    assert result["deleted"] == made["id"]
    assert result["after"] == []
    assert result["wrong_key_status"] == 401
    stats = result["stats"]
    assert stats["by_method"] == {"POST": 1, "GET": 4, "PATCH": 1, "DELETE": 1}
    assert stats["by_status"] == {"201": 1, "200": 5, "401": 1}
