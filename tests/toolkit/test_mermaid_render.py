"""The Markdown plan's Mermaid graph, rendered by Mermaid itself: the `mermaid` package
pinned in tests/mermaid/ (npm), loaded from a local page in Debian's headless Chromium.
Names hold quotes, brackets, pipes, `#`, `<`, `&`, `%%`, backticks and a newline.

Needs `chromium` (`apt-get install chromium`) and Node's `npm`; the fixture runs
`npm ci --prefix tests/mermaid` itself when node_modules is missing. `.ci/run` installs
both. Without them the test fails, saying so: it is never skipped.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioner.render.markdown import plan_to_markdown
from tests.conftest import REPO, Cli
from tests.gitops import edit_manifest, ok
from tests.render import sample_plan
from tests.toolkit import TRICKY, TRICKY_NAMES, mermaid_blocks

PACKAGE = REPO / "tests" / "mermaid"
MERMAID_JS = PACKAGE / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
    # Wait (in virtual time) for Mermaid's asynchronous rendering before the DOM is dumped.
    "--virtual-time-budget=30000",
    "--dump-dom",
)
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="MERMAID_JS"></script></head>
<body><pre id="result">pending</pre>
<script>
const SOURCES = SOURCES_JSON;
mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
(async () => {
  const out = [];
  for (let i = 0; i < SOURCES.length; i++) {
    try {
      const {svg} = await mermaid.render("graph" + i, SOURCES[i]);
      const holder = document.createElement("div");
      holder.innerHTML = svg;
      const labels = [...holder.querySelectorAll(".nodeLabel")].map((e) => e.textContent);
      out.push({ok: svg.startsWith("<svg"), labels: labels});
    } catch (e) {
      out.push({ok: false, error: String((e && e.message) || e)});
    }
  }
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script></body></html>
"""


@pytest.fixture(scope="session")
def mermaid_js() -> Path:
    """Mermaid's browser bundle, installed from the lock file when it is missing."""
    if not MERMAID_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "the Mermaid rendering test needs Node.js and npm (apt-get install nodejs "
                "npm), then `npm ci --prefix tests/mermaid`"
            )
        done = subprocess.run(
            [npm, "ci", "--prefix", str(PACKAGE), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not MERMAID_JS.exists():
            pytest.fail(
                f"`npm ci --prefix tests/mermaid` failed (exit {done.returncode}): "
                f"{done.stderr[-2000:]}"
            )
    return MERMAID_JS


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "the Mermaid rendering test needs Debian's headless Chromium: "
            "apt-get install chromium (.ci/run installs it)"
        )
    return found


def render(
    sources: list[str], chromium: str, mermaid_js: Path, folder: Path
) -> list[dict[str, Any]]:
    """Each Mermaid source rendered in Chromium: `{"ok", "labels"}` or `{"ok", "error"}`."""
    page = folder / "page.html"
    data = json.dumps(sources).replace("</", "<\\/")
    page.write_text(
        PAGE.replace("MERMAID_JS", mermaid_js.as_uri()).replace("SOURCES_JSON", data),
        encoding="utf-8",
    )
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'profile'}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"Chromium printed no result (exit {done.returncode}): {done.stderr[-2000:]}"
    assert found.group(1) != "pending", "Mermaid did not finish rendering"
    results: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return results


def test_mermaid_renders_the_plan_graphs(
    run: Cli, project: Path, tmp_path: Path, chromium: str, mermaid_js: Path
) -> None:
    Path("tricky.yaml").write_text(TRICKY)
    created = ok(run("plan", "tricky.yaml", "--sandbox", "--format", "markdown"))
    ok(run("apply", "tricky.yaml", "--sandbox", "--auto-approve"))
    # A rename makes the number's reference move: every action's style, a dotted arrow.
    edit_manifest("tricky.yaml", ("firstMessage: Hello", "firstMessage: Hello again"))
    edit_manifest("tricky.yaml", ("  quoted:", "  quoted-2:"))
    edit_manifest("tricky.yaml", ("${assistant.quoted.id}", "${assistant.quoted-2.id}"))
    changed = ok(run("plan", "tricky.yaml", "--sandbox", "--format", "markdown"))
    ok(run("plan", "tricky.yaml", "--sandbox", "--out", "plan.bin"))
    graph = ok(run("graph", "tricky.yaml", "--plan", "plan.bin"))
    sample = plan_to_markdown(sample_plan())

    sources = [*mermaid_blocks(created), *mermaid_blocks(changed), graph, *mermaid_blocks(sample)]
    assert len(sources) == 4 and "-.->" in sources[1]
    results = render(sources, chromium, mermaid_js, tmp_path)
    for source, result in zip(sources, results, strict=True):
        assert result["ok"], f"Mermaid refused:\n{source}\n{result.get('error')}"
    for result in results[:3]:
        labels = " ".join(result["labels"])
        for name in TRICKY_NAMES:
            assert name in labels, (name, result["labels"])
    assert "+ assistant.intake (Intake `v2` | new)" in results[3]["labels"]
    assert "-/+ phoneNumber.main" in results[3]["labels"]
