"""Resolution: `${env:NAME}`, `${file:PATH}` and `${KIND.KEY.id}` inside manifest strings.

An explicit phase (not lazy attribute magic): every interpolation is checked here, and a
missing variable, file or resource is an error diagnostic, never silently dropped.

- `${env:NAME}` makes the whole string `Sensitive`.
- `${file:PATH}` is replaced by the file's text (relative to the manifest's folder), for
  files of the manifest's repository only, never under `.git/` nor ignored by git.
- `${assistant.support.id}` becomes a `RefString` part and a dependency edge; `bind`
  turns it into the real ID once known, or `Unknown` while the referenced resource is
  yet to be created.
- `$${` writes a literal `${`.

The environment and the file system root are passed in; nothing here reads os.environ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.diagnostics import Diagnostics
from provisioner.kinds import ID_FIELD_KINDS, KINDS, ResourceKind
from provisioner.manifest.files import FileGuard
from provisioner.manifest.loader import JsonPath
from provisioner.manifest.model import Lifecycle, Manifest, ResourceConfig
from provisioner.redact import register_secret
from provisioner.values import SecretText, Sensitive, Unknown

# `$${` (the escape), or `${...}` with no brace inside (so `${a ${b}` is an unclosed `${a`).
_INTERP = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_REF = re.compile(r"^([A-Za-z]+)\.([a-z0-9][a-z0-9_-]*)\.([A-Za-z_]+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A field ending in `Id`/`Ids` takes the ID of the kind the registry names for it
# (`kinds.ID_FIELD_KINDS`); any other such field (squadId, workflowId, credentialId,
# toolIds, voiceId, ...) the ID of something this tool does not manage, so a reference
# to one of our resources there is a mistake the API would only reject mid-apply.
_ID_FIELD = re.compile(r"[a-z0-9]Ids?$")
# Stands in for a referenced resource's ID when resolved bodies are schema-checked.
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True, slots=True)
class RefString:
    """A string with references to other resources' IDs, kept as parts until bound."""

    parts: tuple[str | Sensitive | ResourceAddress, ...]

    @property
    def addresses(self) -> tuple[ResourceAddress, ...]:
        return tuple(p for p in self.parts if isinstance(p, ResourceAddress))


@dataclass(frozen=True, slots=True)
class ResolvedResource:
    address: ResourceAddress
    kind: ResourceKind
    # Body with env/file substituted; references still as RefString.
    body: Mapping[str, Any]
    depends_on: frozenset[str]
    lifecycle: Lifecycle
    purchase: Mapping[str, Any] | None
    config: ResourceConfig


@dataclass(frozen=True, slots=True)
class ResolvedManifest:
    manifest: Manifest
    resources: dict[str, ResolvedResource]
    # `${env:}` names left unset (or empty) where that is only a warning (`validate`).
    unset_env: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Env:
    """The environment as `${env:}` sees it, and what to do about an unset variable."""

    environ: Mapping[str, str]
    unset_ok: bool
    unset: set[str] = field(default_factory=set)


def resolve_manifest(
    manifest: Manifest,
    environ: Mapping[str, str],
    read_file: Callable[[Path], str] | None = None,
    *,
    unset_env_ok: bool = False,
) -> tuple[ResolvedManifest, Diagnostics]:
    """Resolve every interpolation; collect every problem.

    `unset_env_ok`: an unset or empty `${env:}` is a warning and resolves to a stand-in
    (`validate` on a fork's pull request has no secrets); its name is in `unset_env`."""
    diags = Diagnostics()
    reader = read_file or (lambda p: p.read_text(encoding="utf-8"))
    env = _Env(environ, unset_env_ok)
    files = _file_guard(manifest)
    resolved: dict[str, ResolvedResource] = {}
    for addr, config in manifest.resources.items():
        scope = _Scope(manifest, env, files, reader, diags, config)
        body = _resolve_value(config.body, config.path, scope)
        deps = scope.deps
        deps.discard(addr)
        resolved[addr] = ResolvedResource(
            address=config.address,
            kind=config.kind,
            body=body,
            depends_on=frozenset(deps),
            lifecycle=config.lifecycle,
            purchase=config.purchase,
            config=config,
        )
    return ResolvedManifest(manifest, resolved, frozenset(env.unset)), diags


@dataclass(slots=True)
class _Scope:
    """What resolving the values of one resource needs, and the references it found."""

    manifest: Manifest
    env: _Env
    files: FileGuard
    reader: Callable[[Path], str]
    diags: Diagnostics
    config: ResourceConfig
    deps: set[str] = field(default_factory=set)


