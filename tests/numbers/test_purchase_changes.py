"""Changing a bought number's `purchase:`: the new number is bought while the old one
still answers in Vapi (so a purchase that cannot happen leaves the line working), the old
one is released only once the new one is in Vapi, numbers whose release failed are never
forgotten (the plan shows each as a release of its own), and a number bought for other
criteria is never adopted. The CLI (CliRunner, or a real subprocess killed with SIGKILL)
against the Vapi and Twilio emulators over a real socket."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from wsgiref.types import StartResponse, WSGIEnvironment

import httpx
import pytest

from provisioner.emulator.app import VapiEmulator
from provisioner.emulator.server import running_server
from provisioner.emulator.store import EmulatorStore
from provisioner.emulator.twilio import TwilioEmulator
from provisioner.plan.purchase import FRIENDLY_NAME_MAX, purchase_marker
from provisioner.purchasing import UNSET_FOR_DESTROY, PurchaseError, Twilio
from provisioner.settings import Settings
from provisioner.values import Sensitive
from tests.conftest import Cli
from tests.numbers.test_purchase import BUY
from tests.numbers.test_purchase_rules import closed_port, edit
from tests.numbers.test_secrets_and_kills import (
    _HoldFirstPurchase,
    _one_server,
    held_sandbox,
    kill_while_held,
)
from tests.reliability.harness import cli

STATE = Path("state/examples/buy-a-number.json")
ADDRESS = "phoneNumber.sf-line"


class _Servers:
    """Vapi's and Twilio's emulators on one real port; Twilio refuses releases while
    `refuse_releases` is set (as Twilio does for a number it cannot give up yet)."""

    def __init__(self, tmp_path: Path) -> None:
        self.vapi = VapiEmulator(EmulatorStore(path=None))
        self.twilio = TwilioEmulator(store_path=tmp_path / "twilio.json")
        self.refuse_releases = threading.Event()
        self.url = ""

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if (
            self.refuse_releases.is_set()
            and environ.get("REQUEST_METHOD") == "DELETE"
            and "/IncomingPhoneNumbers/" in path
        ):
            body = {"code": 21618, "message": "release refused for this test", "status": 400}
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return cast(Iterable[bytes], _one_server(self.vapi, self.twilio)(environ, start_response))

    def env(self, **overrides: str) -> dict[str, str]:
        base = {
            "VAPI_BASE_URL": self.url,
            "VAPI_TOKEN": "token",
            "TWILIO_BASE_URL": self.url,
            "TWILIO_PRICING_BASE_URL": self.url,
        }
        return {**base, **overrides}

    def vapi_numbers(self) -> list[str]:
        got = httpx.get(f"{self.url}/phone-number", headers={"Authorization": "Bearer token"})
        got.raise_for_status()
        return sorted(str(n.get("number")) for n in got.json())

    def owned_sids(self) -> list[str]:
        return sorted(str(o["sid"]) for o in self.twilio.owned())


@contextmanager
def servers(tmp_path: Path) -> Iterator[_Servers]:
    s = _Servers(tmp_path)
    with running_server(s.app) as url:
        s.url = url
        yield s


def entry(project: Path) -> dict[str, Any]:
    return dict(json.loads((project / STATE).read_text())["resources"][ADDRESS])


def test_a_purchase_change_that_cannot_buy_keeps_the_old_number_in_vapi(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with servers(tmp_path) as s:
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        before = entry(project)
        old = before["extra"]["purchase"]["number"]
        assert s.vapi_numbers() == [old]
        edit(project / BUY, 'areaCode: "415"', 'areaCode: "212"')

        pricing_down = s.env(TWILIO_PRICING_BASE_URL=f"http://127.0.0.1:{closed_port()}")
        applied = run("apply", BUY, "--auto-approve", env=pricing_down)
        assert applied.exit_code == 1, applied.output
        assert "phoneNumber.sf-line" in applied.output
        assert "not buying a number: the plan could not show its price" in applied.output
        assert "Traceback" not in applied.output
        # The old number still answers in Vapi, state still knows it, nothing was bought.
        assert s.vapi_numbers() == [old]
        assert entry(project) == before
        assert s.owned_sids() == [before["extra"]["purchase"]["sid"]]

        # Once Twilio's prices are back, the change goes through.
        again = run("apply", BUY, "--auto-approve", env=s.env())
        assert again.exit_code == 0, again.output
        new = entry(project)["extra"]["purchase"]
        assert new["number"].startswith("+1212")
        assert s.vapi_numbers() == [new["number"]]
        assert s.owned_sids() == [new["sid"]]


def test_a_failed_release_never_takes_the_line_down_and_is_retried_by_the_next_apply(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with servers(tmp_path) as s:
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        first = entry(project)["extra"]["purchase"]
        edit(project / BUY, 'areaCode: "415"', 'areaCode: "212"')

        s.refuse_releases.set()
        replaced = run("apply", BUY, "--auto-approve", env=s.env())
        # The replace goes through (with a warning): the new number answers in Vapi.
        assert replaced.exit_code == 0, replaced.output
        assert f"warning: {first['number']} could not be released at Twilio" in replaced.output
        assert "release refused for this test" in replaced.output
        now = entry(project)["extra"]
        assert now["purchase"]["number"].startswith("+1212")
        assert s.vapi_numbers() == [now["purchase"]["number"]]
        assert first["sid"] in json.dumps(now["replaced"])
        assert sorted(s.owned_sids()) == sorted([first["sid"], now["purchase"]["sid"]])

        # The plan shows the pending release as a change of its own, in every format.
        plan = run("plan", BUY, "--detailed-exitcode", env=s.env())
        assert plan.exit_code == 2, plan.output
        assert f"- {ADDRESS} (replaced {first['number']}) will be released at Twilio" in (
            plan.output
        )
        assert "1 to release at Twilio" in plan.output
        doc = json.loads(run("plan", BUY, "--format", "json", env=s.env()).output)
        assert doc["format_version"] == "1.2" and doc["summary"]["release"] == 1
        (release,) = [c for c in doc["changes"] if c["action"] == "release"]
        assert release["address"] == ADDRESS and release["reason"] == "release_pending"
        assert release["purchase"]["sid"] == first["sid"]
        markdown = run("plan", BUY, "--format", "markdown", env=s.env()).output
        assert f"| `-` | release | `{ADDRESS} (replaced {first['number']})` |" in markdown

        # Still refused: the release fails on its own, the line stays up.
        still = run("apply", BUY, "--auto-approve", env=s.env())
        assert still.exit_code == 1, still.output
        assert "release refused for this test" in still.output
        assert s.vapi_numbers() == [now["purchase"]["number"]]

        s.refuse_releases.clear()
        retried = run("apply", BUY, "--auto-approve", env=s.env())
        assert retried.exit_code == 0, retried.output
        assert f"released {first['number']} at Twilio" in retried.output
        now = entry(project)
        assert "replaced" not in now["extra"]
        assert s.owned_sids() == [now["extra"]["purchase"]["sid"]]
        assert s.vapi_numbers() == [now["extra"]["purchase"]["number"]]
        plan = run("plan", BUY, "--detailed-exitcode", env=s.env())
        assert plan.exit_code == 0, plan.output


def test_two_purchase_changes_in_a_row_lose_no_unreleased_number(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with servers(tmp_path) as s:
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        first = entry(project)["extra"]["purchase"]
        edit(project / BUY, 'areaCode: "415"', 'areaCode: "212"')
        s.refuse_releases.set()
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        second = entry(project)["extra"]["purchase"]
        assert second["number"].startswith("+1212")

        # Other criteria again while the first number is still to be released.
        edit(project / BUY, 'areaCode: "212"', 'areaCode: "650"')
        failed = run("apply", BUY, "--auto-approve", env=s.env())
        assert failed.exit_code == 1, failed.output  # the first number's release, again
        pending = json.dumps(entry(project)["extra"]["replaced"])
        assert first["sid"] in pending and second["sid"] in pending
        third = entry(project)["extra"]["purchase"]
        assert third["number"].startswith("+1650")
        assert s.vapi_numbers() == [third["number"]]

        s.refuse_releases.clear()
        applied = run("apply", BUY, "--auto-approve", env=s.env())
        assert applied.exit_code == 0, applied.output
        assert s.owned_sids() == [third["sid"]]
        assert "replaced" not in entry(project)["extra"]
        assert s.vapi_numbers() == [third["number"]]
        assert run("plan", BUY, "--detailed-exitcode", env=s.env()).exit_code == 0


def test_destroy_releases_a_pending_release_with_the_number_and_forgets_the_entry(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with servers(tmp_path) as s:
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        first = entry(project)["extra"]["purchase"]
        edit(project / BUY, 'areaCode: "415"', 'areaCode: "212"')
        s.refuse_releases.set()
        assert run("apply", BUY, "--auto-approve", env=s.env()).exit_code == 0
        s.refuse_releases.clear()

        doc = json.loads(run("plan", BUY, "--destroy", "--format", "json", env=s.env()).output)
        actions = sorted(c["action"] for c in doc["changes"] if c["address"] == ADDRESS)
        assert actions == ["delete", "release"]
        cost = {n["number"]: n["status"] for n in doc["cost"]["numbers"]}
        assert cost[first["number"]] == "removed"

        gone = run("destroy", BUY, "--auto-approve", env=s.env())
        assert gone.exit_code == 0, gone.output
        assert f"released {first['number']} at Twilio" in gone.output
        assert s.owned_sids() == [] and s.vapi_numbers() == []
        state = json.loads((project / STATE).read_text())
        assert ADDRESS not in state["resources"]


def test_a_number_bought_for_other_criteria_by_a_killed_run_is_not_adopted(
    tmp_path: Path,
) -> None:
    """Killed after Twilio sold a 415 number but before state recorded it; the manifest then
    asks for 212: the 415 number is released (`release: true`), not imported as the 212 one."""
    hook = _HoldFirstPurchase()
    with held_sandbox(tmp_path, hook) as box:
        twilio, sandbox, cwd = box.twilio, box.sandbox, box.cwd
        kill_while_held(hook, sandbox, cwd, "apply", BUY, "--auto-approve")
        assert [o["phone_number"][:5] for o in twilio.owned()] == ["+1415"]

        edit(cwd / BUY, 'areaCode: "415"', 'areaCode: "212"')
        second = cli(sandbox, cwd, "apply", BUY, "--auto-approve")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "bought earlier" not in second.stdout
        record = json.loads((cwd / STATE).read_text())["resources"][ADDRESS]["extra"]
        assert record["purchase"]["number"].startswith("+1212")
        assert [o["sid"] for o in twilio.owned()] == [record["purchase"]["sid"]]
        assert "replaced" not in record
        assert cli(sandbox, cwd, "plan", BUY, "--detailed-exitcode").returncode == 0


class _HoldSecondPurchase(_HoldFirstPurchase):
    """After-purchase hook: the second purchase's answer waits until released."""

    def __call__(self, resource: Mapping[str, Any]) -> None:
        self.sold.append(str(resource["sid"]))
        if len(self.sold) == 2:
            self.held.set()
            self.go.wait(60)


