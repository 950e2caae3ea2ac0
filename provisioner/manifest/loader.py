"""Read a manifest file: YAML text -> plain data plus a source map of line/column per field.

Owns file reading and YAML parsing only. It does not validate against the schema, resolve
references, read the environment or touch the network. Duplicate mapping keys (which plain
YAML loaders silently collapse) are reported, since a duplicated resource key in a manifest
is almost always a copy-paste mistake.

A manifest may come from a pull request, so parsing is bounded: document size, nesting
depth and the values aliases expand to all have limits (a 353-byte alias bomb would
otherwise expand to billions of values), and only values JSON can carry are accepted
(`.nan`, an unquoted date or `!!binary` would pass here and crash a later step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provisioner.diagnostics import Diagnostics

JsonPath = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A 5,000-resource manifest (bench/) is about 1.2 MB and 12 levels deep.
MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
# Values in the document once aliases are expanded: a fixed allowance plus one per byte
# of the document, so that large manifests may share blocks generously while a small
# document cannot expand without bound (the 353-byte alias bomb: 387 million values).
ALIAS_BASE_ALLOWANCE = 100_000


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
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            diags.error(_too_big(), file=shown)
            return None, diags
        text = raw.decode("utf-8")
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
    if len(text) > MAX_BYTES:
        diags.error(_too_big(), file=shown)
        return None, diags
    source = SourceMap(shown)
    # libyaml's parser when PyYAML was built with it (about 8x faster on big manifests);
    # the constructor, and so every value, is the same as yaml.SafeLoader's.
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            data: Any = None
        else:
            budget = _Budget(ALIAS_BASE_ALLOWANCE + len(text))
            budget.check_aliases(node)
            data = _build(loader, node, (), source, diags, {}, budget)
    except _AliasBomb as exc:
        pos = exc.position
        diags.error(
            f"aliases expand the document to more than {exc.limit:,} values (a YAML "
            "alias bomb?); write the repeated blocks out, or share fewer of them",
            file=shown,
            line=pos.line,
            column=pos.column,
        )
        return None, diags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is not None and _tab_at(text, mark.line, mark.column):
            problem = "tabs are not allowed in YAML indentation; use spaces"
        elif "maximum nesting depth" in problem:
            problem = f"nested deeper than {MAX_DEPTH} levels"
        diags.error(f"YAML syntax error: {problem}", file=shown, line=line, column=col)
        return None, diags
    except yaml.YAMLError as exc:
        diags.error(f"YAML syntax error: {exc}", file=shown)
        return None, diags
    finally:
        loader.dispose()
    return LoadedManifest(path, data, source), diags


def _too_big() -> str:
    return f"the manifest is larger than {MAX_BYTES // (1024 * 1024)} MB; split it up"


def _tab_at(text: str, line: int, column: int) -> bool:
    """Whether the YAML error at (line, column), 0-based, is about a tab in the
    indentation (libyaml words it as "a character that cannot start any token")."""
    lines = text.split("\n", line + 1)
    if line >= len(lines):
        return False
    indent = lines[line][: column + 1]
    return "\t" in indent and not indent.replace("\t", "").replace(" ", "")


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _AliasBomb(Exception):
    def __init__(self, position: Position, limit: int) -> None:
        super().__init__()
        self.position = position
        self.limit = limit


class _Budget:
    """How many values the document may expand to (aliases repeat what they name)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check_aliases(self, root: yaml.Node) -> None:
        """Refuse before building anything if aliases expand the document beyond the
        limit: the size of every node as `_build` will expand it (down to `MAX_DEPTH`,
        which also ends a recursive alias), memoised per node and depth, so this costs
        about one pass over what is written. Reported at the first node whose expansion
        is too large, which is where the aliases that multiply are written."""
        sizes: dict[tuple[int, int], int] = {}

        def size(node: yaml.Node, depth: int) -> int:
            known = sizes.get((id(node), depth))
            if known is not None:
                return known
            n = 1
            if depth < MAX_DEPTH:  # deeper is reported by `_build`
                if isinstance(node, yaml.SequenceNode):
                    n += sum(size(item, depth + 1) for item in node.value)
                elif isinstance(node, yaml.MappingNode):
                    n += sum(size(v, depth + 1) + 1 for _, v in node.value)
            if n > self.limit:
                raise _AliasBomb(_pos(node), self.limit)
            sizes[(id(node), depth)] = n
            return n

        size(root, 0)

    def check_merges(self, node: yaml.MappingNode) -> None:
        """Refuse before `flatten_mapping` copies the pairs that `<<` merge keys bring
        in: nested merges multiply them as nested aliases do."""
        sizes: dict[int, int] = {}

        def size(mapping: yaml.MappingNode, depth: int) -> int:
            if id(mapping) in sizes:
                return sizes[id(mapping)]
            if depth > MAX_DEPTH:
                raise _AliasBomb(_pos(mapping), self.limit)
            sizes[id(mapping)] = 0  # a merge cycle adds nothing
            n = 0
            for key, value in mapping.value:
                if key.tag != _MERGE_TAG:
                    n += 1
                    continue
                merged = value.value if isinstance(value, yaml.SequenceNode) else [value]
                n += sum(size(m, depth + 1) for m in merged if isinstance(m, yaml.MappingNode))
            if n > self.limit:
                raise _AliasBomb(_pos(mapping), self.limit)
            sizes[id(mapping)] = n
            return n

        if any(key.tag == _MERGE_TAG for key, _ in node.value):
            size(node, 0)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG = "tag:yaml.org,2002:"
