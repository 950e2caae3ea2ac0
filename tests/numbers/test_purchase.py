"""Buying numbers from the manifest, cost in the plan, release on destroy, safe cut-over,
and `numbers list`: the CLI (CliRunner) against the in-process Vapi and Twilio sandboxes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from provisioner.emulator.app import VapiEmulator
from provisioner.emulator.server import running_server, with_twilio
from provisioner.emulator.store import EmulatorStore
from provisioner.remote.twilio import TwilioClient
from tests.conftest import SECRET, Cli

BUY = "examples/buy-a-number.yaml"
FULL = "examples/full.yaml"
STATE = Path("state/.sandbox/examples/buy-a-number.json")
TWILIO_DATA = Path("state/.sandbox/emulator/twilio.json")


def owned_numbers(project: Path) -> list[dict[str, Any]]:
    path = project / TWILIO_DATA
    if not path.exists():
        return []
    return list(json.loads(path.read_text())["incoming_phone_numbers"])


def bought(project: Path) -> dict[str, Any]:
    state = json.loads((project / STATE).read_text())
    return dict(state["resources"]["phoneNumber.sf-line"]["extra"]["purchase"])


def test_plan_shows_the_price_and_buys_nothing(run: Cli, project: Path) -> None:
    result = run("plan", BUY, "--sandbox")
    assert result.exit_code == 0, result.output
    assert (
        "will buy a local number in area code 415 at 1.15 USD/month from Twilio, "
        "then import it into Vapi; it is released at Twilio on destroy"
    ) in result.output
    assert "Phone numbers: 1.15 USD/month after this plan (+1.15 USD/month)." in result.output
    assert owned_numbers(project) == []

    doc = json.loads(run("plan", BUY, "--sandbox", "--format", "json").output)
    assert doc["cost"]["monthly_change"] == "+1.15"
    assert doc["cost"]["currency"] == "USD"
    change = next(c for c in doc["changes"] if c["address"] == "phoneNumber.sf-line")
    assert change["after"]["number"] == "(known after apply)"
    assert change["purchase"]["action"] == "buy"
    assert change["purchase"]["areaCode"] == "415"
    assert change["purchase"]["monthly"] == "1.15"

    md = run("plan", BUY, "--sandbox", "--format", "markdown").output
    assert "Phone numbers: 1.15 USD/month after this plan (+1.15 USD/month)." in md
    assert "**Phone number:** will buy a local number in area code 415 at 1.15 USD/month" in md
    assert owned_numbers(project) == []


def test_apply_buys_once_records_it_and_imports_it(run: Cli, project: Path) -> None:
    result = run("apply", BUY, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    record = bought(project)
    assert re.fullmatch(r"PN[0-9a-f]{32}", record["sid"])
    assert record["number"].startswith("+1415")
    assert f"bought {record['number']} ({record['sid']})" in result.output
    digits = record["number"]
    assert f"call +1 415-{digits[5:8]}-{digits[8:]} to talk to Acme Support" in result.output
    owned = owned_numbers(project)
    assert [o["sid"] for o in owned] == [record["sid"]]
    assert owned[0]["friendly_name"].endswith("phoneNumber.sf-line")

    again = run("apply", BUY, "--sandbox", "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output
    assert "1.15 USD/month after this plan (+0.00 USD/month)" in again.output
    assert len(owned_numbers(project)) == 1

    listed = json.loads(run("numbers", "list", BUY, "--sandbox", "--json").output)
    row = next(r for r in listed["phone_numbers"] if r["number"] == record["number"])
    assert row["managed_by"] == "phoneNumber.sf-line"
    assert row["routes_to"] == "assistant.support"


def test_failed_import_keeps_the_number_and_never_buys_twice(run: Cli, project: Path) -> None:
    # Vapi refuses the import: the number bought stays recorded in state.
    first = run(
        "apply",
        BUY,
        "--sandbox",
        "--auto-approve",
        env={"PROVISIONER_SANDBOX_FAULTS": "reject=Acme San Francisco"},
    )
    assert first.exit_code == 1, first.output
    assert "failed:  phoneNumber.sf-line" in first.output
    record = bought(project)
    assert record["sid"]

    plan = run("plan", BUY, "--sandbox")
    assert f"uses {record['number']}, bought from Twilio earlier" in plan.output
    assert "will buy" not in plan.output

    second = run("apply", BUY, "--sandbox", "--auto-approve")
    assert second.exit_code == 0, second.output
    assert [o["sid"] for o in owned_numbers(project)] == [record["sid"]]
    assert run("plan", BUY, "--sandbox", "--detailed-exitcode").exit_code == 0


def test_crash_after_twilio_answered_finds_the_number(run: Cli, project: Path) -> None:
    """Killed after Twilio sold the number but before state recorded it: state has only
    the wish (with its marker); the next apply finds the number instead of buying."""
    run(
        "apply",
        BUY,
        "--sandbox",
        "--auto-approve",
        env={"PROVISIONER_SANDBOX_FAULTS": "reject=Acme San Francisco"},
    )
    state = json.loads((project / STATE).read_text())
    purchase = state["resources"]["phoneNumber.sf-line"]["extra"]["purchase"]
    sid = purchase.pop("sid")
    purchase.pop("number")
    (project / STATE).write_text(json.dumps(state))

    result = run("apply", BUY, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "bought earlier" in result.output
    assert [o["sid"] for o in owned_numbers(project)] == [sid]
    assert bought(project)["sid"] == sid


def test_destroy_releases_only_when_asked(run: Cli, project: Path) -> None:
    manifest = project / BUY
    run("apply", BUY, "--sandbox", "--auto-approve")
    number = bought(project)["number"]

    # Without `release: true` the number is removed from Vapi and kept at Twilio.
    manifest.write_text(manifest.read_text().replace("      release: true\n", ""))
    plan = run("destroy", BUY, "--sandbox")
    assert f"will remove {number} from Vapi; it stays in your Twilio account" in plan.output
    kept = run("destroy", BUY, "--sandbox", "--auto-approve")
    assert kept.exit_code == 0, kept.output
    assert len(owned_numbers(project)) == 1

    # With it, destroy releases the number at Twilio.
    other = project / "examples/buy-release.yaml"
    other.write_text(
        (project / BUY)
        .read_text()
        .replace("      type: local\n", "      type: local\n      release: true\n")
    )
    run("apply", "examples/buy-release.yaml", "--sandbox", "--auto-approve")
    assert len(owned_numbers(project)) == 2
    gone = run("destroy", "examples/buy-release.yaml", "--sandbox", "--auto-approve")
    assert gone.exit_code == 0, gone.output
    assert "then release it at Twilio" in gone.output
    assert "released +1415" in gone.output
    assert len(owned_numbers(project)) == 1


def test_full_example_cost_lists_priced_and_unpriced_numbers(run: Cli, project: Path) -> None:
    doc = json.loads(run("plan", FULL, "--sandbox", "--format", "json").output)
    cost = doc["cost"]
    priced = {n["address"]: n for n in cost["numbers"]}
    assert priced["phoneNumber.main-line"]["monthly"] == "1.15"
    assert priced["phoneNumber.main-line"]["type"] == "local"
    assert priced["phoneNumber.test-line"]["monthly"] == "0.00"
    unpriced = {u["address"]: u["why"] for u in cost["unpriced"]}
    assert set(unpriced) == {
        "phoneNumber.uk-line",
        "phoneNumber.sales-line",
        "phoneNumber.pbx-line",
    }
    assert "Vonage" in unpriced["phoneNumber.uk-line"]
    assert cost["monthly_before"] == "0.00"
    assert cost["monthly_change"] == "+1.15"
    assert SECRET not in json.dumps(doc)


def test_replacing_a_live_number_warns(run: Cli, project: Path) -> None:
    run("apply", FULL, "--sandbox", "--auto-approve")
    manifest = project / FULL
    manifest.write_text(manifest.read_text().replace('"+14155550100"', '"+14155550111"'))
    result = run("plan", FULL, "--sandbox")
    assert "-/+ phoneNumber.main-line" in result.output
    assert "calls to this number fail while it is swapped" in result.output


def test_cut_over_creates_moves_then_deletes(run: Cli, project: Path) -> None:
    """Pointing a number at a new assistant: the new assistant first, then the number,
    and only then the old assistant, so the number never routes to a deleted one."""
    run("apply", "examples/small.yaml", "--sandbox", "--auto-approve")
    manifest = project / "examples/small.yaml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace("  support:\n", "  support-v2:\n", 1)
        .replace("name: Acme Support", "name: Acme Support v2")
        .replace("${assistant.support.id}", "${assistant.support-v2.id}")
    )
    result = run(
        "apply", "examples/small.yaml", "--sandbox", "--auto-approve", "--parallelism", "10"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    created = out.index("assistant.support-v2: created")
    moved = out.index("phoneNumber.test-line: updated")
    deleted = out.index("assistant.support: deleted")
    assert created < moved < deleted


def test_sandbox_server_answers_twilio_too(tmp_path: Path) -> None:
    vapi = VapiEmulator(EmulatorStore(path=None))
    with running_server(with_twilio(vapi, tmp_path / "twilio.json")) as url:
        client = TwilioClient("AC" + "1" * 32, "token", base_url=url, pricing_base_url=url)
        with client:
            assert client.pricing("US").monthly("local") is not None
            found = client.search("US", area_code="415", limit=2)
            assert len(found) == 2
            assert client.buy(phone_number=found[0].phone_number).phone_number.startswith("+1415")
        # The Vapi API is still there.
        assert httpx.get(f"{url}/assistant", headers={"Authorization": "Bearer x"}).is_success


def test_buying_with_an_api_key_over_http(run: Cli, project: Path, tmp_path: Path) -> None:
    """Twilio recommends API keys: a number with twilioApiKey/twilioApiSecret is priced
    and bought with them (the emulator accepts only that key), over a real socket."""
    key, secret = "SK" + "5e" * 16, "api-key-secret-0a1b2c"
    manifest = project / "examples/buy-with-key.yaml"
    manifest.write_text(
        (project / BUY)
        .read_text()
        .replace(
            "    twilioAuthToken: ${env:TWILIO_AUTH_TOKEN}\n",
            f"    twilioApiKey: {key}\n    twilioApiSecret: ${{env:TWILIO_API_SECRET}}\n",
        )
    )
    vapi = VapiEmulator(EmulatorStore(path=None))
    app = with_twilio(vapi, tmp_path / "twilio.json", twilio_credentials=(key, secret))
    with running_server(app) as url:
        env = {
            "VAPI_BASE_URL": url,
            "VAPI_TOKEN": "token",
            "TWILIO_BASE_URL": url,
            "TWILIO_PRICING_BASE_URL": url,
            "TWILIO_API_SECRET": secret,
        }
        plan = run("plan", "examples/buy-with-key.yaml", env=env)
        assert plan.exit_code == 0, plan.output
        assert "at 1.15 USD/month" in plan.output
        applied = run("apply", "examples/buy-with-key.yaml", "--auto-approve", env=env)
        assert applied.exit_code == 0, applied.output
        assert secret not in applied.output
        owned = json.loads((tmp_path / "twilio.json").read_text())["incoming_phone_numbers"]
        assert len(owned) == 1
        # With a wrong secret Twilio refuses the price lookup: the plan says so, unpriced.
        again = run("plan", "examples/buy-with-key.yaml", env={**env, "TWILIO_API_SECRET": "no"})
        assert again.exit_code == 0, again.output
        assert "Twilio prices for US" in again.output
        assert "not priced: phoneNumber.sf-line" in again.output


def test_another_state_of_the_manifest_never_buys_its_numbers_again(
    run: Cli, project: Path
) -> None:
    # Only a bought number: no assistant marker to catch a second deployment first.
    manifest = project / "examples" / "only-a-number.yaml"
    text = (project / BUY).read_text()
    number_only = text[text.index("phoneNumbers:") :].replace(
        "    assistantId: ${assistant.support.id}\n", ""
    )
    manifest.write_text("version: 1\n" + number_only)
    name = "examples/only-a-number.yaml"
    assert run("apply", name, "--sandbox", "--auto-approve").exit_code == 0
    (friendly,) = [o["friendly_name"] for o in owned_numbers(project)]
    assert friendly.startswith("provisioner ") and friendly.endswith("phoneNumber.sf-line")

    # A fresh clone: the state is gone, a new lineage would buy the number again.
    state = project / "state" / ".sandbox" / "examples" / "only-a-number.json"
    lineage = json.loads(state.read_text())["lineage"]
    state.unlink()
    state.with_name(state.name + ".backup").unlink(missing_ok=True)
    refused = run("plan", name, "--sandbox")
    assert refused.exit_code == 1, refused.output
    assert "bought at Twilio the numbers this plan would buy" in refused.output
    assert f"bought by lineage {lineage[:8]}" in refused.output
    assert "Traceback" not in refused.output
    assert len(owned_numbers(project)) == 1
    assert run("apply", name, "--sandbox", "--auto-approve").exit_code == 1
    assert len(owned_numbers(project)) == 1
