"""`config` and `diff-env` for people: one environment's merged manifest as YAML, and the
fields that differ between two environments with where each value came from. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from provisioner.manifest.env_diff import MISSING, EnvDifference
from provisioner.manifest.origins import Origin
from provisioner.render.escape import visible


def config_yaml(doc: Mapping[str, Any]) -> str:
    """The merged manifest as YAML, in the manifest's own order (`${env:}` left as written:
    no secret is resolved here)."""
    return yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=100)


def diff_text(left: str, right: str, diffs: Sequence[EnvDifference]) -> str:
    """Each differing field, then both values and their origins, aligned."""
    if not diffs:
        return f"No differences: {left} and {right} declare the same manifest."
    width = max(len(left), len(right)) + 1
    lines = [f"{len(diffs)} field(s) differ between {left} and {right}:", ""]
    for d in diffs:
        lines.append(d.dotted)
        for name, value, origin in (
            (left, d.left, d.left_origin),
            (right, d.right, d.right_origin),
        ):
            lines.append(f"  {name + ':':<{width}} {_value(value)}{_origin(origin)}")
    return visible("\n".join(lines))


def diff_json(left: str, right: str, diffs: Sequence[EnvDifference]) -> str:
    def side(value: Any, origin: Origin | None) -> dict[str, Any]:
        out: dict[str, Any] = {"present": value is not MISSING}
        if value is not MISSING:
            out["value"] = value
        out["origin"] = origin.describe() if origin else None
        return out

    doc = {
        "environments": [left, right],
        "differences": [
            {
                "path": d.dotted,
                left: side(d.left, d.left_origin),
                right: side(d.right, d.right_origin),
            }
            for d in diffs
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _value(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False)


def _origin(origin: Origin | None) -> str:
    return f"   # {origin.describe()}" if origin else ""