def test_a_purchase_change_killed_after_twilio_sold_the_new_number_completes_next_run(
    tmp_path: Path,
) -> None:
    """SIGKILL while Twilio sells the replacement: the old number still answers in Vapi, and
    the next apply finds the new one (no second purchase), swaps them, releases the old."""
    hook = _HoldSecondPurchase()
    with held_sandbox(tmp_path, hook) as box:
        twilio, sandbox, cwd, url = box.twilio, box.sandbox, box.cwd, box.url
        first = cli(sandbox, cwd, "apply", BUY, "--auto-approve")
        assert first.returncode == 0, first.stdout + first.stderr
        old = json.loads((cwd / STATE).read_text())["resources"][ADDRESS]["extra"]["purchase"]
        edit(cwd / BUY, 'areaCode: "415"', 'areaCode: "212"')
        kill_while_held(hook, sandbox, cwd, "apply", BUY, "--auto-approve")
        listed = httpx.get(f"{url}/phone-number", headers={"Authorization": "Bearer token"})
        assert [n["number"] for n in listed.json()] == [old["number"]]

        plan = cli(sandbox, cwd, "plan", BUY)
        assert "-/+ phoneNumber.sf-line" in plan.stdout, plan.stdout + plan.stderr
        second = cli(sandbox, cwd, "apply", BUY, "--auto-approve")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "bought earlier" in second.stdout
        record = json.loads((cwd / STATE).read_text())["resources"][ADDRESS]["extra"]
        assert record["purchase"]["number"].startswith("+1212")
        assert [o["sid"] for o in twilio.owned()] == [record["purchase"]["sid"]] == hook.sold[1:]
        assert "replaced" not in record
        listed = httpx.get(f"{url}/phone-number", headers={"Authorization": "Bearer token"})
        assert [n["number"] for n in listed.json()] == [record["purchase"]["number"]]
        assert cli(sandbox, cwd, "plan", BUY, "--detailed-exitcode").returncode == 0


