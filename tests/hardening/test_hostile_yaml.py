"""Issue #10, items 4, 6, 7 and 9: hostile or careless YAML fails fast and clearly, at the
offending line, with no traceback; a large honest manifest still passes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from provisioner.manifest.loader import MAX_BYTES, parse_manifest_text
from tests.conftest import REPO, Cli

HEAD = """version: 1
assistants:
  support:
    name: Acme Support
    firstMessage: Hi there
"""


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 9**9 strings (387 million) from ~350 bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _no_crash(result: object) -> None:
    exc = getattr(result, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert "Traceback" not in getattr(result, "output", "")


def test_alias_bomb_fails_fast_at_its_line(run: Cli, project: Path) -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 360
    (project / "m.yaml").write_text(bomb)
    for args in (["validate", "m.yaml"], ["plan", "m.yaml", "--sandbox"]):
        started = time.monotonic()
        result = run(*args)
        elapsed = time.monotonic() - started
        assert result.exit_code == 1, result.output
        _no_crash(result)
        assert "m.yaml:6:" in result.output, result.output  # f: the first level too big
        assert "aliases expand the document to more than" in result.output
        assert elapsed < 1.0, elapsed
    assert not (project / "state/.sandbox/m.json").exists()
    assert not (project / "state/.sandbox/emulator/vapi.json").exists()


def test_alias_bomb_anchored_deep_and_expanded_shallow(run: Cli, project: Path) -> None:
    """The anchors sit 58 levels down (where little of them would be built), the alias
    that expands them at the top: the limit counts what is built where it is used."""
    chain = '&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        chain += f", &{cur} [" + ",".join([f"*{prev}"] * 9) + "]"
    (project / "m.yaml").write_text("x: " + "[" * 58 + chain + "]" * 58 + "\ny: [*i]\n")
    started = time.monotonic()
    result = run("validate", "m.yaml")
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 1
    _no_crash(result)
    assert "aliases expand the document to more than" in result.output


def test_a_recursive_alias_is_too_deep_not_endless(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(HEAD + "    metadata: &m {again: *m}\n")
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    _no_crash(result)
    assert "nested deeper than 64 levels" in result.output


def test_merge_key_bomb_fails_fast(run: Cli, project: Path) -> None:
    text = "a0: &a0 {x: 1, y: 2, z: 3}\n"
    for i in range(1, 12):
        text += f"a{i}: &a{i} {{<<: [" + ",".join([f"*a{i - 1}"] * 9) + f"], k{i}: 1}}\n"
    (project / "m.yaml").write_text(text)
    started = time.monotonic()
    result = run("validate", "m.yaml")
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 1
    _no_crash(result)
    assert "aliases expand the document to more than" in result.output


@pytest.mark.parametrize("style", ["block", "flow"])
def test_500_levels_of_nesting_in_metadata(run: Cli, project: Path, style: str) -> None:
    if style == "block":
        nested = "".join("  " * (3 + i) + f"k{i}:\n" for i in range(500)) + "  " * 503 + "v: 1\n"
        text = HEAD + "    metadata:\n" + nested
    else:
        text = HEAD + "    metadata: " + "[" * 500 + "]" * 500 + "\n"
    (project / "m.yaml").write_text(text)
    started = time.monotonic()
    result = run("validate", "m.yaml")
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 1, result.output
    _no_crash(result)
    assert "nested deeper than 64 levels" in result.output, result.output
    line = result.output.splitlines()[0]
    assert line.startswith("m.yaml:") and "assistants.support.metadata" in line, line
    applied = run("apply", "m.yaml", "--sandbox", "--auto-approve")
    assert applied.exit_code == 1 and "Nothing was changed." in applied.output
    _no_crash(applied)


def test_oversized_document_is_refused(run: Cli, project: Path) -> None:
    with (project / "m.yaml").open("w") as f:
        f.write(HEAD + "    metadata:\n      blob: '")
        f.write("x" * (MAX_BYTES + 1))
        f.write("'\n")
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    _no_crash(result)
    assert "m.yaml: the manifest is larger than 16 MB" in result.output


def test_a_5000_resource_manifest_stays_within_the_limits() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "bench"))
    text = bench.generate_manifest(5000).text
    loaded, diags = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None and not diags, [d.format() for d in diags][:3]


@pytest.mark.parametrize(
    ("value", "line", "words"),
    [
        (".nan", "7:7:", ".nan is not a JSON number (NaN and infinities have no JSON form); quote"),
        (".inf", "7:7:", ".inf is not a JSON number"),
        ("-.Inf", "7:7:", "-.Inf is not a JSON number"),
        ("2024-01-31", "7:7:", "2024-01-31 is a YAML date, which JSON has no type for; quote it"),
        ("2024-01-31T10:00:00Z", "7:7:", "quote it to keep it as text ('2024-01-31T10:00:00Z')"),
        ("!!binary aGVsbG8=", "7:7:", "!!binary is not a JSON value; write the data as a"),
        ("!!set {a, b}", "7:7:", "!!set is not a JSON value; write a list"),
        ("!custom x", "7:7:", "the YAML tag !custom is not allowed"),
    ],
)
def test_only_json_values(run: Cli, project: Path, value: str, line: str, words: str) -> None:
    (project / "m.yaml").write_text(HEAD + f"    metadata:\n      when: {value}\n")
    result = run("validate", "m.yaml")
    assert result.exit_code == 1, result.output
    _no_crash(result)
    assert f"m.yaml:{line}" in result.output and "assistants.support.metadata.when" in result.output
    assert words in result.output, result.output
    planned = run("plan", "m.yaml", "--sandbox", "--format", "json")
    assert planned.exit_code == 1
    _no_crash(planned)
    assert "Planning failed." in planned.output


def test_quoted_values_pass(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(
        HEAD + "    metadata:\n      when: '2024-01-31'\n      ratio: '.nan'\n      n: 1.5\n"
    )
    result = run("validate", "m.yaml")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "\tmetadata: {}\n",
        HEAD.replace("    firstMessage", "\tfirstMessage"),
        HEAD + "    metadata:\n      a: 1\n\t  b: 2\n",
    ],
    ids=["tab-line", "tab-in-mapping", "tab-after-spaces"],
)
def test_a_tab_is_called_a_tab(run: Cli, project: Path, text: str) -> None:
    (project / "m.yaml").write_text(text)
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    _no_crash(result)
    assert "tabs are not allowed in YAML indentation; use spaces" in result.output, result.output
