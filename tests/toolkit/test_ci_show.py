"""The CI recipe's apply job puts the reviewed plan in the run's summary with `show`: the
very Markdown the pull request's comment showed, from the plan file alone."""

from __future__ import annotations

from pathlib import Path

from tests.gitops.conftest import LiveApi
from tests.gitops.test_ci_workflow import Runner, load, step
from tests.state.conftest import MotoServer, moto_server  # noqa: F401 - the fixture

SHOW_STEP = "Show the reviewed plan in the summary"


def test_apply_job_summary_is_the_reviewed_plan(
    live_api: LiveApi,
    tmp_path: Path,
    moto_server: MotoServer,  # noqa: F811
) -> None:
    doc = load()
    assert "env" not in step(doc, "apply", SHOW_STEP)  # no secret for a plan file
    gh = Runner(doc, live_api, tmp_path, moto_server)
    pr = gh.checkout("pr")
    assert gh.run("plan", "Plan", pr).returncode == 0
    main = gh.checkout("main")
    gh.hand_over_artifact(pr, main)

    shown = gh.run("apply", SHOW_STEP, main, extra_env={"VAPI_TOKEN": ""})
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "summary-apply.md").read_text() == (pr / "plan.md").read_text()
    assert not (main / "state").exists()  # no state was read: it is in S3, untouched