def test_the_marker_names_the_criteria_within_twilios_limit() -> None:
    lineage = "0123456789abcdef"
    x = purchase_marker(ADDRESS, lineage, {"areaCode": "415"})
    assert x == purchase_marker(
        ADDRESS, lineage, {"country": "US", "type": "local", "areaCode": "415"}
    )
    assert x != purchase_marker(ADDRESS, lineage, {"areaCode": "212"})
    assert x.startswith("provisioner 01234567 ") and x.endswith(f" {ADDRESS}")
    long_a = "phoneNumber." + "a" * 60 + "-east"
    long_b = "phoneNumber." + "a" * 60 + "-west"
    a = purchase_marker(long_a, lineage, {}, "PN" + "0" * 32)
    b = purchase_marker(long_b, lineage, {}, "PN" + "0" * 32)
    assert len(a) == len(b) == FRIENDLY_NAME_MAX
    assert a != b


# -- one rule for Twilio secrets -------------------------------------------------------------


def test_a_manifest_secret_that_is_not_set_is_never_replaced_by_the_environment(
    tmp_path: Path,
) -> None:
    """The manifest's value when it gives one, else TWILIO_AUTH_TOKEN: a `${env:...}` that
    destroy left unset is refused (as destroy's release check refuses it), not swapped
    for TWILIO_AUTH_TOKEN, which may be another account's."""
    env = {"TWILIO_AUTH_TOKEN": "environment-token"}
    twilio = Twilio(Settings(environ=env, sandbox_dir=tmp_path))
    account = "AC0123456789abcdef0123456789abcdef"
    try:
        assert twilio.credentials({"twilioAccountSid": account}) == (account, "environment-token")
        given = {"twilioAccountSid": account, "twilioAuthToken": Sensitive("manifest-token")}
        assert twilio.credentials(given) == (account, "manifest-token")
        for body in (
            {"twilioAccountSid": account, "twilioAuthToken": Sensitive(UNSET_FOR_DESTROY)},
            {
                "twilioAccountSid": account,
                "twilioApiKey": "SK" + "0" * 32,
                "twilioApiSecret": Sensitive(UNSET_FOR_DESTROY),
            },
        ):
            with pytest.raises(PurchaseError, match="not set") as caught:
                twilio.credentials(body)
            assert "environment-token" not in str(caught.value)
    finally:
        twilio.close()
