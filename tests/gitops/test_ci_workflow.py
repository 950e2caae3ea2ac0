"""examples/ci/provisioner.yml, the CI recipe: its shape (a PR job that comments the plan
and keeps the plan file, an apply-on-merge job that applies that very file, a scheduled
drift job), every provisioner command in it parses with the flags it uses, and its run
steps work: they are executed with bash as GitHub runs them, against the emulator served
over HTTP, with the artifact hand-over simulated and the state in S3 (moto's server)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml

from provisioner.cli.main import cli
from tests.conftest import EXAMPLES, REPO, SECRET
from tests.gitops.conftest import LiveApi
from tests.state.conftest import MotoServer, moto_server  # noqa: F401 - the fixture

WORKFLOW = REPO / "examples" / "ci" / "provisioner.yml"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def step(doc: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    for s in doc["jobs"][job]["steps"]:
        if s.get("name") == name or s.get("uses", "").startswith(name):
            return dict(s)
    raise AssertionError(f"no step {name!r} in job {job}")


def commands(script: str) -> list[list[str]]:
    """The provisioner command lines of a run script, without redirections and pipes."""
    out = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("provisioner "):
            continue
        words = shlex.split(line.split("#")[0], posix=True)
        cmd: list[str] = []
        for w in words:
            if w in (">", ">>", "|", "2>", "&&", "||"):
                break
            cmd.append(w)
        out.append(cmd)
    return out


def all_commands(doc: dict[str, Any]) -> list[list[str]]:
    return [
        c for job in doc["jobs"].values() for s in job["steps"] for c in commands(s.get("run", ""))
    ]


def test_workflow_shape() -> None:
    doc = load()
    assert set(doc["on"]) >= {"pull_request", "push", "schedule"}
    assert doc["on"]["push"]["branches"] == ["main"]
    assert doc["on"]["schedule"][0]["cron"]
    assert doc["defaults"]["run"]["shell"] == "bash"  # -eo pipefail on GitHub's runners
    assert doc["env"]["NO_COLOR"] == "1"
    assert "secrets.VAPI_TOKEN" in step(doc, "plan", "Plan")["env"]["VAPI_TOKEN"]
    jobs = doc["jobs"]

    plan = jobs["plan"]
    assert "pull_request" in plan["if"]
    assert plan["permissions"]["pull-requests"] == "write"
    plan_cmd = commands(step(doc, "plan", "Plan")["run"])
    assert plan_cmd == [
        [
            "provisioner",
            "plan",
            "vapi.yaml",
            "--out",
            "plan.bin",
            "--format",
            "markdown",
            "--detailed-exitcode",
        ]
    ]
    upload = step(doc, "plan", "actions/upload-artifact")
    assert "plan.bin" in upload["with"]["path"].split()
    comment = step(doc, "plan", "Comment the plan on the pull request")
    assert comment["with"]["path"] == "plan.md"
    assert "> plan.md" in step(doc, "plan", "Plan")["run"]

    apply = jobs["apply"]
    assert "push" in apply["if"]
    assert apply["permissions"]["actions"] == "read"  # to download another run's artifact
    assert apply["permissions"]["pull-requests"] == "read"  # to find the merged PR
    download = step(doc, "apply", "Fetch the plan reviewed on it")
    assert download["with"]["name"] == upload["with"]["name"]
    folder = download["with"]["path"]
    (apply_cmd,) = commands(step(doc, "apply", "Apply exactly that plan")["run"])
    assert apply_cmd == ["provisioner", "apply", f"{folder}/plan.bin", "--json"]
    assert "--auto-approve" not in apply_cmd  # a saved plan needs none
    # The state is in S3 (vapi.yaml's `state:`): nothing is committed back, no state file
    # travels in artifacts.
    assert apply["permissions"]["contents"] == "read"
    assert "git push" not in WORKFLOW.read_text() and "state/" not in WORKFLOW.read_text()
    for job, name in (("plan", "Plan"), ("apply", "Apply exactly that plan")):
        assert (
            "secrets.AWS_SECRET_ACCESS_KEY" in step(doc, job, name)["env"]["AWS_SECRET_ACCESS_KEY"]
        )
    assert "always()" in comment["if"]  # a failed plan replaces the old comment too

    drift = jobs["drift"]
    assert "schedule" in drift["if"]
    (drift_cmd,) = commands(step(doc, "drift", "Drift check (exit 2 = drift found)")["run"])
    assert drift_cmd[:3] == ["provisioner", "drift", "vapi.yaml"]


def test_every_command_exists_with_its_flags() -> None:
    found = all_commands(load())
    assert {c[1] for c in found} == {"validate", "plan", "apply", "drift", "show"}
    for cmd in found:
        root = click.Context(cli, info_name="provisioner")
        sub = cli.get_command(root, cmd[1])
        assert sub is not None, cmd
        try:
            sub.make_context(cmd[1], cmd[2:], parent=root)
        except click.UsageError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{shlex.join(cmd)}: {exc}")


# Running the steps ---------------------------------------------------------------------


class Runner:
    """Runs a workflow step's script as GitHub does, in a checkout folder."""

    def __init__(self, doc: dict[str, Any], live: LiveApi, tmp: Path, s3: MotoServer) -> None:
        self.doc = doc
        self.tmp = tmp
        self.s3 = s3
        self.bucket = s3.new_bucket()
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("VAPI_", "TWILIO_"))},
            **live.env,
            # The repository's AWS secrets, and (as a runner's config would) the endpoint.
            **s3.env(),
            "TWILIO_AUTH_TOKEN": SECRET,
            "NO_COLOR": "1",
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            # What GitHub sets for a push to main.
            "GITHUB_REF_NAME": "main",
            "GITHUB_REPOSITORY": "acme/vapi-config",
            "GITHUB_SHA": "0" * 40,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "42",
        }

    def checkout(self, name: str) -> Path:
        """A clone of the user's repository: vapi.yaml and its prompts."""
        repo = self.tmp / name
        repo.mkdir()
        state = f"state: {{backend: s3, bucket: {self.bucket}, key: vapi.json}}\n"
        (repo / "vapi.yaml").write_text(state + (EXAMPLES / "full.yaml").read_text())
        shutil.copytree(EXAMPLES / "prompts", repo / "prompts")
        # A git work tree of its own, as a checkout is: its state is <repo>/state/vapi.json.
        git(repo, "init", "-q", "-b", "main")
        return repo

    def run(
        self, job: str, name: str, repo: Path, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        s = step(self.doc, job, name)
        script = s["run"]
        assert "${{" not in script, "expressions would need GitHub to expand them"
        shell = s.get("shell") or self.doc.get("defaults", {}).get("run", {}).get("shell")
        # What GitHub runs for `shell: bash`, and for no shell on Linux.
        argv = (
            ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
            if shell == "bash"
            else ["bash", "-e"]
        )
        path = self.tmp / f"step-{job}-{len(list(self.tmp.glob('step-*')))}.sh"
        path.write_text(script)
        outputs = self.tmp / "github_output"
        env = {
            **self.env,
            **self.step_env(s),
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(self.tmp / f"summary-{job}.md"),
            **(extra_env or {}),
        }
        return subprocess.run(
            [*argv, str(path)], cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )

    def step_env(self, s: dict[str, Any]) -> dict[str, str]:
        """The step's `env:` as GitHub expands it: `${{ secrets.X }}` is the secret, or ""
        when the repository does not define it (the test's env holds the defined ones);
        other expressions are GitHub's own, and left out."""
        out = {}
        for k, v in (s.get("env") or {}).items():
            secret = re.fullmatch(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", str(v))
            if secret:
                out[k] = self.env.get(secret.group(1), "")
            elif "${{" not in str(v):
                out[k] = str(v)
        return out

    def state(self) -> dict[str, Any]:
        """The state as stored in S3."""
        got = self.s3.client().get_object(Bucket=self.bucket, Key="vapi.json")  # type: ignore[attr-defined]
        return dict(json.loads(got["Body"].read()))

    def hand_over_artifact(self, source: Path, target: Path) -> None:
        """upload-artifact (paths relative to their common folder) then download-artifact."""
        upload = step(self.doc, "plan", "actions/upload-artifact")["with"]
        download = step(self.doc, "apply", "Fetch the plan reviewed on it")["with"]
        paths = [source / p for p in upload["path"].split()]
        for p in paths:
            assert p.exists(), f"{p} is not there to upload"
        root = Path(os.path.commonpath([p.parent for p in paths]))
        for p in paths:
            dest = target / download["path"] / p.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)


def test_the_steps_run(
    live_api: LiveApi,
    tmp_path: Path,
    moto_server: MotoServer,  # noqa: F811
) -> None:
    doc = load()
    gh = Runner(doc, live_api, tmp_path, moto_server)

    # Pull request: the plan job, on a repository with no state yet.
    pr = gh.checkout("pr")
    planned = gh.run("plan", "Plan", pr)
    assert planned.returncode == 0, planned.stderr
    assert "exitcode=2" in (tmp_path / "github_output").read_text()
    comment = (pr / "plan.md").read_text()
    assert comment.startswith("### Provisioner plan")
    assert "**Plan:** 14 to create, 0 to update, 0 to replace, 0 to delete." in comment
    assert (tmp_path / "summary-plan.md").read_text() == comment
    assert SECRET not in comment and SECRET.encode() not in (pr / "plan.bin").read_bytes()

    # Merge: the apply job, on main, with the PR's artifact (the plan alone: the state,
    # new and empty, was saved in S3 by the plan).
    main = gh.checkout("main")
    gh.hand_over_artifact(pr, main)

    applied = gh.run("apply", "Apply exactly that plan", main)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    events = [json.loads(line) for line in (main / "apply.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "summary" and events[-1]["ok"] is True
    assert events[-1]["counts"]["done"] == 14
    assert live_api.app.stats()["objects"]["assistant"] == 2

    state = gh.state()
    assert len(state["resources"]) == 14
    assert SECRET not in json.dumps(state)

    # The same plan again is stale: refused, and `| tee` does not hide the failure.
    again = gh.run("apply", "Apply exactly that plan", main)
    assert again.returncode == 1
    assert "the saved plan is stale" in again.stderr

    # Nightly: no drift, then a dashboard edit is found.
    assert gh.run("drift", "Drift check (exit 2 = drift found)", main).returncode == 0
    assert "No drift" in (tmp_path / "summary-drift.md").read_text()
    sales = state["resources"]["assistant.sales"]["id"]
    r = httpx.patch(
        f"{live_api.url}/assistant/{sales}",
        json={"firstMessage": "Edited in the dashboard"},
        headers={"Authorization": "Bearer someone"},
    )
    assert r.status_code == 200
    drift = gh.run("drift", "Drift check (exit 2 = drift found)", main)
    assert drift.returncode == 2, drift.stderr
    summary = (tmp_path / "summary-drift.md").read_text()
    assert "#### Changed outside the manifest" in summary
    assert "Edited in the dashboard" in summary


def test_a_plan_made_stale_before_the_merge_is_refused(
    live_api: LiveApi,
    tmp_path: Path,
    moto_server: MotoServer,  # noqa: F811
) -> None:
    doc = load()
    gh = Runner(doc, live_api, tmp_path, moto_server)
    pr = gh.checkout("pr")
    assert gh.run("plan", "Plan", pr).returncode == 0
    main = gh.checkout("main")
    gh.hand_over_artifact(pr, main)
    # Someone edits the manifest on main after the review (e.g. a second merge).
    manifest = main / "vapi.yaml"
    manifest.write_text(manifest.read_text().replace("temperature: 0.3", "temperature: 0.4"))
    refused = gh.run("apply", "Apply exactly that plan", main)
    assert refused.returncode == 1
    assert "the manifest vapi.yaml has changed since the plan was made" in refused.stderr
    assert live_api.app.stats()["objects"]["assistant"] == 0


def test_installs_this_tool_pinned_never_the_pypi_name() -> None:
    """`provisioner` on PyPI is someone else's project: the workflow installs this one
    from its repository, at a pinned tag or commit, named in one place."""
    doc = load()
    spec = doc["env"]["PROVISIONER_PIP_SPEC"]
    assert spec.startswith("vapi-provisioner[s3] @ git+https://") and "@" in spec.split("/")[-1]
    installs = [
        s["run"] for job in doc["jobs"].values() for s in job["steps"] if "pip" in s.get("run", "")
    ]
    assert len(installs) == len(doc["jobs"])  # one per job
    for script in installs:
        assert script.strip() == 'pip install "$PROVISIONER_PIP_SPEC"', script
    assert not re.search(r"pip install\s+['\"]?provisioner\b", WORKFLOW.read_text())


def test_secrets_reach_only_the_provisioner_steps() -> None:
    doc = load()
    assert "secrets." not in json.dumps(doc["env"])
    given = 0
    for job in doc["jobs"].values():
        assert "env" not in job
        for s in job["steps"]:
            if "secrets." not in json.dumps(s):
                continue
            given += 1
            assert "uses" not in s, f"a third-party action is given a secret: {s['uses']}"
            assert commands(s["run"]), f"{s.get('name')}: a secret for a step without provisioner"
    assert given == 4  # validate, plan, apply, drift


def test_actions_pinned_by_commit() -> None:
    lines = [ln.strip() for ln in WORKFLOW.read_text().splitlines() if "uses:" in ln]
    assert lines
    for line in lines:
        assert re.search(r"@[0-9a-f]{40} # v\d", line), f"not pinned by commit: {line}"


def test_a_failed_plan_replaces_the_comment(
    live_api: LiveApi,
    tmp_path: Path,
    moto_server: MotoServer,  # noqa: F811
) -> None:
    doc = load()
    gh = Runner(doc, live_api, tmp_path, moto_server)
    pr = gh.checkout("pr")
    manifest = pr / "vapi.yaml"
    manifest.write_text(
        manifest.read_text().replace("${assistant.support.id}", "${assistant.nope.id}", 1)
    )
    assert gh.run("plan", "Validate", pr).returncode == 1
    failed = gh.run("plan", "Say that the plan failed", pr)
    assert failed.returncode == 0, failed.stderr
    comment = (pr / "plan.md").read_text()
    assert comment.startswith("### Provisioner plan failed")
    assert "assistant.nope" in comment
    assert "https://github.com/acme/vapi-config/actions/runs/42" in comment

    # The plan itself failing (here: no API key) says so too.
    planned = gh.run("plan", "Plan", gh.checkout("pr2"), {"VAPI_TOKEN": ""})
    assert planned.returncode == 1
    failed = gh.run("plan", "Say that the plan failed", tmp_path / "pr2")
    assert failed.returncode == 0, failed.stderr
    comment = (tmp_path / "pr2" / "plan.md").read_text()
    assert comment.startswith("### Provisioner plan failed") and "VAPI_TOKEN" in comment
    assert SECRET not in comment
    assert step(doc, "plan", "Say that the plan failed")["if"] == "failure()"


def test_a_direct_push_to_main_says_why_nothing_is_applied(
    live_api: LiveApi,
    tmp_path: Path,
    moto_server: MotoServer,  # noqa: F811
) -> None:
    gh = Runner(load(), live_api, tmp_path, moto_server)
    main = gh.checkout("main")
    # `gh api .../commits/SHA/pulls` finds no merged pull request for a direct push.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text("#!/bin/sh\nexit 0\n")
    (fake / "gh").chmod(0o755)
    path = f"{fake}{os.pathsep}{gh.env['PATH']}"
    found = gh.run("apply", "Find the merged pull request", main, {"PATH": path})
    assert found.returncode == 1
    assert "pushed to main directly, not merged from a pull request" in found.stdout
    outputs = tmp_path / "github_output"
    assert not outputs.exists() or "number=" not in outputs.read_text()

    # With a merged pull request, its number is handed to the download step.
    (fake / "gh").write_text("#!/bin/sh\necho 17\n")
    found = gh.run("apply", "Find the merged pull request", main, {"PATH": path})
    assert found.returncode == 0, found.stderr
    assert "number=17" in (tmp_path / "github_output").read_text()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout
