"""The rules around buying numbers: no error escapes the buy path, a changed `purchase:`
buys another number, nothing is bought at a price the plan did not show, and the cost
line counts replaces and numbers kept at Twilio. The CLI (CliRunner) against the sandbox,
or the emulator served over a real socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from provisioner.emulator.app import VapiEmulator
from provisioner.emulator.server import running_server, with_twilio
from provisioner.emulator.store import EmulatorStore
from provisioner.purchasing import SANDBOX_ACCOUNT_SID, PurchaseError, Twilio
from provisioner.settings import Settings
from tests.conftest import SECRET, Cli
from tests.numbers.test_purchase import BUY, FULL, STATE, bought, owned_numbers


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plan_json(run: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run("plan", *args, "--format", "json", env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# -- item: nothing but a PurchaseError leaves the buy path --------------------------------


def test_a_malformed_purchase_is_a_purchase_error(tmp_path: Path) -> None:
    twilio = Twilio(Settings(sandbox=True, sandbox_dir=tmp_path))
    try:
        with pytest.raises(PurchaseError, match="'015' is not a US/CA area code"):
            twilio.buy(SANDBOX_ACCOUNT_SID, {"country": "US", "areaCode": "015"}, "marker")
        with pytest.raises(PurchaseError, match="phone-number SID"):
            twilio.release(SANDBOX_ACCOUNT_SID, "not-a-sid")
    finally:
        twilio.close()


# -- a changed `purchase:` buys another number ---------------------------------------------


def test_changing_purchase_replaces_the_number_and_releases_the_old(
    run: Cli, project: Path
) -> None:
    assert run("apply", BUY, "--sandbox", "--auto-approve").exit_code == 0
    old = bought(project)
    edit(project / BUY, 'areaCode: "415"', 'areaCode: "212"')

    plan = run("plan", BUY, "--sandbox")
    assert plan.exit_code == 0, plan.output
    assert "-/+ phoneNumber.sf-line" in plan.output
    assert "purchase.areaCode" in plan.output
    assert (
        f"replaced by a newly bought number: {old['number']} stops answering once it leaves "
        "Vapi, so callers need the new number"
    ) in plan.output
    assert "will buy a local number in area code 212 at 1.15 USD/month" in plan.output
    assert f"{old['number']} is then released at Twilio" in plan.output
    assert "Phone numbers: 1.15 USD/month after this plan (+0.00 USD/month)." in plan.output

    applied = run("apply", BUY, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    new = bought(project)
    assert new["number"].startswith("+1212")
    assert new["areaCode"] == "212"
    assert [o["sid"] for o in owned_numbers(project)] == [new["sid"]]
    assert f"released {old['number']} at Twilio" in applied.output
    assert (
        "replaced"
        not in json.loads((project / STATE).read_text())["resources"]["phoneNumber.sf-line"][
            "extra"
        ]
    )
    assert run("plan", BUY, "--sandbox", "--detailed-exitcode").exit_code == 0


def test_changing_purchase_without_release_keeps_the_old_number_billed(
    run: Cli, project: Path
) -> None:
    edit(project / BUY, "      release: true\n", "")
    assert run("apply", BUY, "--sandbox", "--auto-approve").exit_code == 0
    old = bought(project)
    edit(project / BUY, "      type: local\n", "      type: toll-free\n")
    edit(project / BUY, 'areaCode: "415"', 'areaCode: "800"')

    doc = plan_json(run, BUY, "--sandbox")
    change = next(c for c in doc["changes"] if c["address"] == "phoneNumber.sf-line")
    assert change["action"] == "replace"
    assert change["purchase"]["replaces"]["number"] == old["number"]
    # The old number stays billed (1.15) and the toll-free one is added (2.15).
    assert doc["cost"]["monthly_after"] == "3.30"
    assert doc["cost"]["monthly_change"] == "+2.15"
    assert doc["cost"]["still_billed"][0]["number"] == old["number"]
    text = run("plan", BUY, "--sandbox").output
    assert f"{old['number']} is then kept in your Twilio account, and billed there" in text
    assert f"still billed by Twilio: phoneNumber.sf-line ({old['number']}): +1.15" in text

    applied = run("apply", BUY, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert bought(project)["number"].startswith("+1800")
    assert len(owned_numbers(project)) == 2
    assert run("plan", BUY, "--sandbox", "--detailed-exitcode").exit_code == 0


# -- nothing is bought unless the plan showed the price -------------------------------------


def test_no_purchase_when_the_plan_could_not_show_the_price(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    vapi = VapiEmulator(EmulatorStore(path=None))
    twilio_data = tmp_path / "twilio.json"
    with running_server(with_twilio(vapi, twilio_data)) as url:
        env = {
            "VAPI_BASE_URL": url,
            "VAPI_TOKEN": "token",
            "TWILIO_BASE_URL": url,
            "TWILIO_PRICING_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        }
        plan = run("plan", BUY, env=env)
        assert plan.exit_code == 0, plan.output
        assert "will buy a local number in area code 415 (price not known" in plan.output
        assert "Phone numbers: at least 0.00 USD/month after this plan" in plan.output
        assert "the change is not known" in plan.output
        assert "+0.00" not in plan.output
        assert plan_json(run, BUY, env=env)["cost"]["incomplete"] is True

        applied = run("apply", BUY, "--auto-approve", env=env)
        assert applied.exit_code == 1, applied.output
        assert "phoneNumber.sf-line" in applied.output
        assert "not buying a number: the plan could not show its price" in applied.output
        assert "Traceback" not in applied.output
        owned = (
            json.loads(twilio_data.read_text())["incoming_phone_numbers"]
            if (twilio_data.exists())
            else []
        )
        assert owned == []
        state = json.loads((project / "state/examples/buy-a-number.json").read_text())
        assert "phoneNumber.sf-line" not in state["resources"]


# -- the cost line ------------------------------------------------------------------------


def test_replacing_a_local_number_with_a_toll_free_one_costs_the_difference(
    run: Cli, project: Path
) -> None:
    assert run("apply", FULL, "--sandbox", "--auto-approve").exit_code == 0
    edit(project / FULL, '"+14155550100"', '"+18005550100"')
    cost = plan_json(run, FULL, "--sandbox")["cost"]
    assert cost["monthly_before"] == "1.15"
    assert cost["monthly_after"] == "2.15"
    assert cost["monthly_change"] == "+1.00"
    statuses = {(n["number"], n["status"]) for n in cost["numbers"] if n["provider"] == "twilio"}
    assert statuses == {("+14155550100", "replaced"), ("+18005550100", "new")}
    assert SECRET not in json.dumps(cost)


def test_destroy_without_release_counts_the_number_still_billed(run: Cli, project: Path) -> None:
    edit(project / BUY, "      release: true\n", "")
    assert run("apply", BUY, "--sandbox", "--auto-approve").exit_code == 0
    number = bought(project)["number"]
    doc = plan_json(run, BUY, "--sandbox", "--destroy")
    assert doc["cost"]["monthly_after"] == "1.15"
    assert doc["cost"]["monthly_change"] == "+0.00"
    assert doc["cost"]["still_billed"] == [
        {"address": "phoneNumber.sf-line", "number": number, "monthly": "1.15", "currency": "USD"}
    ]
    text = run("destroy", BUY, "--sandbox").output
    assert f"still billed by Twilio: phoneNumber.sf-line ({number}): +1.15 USD/month" in text
    assert "-1.15" not in text


# -- Twilio credentials --------------------------------------------------------------------


def test_importing_a_twilio_number_without_credentials_is_refused_by_the_plan(
    run: Cli, project: Path
) -> None:
    """Validate lets `number:` go without a token (an adopted number cannot read it back),
    but a plan that would import it into Vapi fails before any request, at its line."""
    manifest = project / "examples/no-token.yaml"
    manifest.write_text(
        "version: 1\nphoneNumbers:\n  line:\n    provider: twilio\n"
        "    number: '+14155550100'\n    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n"
    )
    assert run("validate", "examples/no-token.yaml").exit_code == 0
    plan = run("plan", "examples/no-token.yaml", "--sandbox")
    assert plan.exit_code == 1, plan.output
    assert (
        "no-token.yaml:3:3: phoneNumbers.line: this plan imports it into Vapi: a Twilio "
        "number needs twilioAuthToken"
    ) in plan.output
    applied = run("apply", "examples/no-token.yaml", "--sandbox", "--auto-approve")
    assert applied.exit_code == 1
    assert "Nothing was changed." in applied.output
    assert not (project / "state/.sandbox/emulator/vapi.json").exists()


# -- the success report --------------------------------------------------------------------


def test_success_report_says_what_each_number_costs_and_reaches(run: Cli, project: Path) -> None:
    applied = run("apply", FULL, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    out = applied.output
    assert "call +1 415-555-0100 to talk to Acme Support (1.15 USD/month)" in out
    assert "dial 1001 on your SIP trunk to talk to Acme Support" in out
    assert "call +44 20 7946 0000 to talk to Acme Sales" in out
    vapi_line = next(line for line in out.splitlines() if "(free)" in line)
    assert vapi_line.strip().startswith("call +1 415-")
    assert SECRET not in out


def test_success_report_names_the_squad_or_workflow_a_number_routes_to(
    run: Cli, project: Path
) -> None:
    squad, workflow = "5b0c6e1a-2d3f-4a5b-8c7d-9e0f1a2b3c4d", "7d8e9f0a-1b2c-4d3e-9f4a-5b6c7d8e9f0a"
    (project / "m.yaml").write_text(
        "version: 1\nphoneNumbers:\n"
        f"  squad-line: {{provider: vapi, numberDesiredAreaCode: '415', squadId: {squad}}}\n"
        f"  flow-line: {{provider: vapi, numberDesiredAreaCode: '212', workflowId: {workflow}}}\n"
    )
    applied = run("apply", "m.yaml", "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert f": routes to squad {squad} (free)" in applied.output
    assert f": routes to workflow {workflow} (free)" in applied.output
    assert "no assistant" not in applied.output


# -- Vapi's free-number limit, and destroy without Twilio credentials ----------------------


def test_plan_warns_beyond_vapi_free_number_limit(run: Cli, project: Path) -> None:
    lines = "".join(
        f"  line-{i}: {{provider: vapi, numberDesiredAreaCode: '415'}}\n" for i in range(6)
    )
    (project / "m.yaml").write_text("version: 1\nphoneNumbers:\n" + lines)
    plan = run("plan", "m.yaml", "--sandbox")
    assert plan.exit_code == 0, plan.output
    assert "this plan leaves 6 free Vapi numbers, and Vapi allows 5 per account" in plan.output
    assert "phoneNumber.line-5" in plan.output
    (project / "m.yaml").write_text("version: 1\nphoneNumbers:\n" + lines.split("  line-5")[0])
    assert "free Vapi numbers" not in run("plan", "m.yaml", "--sandbox").output


def test_destroy_needs_twilio_credentials_only_to_release(run: Cli, project: Path) -> None:
    no_token = {"TWILIO_AUTH_TOKEN": ""}
    # Nothing released (full example: an imported Twilio number): the token is not needed.
    assert run("apply", FULL, "--sandbox", "--auto-approve").exit_code == 0
    gone = run("destroy", FULL, "--sandbox", "--auto-approve", env=no_token)
    assert gone.exit_code == 0, gone.output
    assert "Apply complete: 14 done, 0 failed" in gone.output

    # A bought number with `release: true`: releasing it needs the token, asked for at its line.
    assert run("apply", BUY, "--sandbox", "--auto-approve").exit_code == 0
    number = bought(project)["number"]
    refused = run("destroy", BUY, "--sandbox", "--auto-approve", env=no_token)
    assert refused.exit_code == 1, refused.output
    assert (
        f"buy-a-number.yaml:29:5: phoneNumbers.sf-line.twilioAuthToken: releasing {number} "
        "at Twilio needs this secret, and ${env:TWILIO_AUTH_TOKEN} is not set"
    ) in refused.output
    assert "Nothing was changed." in refused.output
    assert len(owned_numbers(project)) == 1
    assert run("plan", BUY, "--sandbox", "--detailed-exitcode").exit_code == 0


def test_destroy_ignores_unset_values_the_schema_would_check(run: Cli, project: Path) -> None:
    """An unset `${env:}` in a checked field (the account SID's pattern) does not stop a
    destroy: nothing from the manifest is sent, so its stand-in is not schema-checked."""
    text = (project / FULL).read_text()
    sid = "AC0123456789abcdef0123456789abcdef"
    assert sid in text
    (project / FULL).write_text(text.replace(sid, "${env:TWILIO_SID}"))
    env = {"TWILIO_SID": sid}
    assert run("apply", FULL, "--sandbox", "--auto-approve", env=env).exit_code == 0
    # Without the variable, plan refuses (it would send the value) ...
    assert run("plan", FULL, "--sandbox").exit_code == 1
    # ... but destroy goes ahead.
    gone = run("destroy", FULL, "--sandbox", "--auto-approve", env={"TWILIO_AUTH_TOKEN": ""})
    assert gone.exit_code == 0, gone.output
    assert "Apply complete: 14 done, 0 failed" in gone.output
