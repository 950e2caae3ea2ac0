"""Renderer tests, and the sample plan they (and the saved-plan tests) share.

`sample_plan()` is made by the real planner from a YAML manifest, a hand-made state and a
hand-made live snapshot. It holds one of each: a create (with a secret), an update whose
multi-line system prompt changes, a replace (a phone number's digits, with a warning, a
changed secret and a reference to the new assistant), a delete, a drift (a dashboard
edit), and a no-op.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provisioner.manifest.loader import parse_manifest_text
from provisioner.manifest.model import build_manifest
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Plan
from provisioner.resolve import ResolvedResource, resolve_manifest
from provisioner.state.model import ResourceState, StateFile
from provisioner.values import keyed_hash

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

HASH_KEY = "k"
# Plain secrets that must never appear in any rendering or file.
HOOK_SECRET = "hook-secret-5a4b3c2d1e"
NEW_TOKEN = "tok-NEW-7f6e5d4c3b"
OLD_TOKEN = "tok-OLD-0a1b2c3d4e"
SECRETS = (HOOK_SECRET, NEW_TOKEN, OLD_TOKEN)
ENVIRON = {"HOOK_SECRET": HOOK_SECRET, "TWILIO_TOKEN": NEW_TOKEN}

SERVER = {"orgId": "org", "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "x"}

OLD_PROMPT = "You are the support agent for Acme.\nBe brief.\nNever share internal ticket IDs.\n"
NEW_PROMPT = (
    "You are the support agent for Acme.\nBe brief and friendly.\n"
    "Never share internal ticket IDs.\n"
)

MANIFEST = """\
version: 1
assistants:
  support:
    name: Support
    firstMessage: Hello, how can I help?
    model:
      provider: openai
      model: gpt-4o
      temperature: 0.7
      messages:
        - role: system
          content: |
            You are the support agent for Acme.
            Be brief and friendly.
            Never share internal ticket IDs.
  sales:
    name: Sales
    firstMessage: Hi from sales
  faq:
    name: FAQ
    firstMessage: Ask me anything
  intake:
    name: "Intake `v2` | new"
    firstMessage: Welcome
    server:
      url: https://hooks.example.com/intake
      secret: "${env:HOOK_SECRET}"
phoneNumbers:
  main:
    provider: twilio
    number: "+14155550111"
    twilioAccountSid: AC1
    twilioAuthToken: "${env:TWILIO_TOKEN}"
    assistantId: "${assistant.intake.id}"
"""

SUPPORT_APPLIED: dict[str, Any] = {
    "name": "Support",
    "firstMessage": "Hello, how can I help?",
    "model": {
        "provider": "openai",
        "model": "gpt-4o",
        "temperature": 0.5,
        "messages": [{"role": "system", "content": OLD_PROMPT}],
    },
}
SALES_APPLIED = {"name": "Sales", "firstMessage": "Hi from sales"}
FAQ_APPLIED = {"name": "FAQ", "firstMessage": "Ask me anything"}
OLD_APPLIED = {"name": "Old line", "firstMessage": "Goodbye"}
PHONE_APPLIED = {
    "provider": "twilio",
    "number": "+14155550100",
    "twilioAccountSid": "AC1",
    "twilioAuthToken": keyed_hash(OLD_TOKEN, HASH_KEY),
    "assistantId": "as-old",
}


def desired(
    text: str = MANIFEST, environ: dict[str, str] | None = None
) -> dict[str, ResolvedResource]:
    loaded, diags = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None and not diags, diags
    resolved, rdiags = resolve_manifest(
        build_manifest(loaded), ENVIRON if environ is None else environ
    )
    assert not rdiags, rdiags
    return resolved.resources


def sample_state() -> StateFile:
    st = StateFile(lineage="L-0001", serial=7, hash_key=HASH_KEY)
    st.resources = {
        "assistant.support": ResourceState("assistant", "as-support", applied=SUPPORT_APPLIED),
        "assistant.sales": ResourceState("assistant", "as-sales", applied=SALES_APPLIED),
        "assistant.faq": ResourceState("assistant", "as-faq", applied=FAQ_APPLIED),
        "assistant.old": ResourceState("assistant", "as-old", applied=OLD_APPLIED),
        "phoneNumber.main": ResourceState(
            "phoneNumber", "pn-main", applied=PHONE_APPLIED, depends_on=["assistant.old"]
        ),
    }
    return st


def sample_live() -> LiveSnapshot:
    def live(rid: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {"id": rid, **SERVER, **obj}

    phone = {k: v for k, v in PHONE_APPLIED.items() if k != "twilioAuthToken"}
    return LiveSnapshot(
        {
            "assistant.support": live("as-support", SUPPORT_APPLIED),
            "assistant.sales": live("as-sales", {**SALES_APPLIED, "firstMessage": "Hi (edited)"}),
            "assistant.faq": live("as-faq", FAQ_APPLIED),
            "assistant.old": live("as-old", OLD_APPLIED),
            "phoneNumber.main": live("pn-main", phone),
        }
    )


def sample_plan() -> Plan:
    return make_plan(desired(), sample_state(), sample_live())


def check_golden(name: str, text: str) -> None:
    """Compare `text` with tests/fixtures/golden/NAME; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run the tests with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, "
        "regenerate with UPDATE_GOLDEN=1 and review the diff"
    )
