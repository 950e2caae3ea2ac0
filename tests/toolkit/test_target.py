"""`--target ADDRESS` on plan, apply and destroy: only those resources and what they
depend on (for destroy: what depends on them); the plan says it is partial and what it left
out, in every format; the rest stays pending. Through the CLI against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli
from tests.gitops import FULL, FULL_STATE, Snapshot, apply_full, edit_manifest, ok, read_state

SUPPORT_TEMP = ("temperature: 0.3", "temperature: 0.5")
SALES_NAME = ("name: Acme Sales", "name: Acme Sales Team")


def test_targeted_apply_leaves_an_untargeted_change_pending(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, SUPPORT_TEMP, SALES_NAME)

    partial = ok(run("plan", FULL, "--sandbox", "--target", "assistant.support"))
    assert partial.startswith("Warning: partial plan (--target assistant.support)")
    assert "Left out, still pending: assistant.sales." in partial
    assert "~ assistant.support" in partial
    assert "assistant.sales" not in partial.split("Planned actions")[1]
    assert "Plan: 0 to create, 1 to update" in partial

    applied = ok(run("apply", FULL, "--sandbox", "--auto-approve", "--target", "assistant.support"))
    assert "assistant.support: updated" in applied
    assert "assistant.sales: updated" not in applied

    later = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert later.exit_code == 2, later.output
    assert "~ assistant.sales" in later.output
    assert "~ assistant.support" not in later.output
    assert "partial plan" not in later.output


def test_a_target_brings_what_it_depends_on(run: Cli, project: Path) -> None:
    # Nothing applied yet: the number needs its assistant created first.
    out = ok(run("plan", FULL, "--sandbox", "--target", "phoneNumber.test-line"))
    assert "+ assistant.support" in out
    assert "+ phoneNumber.test-line" in out
    assert "+ assistant.sales" not in out
    assert "Plan: 2 to create" in out
    doc = json.loads(
        ok(run("plan", FULL, "--sandbox", "--format", "json", "--target", "phoneNumber.test-line"))
    )
    assert doc["format_version"] == "1.2"
    assert doc["partial"] is True
    assert doc["targets"] == ["phoneNumber.test-line"]
    assert "assistant.sales" in doc["excluded"]
    assert "phoneNumber.test-line" not in doc["excluded"]
    assert {c["address"] for c in doc["changes"]} == {"assistant.support", "phoneNumber.test-line"}
    full = json.loads(ok(run("plan", FULL, "--sandbox", "--format", "json")))
    assert (full["partial"], full["targets"], full["excluded"]) == (False, [], [])


def test_targeted_destroy_takes_what_depends_on_the_target(run: Cli, project: Path) -> None:
    apply_full(run)
    out = ok(run("destroy", FULL, "--sandbox", "--auto-approve", "--target", "assistant.sales"))
    assert "Warning: partial plan (--target assistant.sales): only these and what depends on" in out
    for gone in ("assistant.sales", "phoneNumber.uk-line", "phoneNumber.sales-line"):
        assert f"{gone}: deleted" in out
    left = read_state(FULL_STATE)["resources"]
    assert "assistant.sales" not in left
    assert {"assistant.support", "phoneNumber.main-line", "phoneNumber.test-line"} <= set(left)


def test_markdown_and_saved_plans_stay_partial(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, SUPPORT_TEMP, SALES_NAME)
    md = ok(
        run(
            "plan",
            FULL,
            "--sandbox",
            "--format",
            "markdown",
            "--target",
            "assistant.support",
            "--out",
            "p.bin",
        )
    )
    assert "> **Warning:** partial plan (--target assistant.support)" in md
    assert "> Left out, still pending: assistant.sales." in md
    assert ok(run("show", "p.bin", "--format", "markdown")) == md
    human = ok(run("show", "p.bin"))
    assert human.startswith("Warning: partial plan (--target assistant.support)")

    applied = ok(run("apply", "p.bin", "--sandbox"))
    assert "assistant.support: updated" in applied
    assert "assistant.sales: updated" not in applied
    later = ok(run("plan", FULL, "--sandbox"))
    assert "~ assistant.sales" in later

    refused = run("apply", "p.bin", "--sandbox", "--target", "assistant.sales")
    assert refused.exit_code == 1, refused.output
    assert "a saved plan runs as it was made" in refused.output


def test_an_unknown_target_is_refused_listing_the_known_ones(run: Cli, project: Path) -> None:
    apply_full(run)
    before = Snapshot()
    for command in (
        ("plan", FULL, "--sandbox"),
        ("apply", FULL, "--sandbox", "--auto-approve"),
        ("destroy", FULL, "--sandbox", "--auto-approve"),
    ):
        result = run(*command, "--target", "assistant.nope")
        assert result.exit_code == 1, result.output
        assert "--target assistant.nope: no such resource in the manifest or its state" in (
            result.output
        )
        assert "(known: assistant.support, assistant.sales, phoneNumber.test-line" in result.output
        assert "Traceback" not in result.output
    assert before.unchanged()