def _resolve_value(value: Any, path: JsonPath, scope: _Scope) -> Any:
    if isinstance(value, Mapping):
        return {k: _resolve_value(v, (*path, k), scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_value(v, (*path, i), scope) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _resolve_string(value, path, scope)
    return value


def _resolve_string(text: str, path: JsonPath, scope: _Scope) -> Any:
    manifest, env, files, diags, config = (
        scope.manifest,
        scope.env,
        scope.files,
        scope.diags,
        scope.config,
    )
    reader, deps = scope.reader, scope.deps
    where = manifest.source.where(path)
    parts: list[str | ResourceAddress] = []
    sensitive = False
    pos = 0
    for m in _INTERP.finditer(text):
        parts.append(text[pos : m.start()])
        _check_closed(text[pos : m.start()], where, diags)
        pos = m.end()
        if m.group(0) == "$${":
            parts.append("${")
            continue
        expr = (m.group(1) or "").strip()
        if expr.startswith("env:"):
            name = expr[4:]
            value = env.environ.get(name)
            if not _ENV_NAME.match(name):
                diags.error(f"invalid environment variable name in ${{{expr}}}", **where)
            elif not value:
                # CI systems expand a missing secret to "": never send an empty secret.
                problem = (
                    f"environment variable {name} is not set (referenced as ${{env:{name}}})"
                    if value is None
                    else f"environment variable {name} is empty (referenced as "
                    f"${{env:{name}}}); in CI, check that the secret is defined"
                )
                if env.unset_ok:
                    env.unset.add(name)
                    sensitive = True  # a stand-in: "" (never sent: plan and apply refuse)
                    diags.warning(f"{problem}; plan and apply will need it", **where)
                else:
                    diags.error(problem, **where)
            else:
                register_secret(value)
                parts.append(value)
                sensitive = True
        elif expr.startswith("file:"):
            rel = expr[5:]
            file_path = files.check(rel, where, diags)
            if file_path is None:
                continue
            try:
                parts.append(reader(file_path))
            except FileNotFoundError:
                diags.error(f"file not found: {rel} (looked for {file_path})", **where)
            except (OSError, UnicodeDecodeError) as exc:
                diags.error(f"cannot read file {rel}: {exc}", **where)
        else:
            ref = _REF.match(expr)
            if not ref:
                diags.error(
                    f"cannot understand ${{{expr}}}: expected ${{env:NAME}}, ${{file:PATH}} "
                    "or ${KIND.KEY.id}",
                    **where,
                )
                continue
            kind, key, attr = ref.groups()
            if kind not in KINDS:
                diags.error(
                    f"unknown resource kind {kind!r} in ${{{expr}}}; "
                    f"expected one of {', '.join(KINDS)}",
                    **where,
                )
                continue
            target = ResourceAddress(kind, key)
            if str(target) not in manifest.resources:
                diags.error(f"reference to undeclared resource {target} in ${{{expr}}}", **where)
                continue
            if attr != "id":
                diags.error(
                    f"unsupported attribute {attr!r} in ${{{expr}}}: only .id can be referenced",
                    **where,
                )
                continue
            if target == config.address:
                diags.error(f"{target} refers to itself", **where)
                continue
            wrong_kind = _wrong_kind(path, kind)
            if wrong_kind:
                diags.error(f"{wrong_kind}, but ${{{expr}}} is the ID of {target}", **where)
                continue
            deps.add(str(target))
            parts.append(target)
    parts.append(text[pos:])
    _check_closed(text[pos:], where, diags)
    joined = [p for p in parts if p != ""]
    if not any(isinstance(p, ResourceAddress) for p in joined):
        out = "".join(p for p in joined if isinstance(p, str))
        return Sensitive(out) if sensitive else out
    if sensitive:
        # Keep the secret parts wrapped so binding can mark the result sensitive.
        return RefString(tuple(Sensitive(p) if isinstance(p, str) else p for p in joined))
    return RefString(tuple(joined))


def _wrong_kind(path: JsonPath, kind: str) -> str | None:
    """Why a reference to a `kind` cannot sit at `path` (an ID field of another kind)."""
    if "metadata" in path:
        return None  # free-form: any key may hold any ID
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    if not _ID_FIELD.search(field):
        return None
    expected = ID_FIELD_KINDS.get(field)
    if expected == kind:
        return None
    if expected is None:
        return f"{field} takes the ID of something the manifest cannot declare"
    label = KINDS[expected].label
    return f"{field} takes {'an' if label[0] in 'aeiou' else 'a'} {label} ID"


def _check_closed(literal: str, where: Mapping[str, Any], diags: Diagnostics) -> None:
    """A `${` left in literal text has no matching `}`: a typo that would be sent as is."""
    if "${" in literal:
        start = literal[literal.index("${") :]
        shown = start if len(start) <= 40 else start[:37] + "…"
        diags.error(
            f"{shown!r}: `${{` without a matching `}}` (close it, or write `$${{` for a "
            "literal `${`)",
            **where,
        )


def _file_guard(manifest: Manifest) -> FileGuard:
    """The guard for every file the manifest includes (git is asked once for all)."""
    rels = {
        rel for config in manifest.resources.values() for rel in _file_interpolations(config.body)
    }
    return FileGuard(manifest.base_dir, rels)


def _file_interpolations(value: Any) -> Iterator[str]:
    """The PATH of every `${file:PATH}` in a manifest value."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _file_interpolations(v)
    elif isinstance(value, list):
        for v in value:
            yield from _file_interpolations(v)
    elif isinstance(value, str) and "${" in value:
        for m in _INTERP.finditer(value):
            expr = (m.group(1) or "").strip()
            if expr.startswith("file:"):
                yield expr[5:]


def bind(value: Any, ids: Mapping[str, str]) -> Any:
    """Replace references by IDs from `ids` (address -> remote ID); `Unknown` if not known yet."""
    if isinstance(value, Mapping):
        return {k: bind(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, ids) for v in value]
    if isinstance(value, RefString):
        out: list[str] = []
        secret = False
        for p in value.parts:
            if isinstance(p, ResourceAddress):
                rid = ids.get(str(p))
                if rid is None:
                    return Unknown(str(p))
                out.append(rid)
            elif isinstance(p, Sensitive):
                secret = True
                out.append(p.value)
            else:
                out.append(p)
        text = "".join(out)
        return Sensitive(text) if secret else text
    return value


def value_sources(text: str) -> tuple[str, ...]:
    """The `${env:...}` and `${file:...}` interpolations in `text`, as written."""
    return tuple(
        m.group(0)
        for m in _INTERP.finditer(text)
        if m.group(0) != "$${" and (m.group(1) or "").strip().startswith(("env:", "file:"))
    )


def checkable_document(
    data: Any, resolved: ResolvedManifest
) -> tuple[Any, dict[JsonPath, tuple[str, ...]]]:
    """The manifest document with each resource body as resolved, for a schema check of
    what `${env:}` and `${file:}` produced; and the interpolations each such field holds.

    References become a placeholder ID; secrets become `SecretText`, which never prints.
    Only the resources holding such interpolations are kept in the document (the rest
    were checked as written already), so a large manifest is not checked twice.
    """
    sources: dict[JsonPath, tuple[str, ...]] = {}
    if not isinstance(data, Mapping):
        return data, sources
    doc: Any = {k: v for k, v in data.items() if k not in _SECTION_KEYS}
    for res in resolved.resources.values():
        config = res.config
        found: dict[JsonPath, tuple[str, ...]] = {}
        for k, raw in config.body.items():
            _collect_sources(raw, (*config.path, k), found)
        if not found:
            continue
        sources.update(found)
        node = doc
        for part in config.path[:-1]:
            node = node.setdefault(part, {})
        original = _lookup(data, config.path)
        body = _copy(original) if isinstance(original, Mapping) else {}
        body.update({k: _checkable(res.body[k]) for k in config.body})
        node[config.path[-1]] = body
    return doc, sources


# Top-level keys that hold resources: left out of `checkable_document` but for the
# resources that need a second check.
_SECTION_KEYS = frozenset(kind.section[0] for kind in KINDS.values())


def _lookup(data: Any, path: JsonPath) -> Any:
    node = data
    for part in path:
        node = node[part]
    return node


def _copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _collect_sources(raw: Any, path: JsonPath, out: dict[JsonPath, tuple[str, ...]]) -> None:
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            _collect_sources(v, (*path, k), out)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            _collect_sources(v, (*path, i), out)
    elif isinstance(raw, str) and "${" in raw:
        found = value_sources(raw)
        if found:
            out[path] = found


def _checkable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _checkable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_checkable(v) for v in value]
    if isinstance(value, Sensitive):
        return SecretText(value.value)
    if isinstance(value, RefString):
        text = "".join(
            PLACEHOLDER_ID
            if isinstance(p, ResourceAddress)
            else (p.value if isinstance(p, Sensitive) else p)
            for p in value.parts
        )
        secret = any(isinstance(p, Sensitive) for p in value.parts)
        return SecretText(text) if secret else text
    return value
