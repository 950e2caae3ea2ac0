"""Read a manifest file: YAML text -> plain data plus a source map of line/column per field.

Owns file reading and YAML parsing only. It does not validate against the schema, resolve
references, read the environment or touch the network. Duplicate mapping keys (which plain
YAML loaders silently collapse) are reported, since a duplicated resource key in a manifest
is almost always a copy-paste mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provisioner.diagnostics import Diagnostics

JsonPath = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each field of the manifest was written; `locate` falls back to the nearest parent."""

    file: str
    positions: dict[JsonPath, Position] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int]) -> Position:
        p = tuple(path)
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), Position(1, 1))

    def where(self, path: Sequence[str | int]) -> dict[str, Any]:
        """Keyword arguments for `Diagnostics.error`: file, line, column and the dotted path."""
        pos = self.locate(path)
        return {
            "file": self.file,
            "line": pos.line,
            "column": pos.column,
            "path": format_path(path),
        }


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    path: Path
    data: Any
    source: SourceMap


def format_path(path: Sequence[str | int]) -> str:
    """`("assistants", "a", "model", "messages", 0)` -> `assistants.a.model.messages[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def display_name(path: Path) -> str:
    """The file name as the user should see it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_manifest(path: Path) -> tuple[LoadedManifest | None, Diagnostics]:
    """Read and parse `path`. Returns (None, diags) when the file cannot be parsed at all."""
    diags = Diagnostics()
    shown = display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        diags.error(f"manifest file not found: {shown}", file=shown)
        return None, diags
    except (OSError, UnicodeDecodeError) as exc:
        diags.error(f"cannot read manifest: {exc}", file=shown)
        return None, diags
    return parse_manifest_text(text, shown, path, diags)


def parse_manifest_text(
    text: str, shown: str, path: Path, diags: Diagnostics | None = None
) -> tuple[LoadedManifest | None, Diagnostics]:
    diags = diags if diags is not None else Diagnostics()
    source = SourceMap(shown)
    # libyaml's parser when PyYAML was built with it (about 8x faster on big manifests);
    # the constructor, and so every value, is the same as yaml.SafeLoader's.
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            data: Any = None
        else:
            data = _build(loader, node, (), source, diags, {})
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or exc.context or "invalid YAML"
        diags.error(f"YAML syntax error: {problem}", file=shown, line=line, column=col)
        return None, diags
    except yaml.YAMLError as exc:
        diags.error(f"YAML syntax error: {exc}", file=shown)
        return None, diags
    finally:
        loader.dispose()
    return LoadedManifest(path, data, source), diags


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: JsonPath,
    source: SourceMap,
    diags: Diagnostics,
    written: dict[int, frozenset[int]],
) -> Any:
    """`node` as plain data. `written` maps each mapping node already seen (an alias is
    the same node again: its mistakes are reported once) to the keys written in it, as
    opposed to merged in by `<<`."""
    source.positions.setdefault(path, _pos(node))
    if isinstance(node, yaml.MappingNode):
        first_visit = id(node) not in written
        if first_visit:
            written[id(node)] = frozenset(id(k) for k, _ in node.value if k.tag != _MERGE_TAG)
        here = written[id(node)]
        loader.flatten_mapping(node)  # resolves `<<` merge keys: merged pairs come first
        result: dict[Any, Any] = {}
        # Keys written in this mapping; a merged key that one of them overrides (or that
        # a later merge overrides) is standard YAML, not a duplicate.
        explicit: set[str] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                diags.error("mapping keys must be strings", **source.where(path))
                continue
            key = str(key) if not isinstance(key, str) else key
            child = (*path, key)
            if key in explicit and id(key_node) in here and first_visit:
                first = source.positions.get(child)
                at = f" (first defined at line {first.line})" if first else ""
                diags.error(
                    f"duplicate key {key!r}{at}",
                    file=source.file,
                    line=_pos(key_node).line,
                    column=_pos(key_node).column,
                    path=format_path(child),
                )
            if id(key_node) in here:
                explicit.add(key)
            source.positions[child] = _pos(key_node)
            result[key] = _build(loader, value_node, child, source, diags, written)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, i), source, diags, written)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
