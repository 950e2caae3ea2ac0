"""`--replace ADDRESS` on plan and apply: delete-then-create with the reason "replace
requested" in every plan format. A phone number keeps its digits: its old Vapi object is
deleted and the same number imported again at once; a bought number is never bought again.
Through the CLI, against the emulator over a real socket whose requests are recorded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioner.emulator import VapiEmulator, running_server
from provisioner.emulator.server import with_twilio
from provisioner.emulator.store import EmulatorStore
from tests.conftest import Cli
from tests.gitops import FULL, ok

BUY = "examples/buy-a-number.yaml"


class Recorder:
    """WSGI middleware: every request's method and path, in the order they arrived."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.seen.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return self.app(environ, start_response)


@contextmanager
def recorded_api(folder: Path) -> Iterator[tuple[Recorder, dict[str, str]]]:
    vapi = VapiEmulator(EmulatorStore(folder / "vapi.json"))
    recorder = Recorder(with_twilio(vapi, folder / "twilio.json"))
    with running_server(recorder) as url:
        yield (
            recorder,
            {
                "VAPI_BASE_URL": url,
                "VAPI_TOKEN": "test-private-key",
                "TWILIO_BASE_URL": url,
                "TWILIO_PRICING_BASE_URL": url,
            },
        )


def state_of(manifest: str) -> dict[str, Any]:
    path = Path("state/examples") / (Path(manifest).stem + ".json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def vapi_numbers(folder: Path) -> list[dict[str, Any]]:
    doc = json.loads((folder / "vapi.json").read_text())
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "orgId" in value and "number" in value and "provider" in value:
                found.append(value)
                return
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    return found


def swap_is_back_to_back(seen: list[tuple[str, str]], old_id: str) -> None:
    """The old object's DELETE is followed at once by the import of the number."""
    i = seen.index(("DELETE", f"/phone-number/{old_id}"))
    assert seen[i + 1] == ("POST", "/phone-number"), seen[i - 2 : i + 3]


def test_replace_is_shown_in_every_format(run: Cli, project: Path, tmp_path: Path) -> None:
    with recorded_api(tmp_path) as (_, env):
        ok(run("apply", FULL, "--auto-approve", env=env))
        human = ok(run("plan", FULL, "--replace", "assistant.support", env=env))
        assert "-/+ assistant.support (Acme Support) must be replaced: replace requested" in human
        assert "Plan: 0 to create, 4 to update, 1 to replace, 0 to delete." in human
        doc = json.loads(
            ok(run("plan", FULL, "--replace", "assistant.support", "--format", "json", env=env))
        )
        change = next(c for c in doc["changes"] if c["address"] == "assistant.support")
        assert (change["action"], change["reason"], change["reason_text"]) == (
            "replace",
            "replace_requested",
            "replace requested",
        )
        md = ok(
            run("plan", FULL, "--replace", "assistant.support", "--format", "markdown", env=env)
        )
        assert "replace requested" in md
        bad = run("plan", FULL, "--replace", "assistant.nope", env=env)
        assert bad.exit_code == 1
        assert "--replace assistant.nope: no such resource in the manifest (known: " in bad.output


def test_replace_of_an_assistant_gives_it_a_new_id(run: Cli, project: Path, tmp_path: Path) -> None:
    with recorded_api(tmp_path) as (_, env):
        ok(run("apply", FULL, "--auto-approve", env=env))
        old = state_of(FULL)["resources"]["assistant.support"]["id"]
        out = ok(run("apply", FULL, "--auto-approve", "--replace", "assistant.support", env=env))
        assert "assistant.support: replaced" in out
        new = state_of(FULL)["resources"]["assistant.support"]["id"]
        assert new != old
        again = run("plan", FULL, "--detailed-exitcode", env=env)
        assert again.exit_code == 0, again.output


def test_replace_of_an_imported_twilio_number_keeps_it_answering(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with recorded_api(tmp_path) as (recorder, env):
        ok(run("apply", FULL, "--auto-approve", env=env))
        old = state_of(FULL)["resources"]["phoneNumber.main-line"]["id"]
        recorder.seen.clear()
        out = ok(
            run("apply", FULL, "--auto-approve", "--replace", "phoneNumber.main-line", env=env)
        )
        assert "replace requested" in out
        swap_is_back_to_back(recorder.seen, old)
        new = state_of(FULL)["resources"]["phoneNumber.main-line"]["id"]
        assert new != old
        lines = [n for n in vapi_numbers(tmp_path) if n["number"] == "+14155550100"]
        assert [n["id"] for n in lines] == [new]
        again = run("plan", FULL, "--detailed-exitcode", env=env)
        assert again.exit_code == 0, again.output


def test_replace_of_a_bought_number_imports_it_again_and_never_buys(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    with recorded_api(tmp_path) as (recorder, env):
        ok(run("apply", BUY, "--auto-approve", env=env))
        entry = state_of(BUY)["resources"]["phoneNumber.sf-line"]
        bought = entry["extra"]["purchase"]
        recorder.seen.clear()
        out = ok(run("apply", BUY, "--auto-approve", "--replace", "phoneNumber.sf-line", env=env))
        assert "replace requested" in out
        assert "bought" not in out.split("Planned actions")[1].split("Plan:")[1]
        swap_is_back_to_back(recorder.seen, entry["id"])
        # Nothing bought nor released at Twilio: only Vapi's requests, and price lookups.
        twilio_writes = [
            (m, p) for m, p in recorder.seen if p.startswith("/2010-04-01") and m != "GET"
        ]
        assert twilio_writes == []
        after = state_of(BUY)["resources"]["phoneNumber.sf-line"]
        assert after["extra"]["purchase"]["number"] == bought["number"]
        assert after["extra"]["purchase"]["sid"] == bought["sid"]
        assert after["id"] != entry["id"]
        owned = json.loads((tmp_path / "twilio.json").read_text())["incoming_phone_numbers"]
        assert [o["sid"] for o in owned] == [bought["sid"]]
        lines = [n for n in vapi_numbers(tmp_path) if n["number"] == bought["number"]]
        assert [n["id"] for n in lines] == [after["id"]]
        again = run("plan", BUY, "--detailed-exitcode", env=env)
        assert again.exit_code == 0, again.output