_JSON_SCALARS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null"))
# How to write what JSON cannot carry, by YAML tag.
_NOT_JSON = {
    _TAG + "timestamp": "{value} is a YAML date, which JSON has no type for; quote it to "
    "keep it as text ('{value}')",
    _TAG + "binary": "!!binary is not a JSON value; write the data as a (base64) string",
    _TAG + "set": "!!set is not a JSON value; write a list",
    _TAG + "omap": "!!omap is not a JSON value; write a mapping",
    _TAG + "pairs": "!!pairs is not a JSON value; write a mapping or a list",
}


def _not_json(node: yaml.Node, expected: str) -> str | None:
    """Why `node` (whose tag should be `expected`) holds no JSON value, or None."""
    if node.tag == expected or (expected == "scalar" and node.tag in _JSON_SCALARS):
        return None
    if node.tag in _NOT_JSON:
        value = node.value if isinstance(node, yaml.ScalarNode) else ""
        return _NOT_JSON[node.tag].format(value=value)
    return f"the YAML tag {node.tag} is not allowed: only plain JSON values are"


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: JsonPath,
    source: SourceMap,
    diags: Diagnostics,
    written: dict[int, frozenset[int]],
    budget: _Budget,
) -> Any:
    """`node` as plain data. `written` maps each mapping node already seen (an alias is
    the same node again: its mistakes are reported once) to the keys written in it, as
    opposed to merged in by `<<`."""
    source.positions.setdefault(path, _pos(node))
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if len(path) >= MAX_DEPTH:
            where = source.where(path)
            where["path"] = format_path(path[:4]) + "…"  # not 64 levels of it
            diags.error(f"nested deeper than {MAX_DEPTH} levels; flatten this value", **where)
            return None
        tag = _TAG + ("map" if isinstance(node, yaml.MappingNode) else "seq")
        problem = _not_json(node, tag)
        if problem:
            diags.error(problem, **source.where(path))
            return None
    if isinstance(node, yaml.MappingNode):
        first_visit = id(node) not in written
        if first_visit:
            written[id(node)] = frozenset(id(k) for k, _ in node.value if k.tag != _MERGE_TAG)
            budget.check_merges(node)
        here = written[id(node)]
        loader.flatten_mapping(node)  # resolves `<<` merge keys: merged pairs come first
        result: dict[Any, Any] = {}
        # Keys written in this mapping; a merged key that one of them overrides (or that
        # a later merge overrides) is standard YAML, not a duplicate.
        explicit: set[str] = set()
        for key_node, value_node in node.value:
            # Only a plain scalar is built as a key: a key that is an alias of a big
            # block would be expanded outside the budget.
            plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag in _JSON_SCALARS
            key = loader.construct_object(key_node, deep=True) if plain else None
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
            result[key] = _build(loader, value_node, child, source, diags, written, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, i), source, diags, written, budget)
            for i, item in enumerate(node.value)
        ]
    problem = _not_json(node, "scalar")
    if problem:
        diags.error(problem, **source.where(path))
        return None
    value = loader.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        diags.error(
            f"{node.value} is not a JSON number (NaN and infinities have no JSON form); "
            f"quote it if it is meant as text ('{node.value}')",
            **source.where(path),
        )
        return None
    return value
