"""Drive a served emulator with the official Python SDK (`vapi-server-sdk`); print JSON.

Run as a script by `test_sdk.py`, in its own process: the SDK spends most of 20 s
building its pydantic models on first use of `client.assistants`, so the test starts
this at collection time and the rest of the suite runs meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

from provisioner.emulator import VapiEmulator, running_server

TOKEN = "sdk-private-key"


def main() -> dict[str, Any]:
    from vapi import Vapi
    from vapi.core.api_error import ApiError

    app = VapiEmulator(token=TOKEN)
    out: dict[str, Any] = {}
    with running_server(app) as url:
        sdk = Vapi(token=TOKEN, base_url=url)
        made = sdk.assistants.create(name="SDK assistant", first_message="Hello from the SDK")
        out["created"] = {"id": made.id, "name": made.name, "orgId": made.org_id}
        out["listed"] = [a.id for a in sdk.assistants.list(limit=10)]
        got = sdk.assistants.get(made.id)
        out["got"] = {"id": got.id, "firstMessage": got.first_message}
        updated = sdk.assistants.update(made.id, name="Renamed by SDK")
        out["updated"] = {"name": updated.name, "firstMessage": updated.first_message}
        out["deleted"] = sdk.assistants.delete(made.id).id
        out["after"] = [a.id for a in sdk.assistants.list()]
        try:
            Vapi(token="wrong", base_url=url).assistants.list()
        except ApiError as exc:
            out["wrong_key_status"] = exc.status_code
        out["stats"] = app.stats()
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
