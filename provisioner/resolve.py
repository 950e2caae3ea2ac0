"""Resolution: `${env:NAME}`, `${file:PATH}` and `${KIND.KEY.id}` inside manifest strings.

An explicit phase (not lazy attribute magic): every interpolation is checked here, and a
missing variable, file or resource is an error diagnostic, never silently dropped.

- `${env:NAME}` makes the whole string `Sensitive`.
- `${file:PATH}` is replaced by the file's text (relative to the manifest's folder).
- `${assistant.support.id}` becomes a `RefString` part and a dependency edge; `bind`
  turns it into the real ID once known, or `Unknown` while the referenced resource is
  yet to be created.
- `$${` writes a literal `${`.

The environment and the file system root are passed in; nothing here reads os.environ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.diagnostics import Diagnostics
from provisioner.kinds import KINDS, ResourceKind
from provisioner.manifest.loader import JsonPath
from provisioner.manifest.model import Lifecycle, Manifest, ResourceConfig
from provisioner.values import Sensitive, Unknown

_INTERP = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_REF = re.compile(r"^([A-Za-z]+)\.([a-z0-9][a-z0-9_-]*)\.([A-Za-z_]+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def resolve_manifest(
    manifest: Manifest,
    environ: Mapping[str, str],
    read_file: Callable[[Path], str] | None = None,
) -> tuple[ResolvedManifest, Diagnostics]:
    """Resolve every interpolation; collect every problem."""
    diags = Diagnostics()
    reader = read_file or (lambda p: p.read_text(encoding="utf-8"))
    resolved: dict[str, ResolvedResource] = {}
    for addr, config in manifest.resources.items():
        deps: set[str] = set()
        body = _resolve_value(
            config.body, config.path, manifest, environ, reader, deps, diags, config
        )
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
    return ResolvedManifest(manifest, resolved), diags


def _resolve_value(
    value: Any,
    path: JsonPath,
    manifest: Manifest,
    environ: Mapping[str, str],
    reader: Callable[[Path], str],
    deps: set[str],
    diags: Diagnostics,
    config: ResourceConfig,
) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _resolve_value(v, (*path, k), manifest, environ, reader, deps, diags, config)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_value(v, (*path, i), manifest, environ, reader, deps, diags, config)
            for i, v in enumerate(value)
        ]
    if isinstance(value, str) and "${" in value:
        return _resolve_string(value, path, manifest, environ, reader, deps, diags, config)
    return value


def _resolve_string(
    text: str,
    path: JsonPath,
    manifest: Manifest,
    environ: Mapping[str, str],
    reader: Callable[[Path], str],
    deps: set[str],
    diags: Diagnostics,
    config: ResourceConfig,
) -> Any:
    where = manifest.source.where(path)
    parts: list[str | ResourceAddress] = []
    sensitive = False
    pos = 0
    for m in _INTERP.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        if m.group(0) == "$${":
            parts.append("${")
            continue
        expr = (m.group(1) or "").strip()
        if expr.startswith("env:"):
            name = expr[4:]
            if not _ENV_NAME.match(name):
                diags.error(f"invalid environment variable name in ${{{expr}}}", **where)
            elif name not in environ:
                diags.error(
                    f"environment variable {name} is not set (referenced as ${{env:{name}}})",
                    **where,
                )
            elif not environ[name]:
                # CI systems expand a missing secret to "": never send an empty secret.
                diags.error(
                    f"environment variable {name} is empty (referenced as ${{env:{name}}}); "
                    "in CI, check that the secret is defined",
                    **where,
                )
            else:
                parts.append(environ[name])
                sensitive = True
        elif expr.startswith("file:"):
            rel = expr[5:]
            file_path = (manifest.base_dir / rel).resolve()
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
            deps.add(str(target))
            parts.append(target)
    parts.append(text[pos:])
    joined = [p for p in parts if p != ""]
    if not any(isinstance(p, ResourceAddress) for p in joined):
        out = "".join(p for p in joined if isinstance(p, str))
        return Sensitive(out) if sensitive else out
    if sensitive:
        # Keep the secret parts wrapped so binding can mark the result sensitive.
        return RefString(tuple(Sensitive(p) if isinstance(p, str) else p for p in joined))
    return RefString(tuple(joined))


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
