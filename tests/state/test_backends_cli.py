"""Choosing a backend (manifest `state:`, `--state URL`), `state migrate`, and saved plans on
a remote backend: through the CLI, against moto and PostgreSQL servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli
from tests.state.conftest import MotoServer, PgServer

SMALL = "examples/small.yaml"


def _with_state(project: Path, block: str, name: str = "team.yaml") -> str:
    text = (project / SMALL).read_text()
    (project / "examples" / name).write_text(text + "\n" + block + "\n")
    return f"examples/{name}"


def test_a_password_in_a_state_url_is_refused(run: Cli) -> None:
    result = run("plan", SMALL, "--sandbox", "--state", "postgres://alice:hunter2@db/x")
    assert result.exit_code == 1
    assert "holds a password" in result.output and "PGPASSWORD" in result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_an_unknown_scheme_and_a_bad_block_are_clear_errors(run: Cli, project: Path) -> None:
    result = run("plan", SMALL, "--sandbox", "--state", "ftp://host/x")
    assert result.exit_code == 1 and "unknown scheme ftp://" in result.output
    manifest = _with_state(project, "state: {backend: s3, key: app.json}")
    result = run("state", "list", manifest)
    assert result.exit_code == 1
    assert "state.bucket is required for backend s3" in result.output
    manifest = _with_state(project, "state: {backend: postgres, url: '${env:NOPE_PG_URL}'}")
    result = run("state", "list", manifest)
    assert result.exit_code == 1 and "NOPE_PG_URL is not set" in result.output
    result = run("validate", _with_state(project, "state: {backend: gcs}"))
    assert result.exit_code == 1 and "state.backend" in result.output


def test_a_missing_extra_names_the_package_to_install(project: Path) -> None:
    manifest = _with_state(project, "state: {backend: s3, bucket: b1, key: app.json}")
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from provisioner.cli.main import main\n"
        f"main(['state', 'list', {manifest!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'vapi-provisioner[s3]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_copies_lineage_and_serial_and_refuses_another_lineage(
    run: Cli, project: Path, s3_env: MotoServer
) -> None:
    assert run("apply", SMALL, "--sandbox", "--auto-approve").exit_code == 0
    source = project / "state" / ".sandbox" / "examples" / "small.json"
    before = source.read_bytes()
    bucket = s3_env.new_bucket()
    # The same manifest, now keeping its state in S3 (a state is its manifest's own).
    manifest = _with_state(
        project, f"state: {{backend: s3, bucket: {bucket}, key: small.json}}", "small.yaml"
    )
    result = run("state", "migrate", manifest, "--from", str(source))
    assert result.exit_code == 0, result.output
    assert "verified the copy" in result.output
    copied = json.loads(
        s3_env.client().get_object(Bucket=bucket, Key="small.json")["Body"].read()  # type: ignore[attr-defined]
    )
    original = json.loads(before)
    assert (copied["lineage"], copied["serial"]) == (original["lineage"], original["serial"])
    assert copied["resources"] == original["resources"]
    assert source.read_bytes() == before
    listed = run("state", "list", manifest)
    assert listed.exit_code == 0 and "assistant.support" in listed.output
    again = run("state", "migrate", manifest, "--from", str(source))
    assert again.exit_code == 0 and "already holds this state" in again.output
    # Another deployment's state is never copied over it.
    other = project / "other.json"
    other.write_text(json.dumps({**original, "lineage": "another-lineage"}))
    refused = run("state", "migrate", manifest, "--from", str(other))
    assert refused.exit_code == 1 and "already holds another state" in refused.output


def test_migrate_into_postgres(run: Cli, project: Path, pg_server: PgServer) -> None:
    assert run("apply", SMALL, "--sandbox", "--auto-approve").exit_code == 0
    source = project / "state" / ".sandbox" / "examples" / "small.json"
    url = pg_server.new_database()
    manifest = _with_state(
        project, "state: {backend: postgres, url: '${env:TEAM_PG}'}", "small.yaml"
    )
    result = run("state", "migrate", manifest, "--from", str(source), env={"TEAM_PG": url})
    assert result.exit_code == 0, result.output
    shown = run("state", "list", manifest, env={"TEAM_PG": url})
    assert "assistant.support" in shown.output


def test_a_saved_plan_records_the_backend_and_refuses_a_state_that_moved_on(
    run: Cli, project: Path, s3_env: MotoServer
) -> None:
    bucket = s3_env.new_bucket()
    remote = f"s3://{bucket}/small.json"
    assert run("apply", SMALL, "--sandbox", "--state", remote, "--auto-approve").exit_code == 0
    (project / "examples" / "prompts" / "support.md").write_text("A new prompt.\n")
    made = run("plan", SMALL, "--sandbox", "--state", remote, "--out", "plan.bin")
    assert made.exit_code == 0, made.output
    elsewhere = run("apply", "plan.bin", "--sandbox", "--state", "state/other.json")
    assert elsewhere.exit_code == 1
    assert f"made against the state in {remote}" in elsewhere.output
    # Another run applies first: the saved plan is now stale.
    assert run("apply", SMALL, "--sandbox", "--state", remote, "--auto-approve").exit_code == 0
    stale = run("apply", "plan.bin", "--sandbox", "--state", remote)
    assert stale.exit_code == 1 and "stale" in stale.output


def test_a_saved_plan_on_s3_applies_when_nothing_moved(
    run: Cli, project: Path, s3_env: MotoServer
) -> None:
    remote = f"s3://{s3_env.new_bucket()}/small.json"
    made = run("plan", SMALL, "--sandbox", "--state", remote, "--out", "plan.bin")
    assert made.exit_code == 0, made.output
    applied = run("apply", "plan.bin", "--sandbox", "--state", remote)
    assert applied.exit_code == 0, applied.output
    assert run("plan", SMALL, "--sandbox", "--state", remote).output.startswith("No changes")


def test_a_stale_writers_rescue_copy_is_merged_by_the_next_apply(
    run: Cli, project: Path, s3_env: MotoServer
) -> None:
    from provisioner.errors import StateConflictError
    from provisioner.state.backend import from_cli, open_backend

    remote = f"s3://{s3_env.new_bucket()}/small.json"
    assert run("apply", SMALL, "--sandbox", "--state", remote, "--auto-approve").exit_code == 0

    def store():  # type: ignore[no-untyped-def]
        return open_backend(from_cli(remote, Path(SMALL)), environ={}, external_key=None)

    # Two runs read the same state; the other one writes first, without the number (as if
    # it never knew it), then the stale one, which holds its ID, is refused.
    other, stale = store(), store()
    theirs, ours = other.read(), stale.read()
    number_id = ours.resources["phoneNumber.test-line"].id
    del theirs.resources["phoneNumber.test-line"]
    other.write(theirs)
    ours.resources["assistant.support"].applied["firstMessage"] = "changed"
    try:
        stale.write(ours)
        raise AssertionError("the stale write went through")
    except StateConflictError as exc:
        assert "someone else changed the state" in str(exc)
    assert list((project / "state" / ".rescue").glob("*.json"))

    result = run("apply", SMALL, "--sandbox", "--state", remote, "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (
        f"Recovered from a rescue copy of an earlier run: phoneNumber.test-line ({number_id})"
        in (result.output)
    )
    assert "phoneNumber.test-line will be created" not in result.output
    assert store().read().resources["phoneNumber.test-line"].id == number_id
