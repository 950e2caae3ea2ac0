"""Reading manifests: YAML to data with positions; duplicate keys and merge keys."""

from __future__ import annotations

from pathlib import Path

from provisioner.manifest.loader import parse_manifest_text


def _load(text: str) -> tuple[object, list[str]]:
    loaded, diags = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None
    return loaded.data, [d.format() for d in diags]


def test_keys_after_a_merge_override_it() -> None:
    """`<<: *voice` then `voiceId: other`, block or flow style: standard YAML, no error."""
    data, problems = _load(
        "base: &voice\n  provider: 11labs\n  voiceId: burt\n"
        "block:\n  <<: *voice\n  voiceId: other\n"
        "flow: {<<: *voice, voiceId: third}\n"
    )
    assert problems == []
    assert data == {
        "base": {"provider": "11labs", "voiceId": "burt"},
        "block": {"provider": "11labs", "voiceId": "other"},
        "flow": {"provider": "11labs", "voiceId": "third"},
    }


def test_several_merges_first_wins_and_aliases_stay_quiet() -> None:
    data, problems = _load(
        "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nboth: &both {<<: [*a, *b], z: 3}\nagain: *both\n"
    )
    assert problems == []
    assert data["both"] == data["again"] == {"x": 1, "y": 1, "z": 3}  # type: ignore[index]


def test_a_key_written_twice_is_still_a_duplicate_once() -> None:
    _, problems = _load(
        "base: &v {voiceId: burt}\nm: &m\n  <<: *v\n  voiceId: one\n  voiceId: two\nalias: *m\n"
    )
    assert problems == ["m.yaml:5:3: m.voiceId: duplicate key 'voiceId' (first defined at line 4)"]
