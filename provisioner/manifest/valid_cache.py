"""Resource bodies already known to pass the manifest schema, so that validating a large
manifest again (every plan, every CI run on a warm runner) checks only what changed.

Owns the cache file and nothing else. An entry is the digest of one resource as written
(its section, key and body, `${...}` unresolved: never a resolved value, so no secret
reaches it), under the digest of the packaged schema: a new schema starts afresh. The file
lives in the user's cache folder (`$XDG_CACHE_HOME/provisioner`, else
`~/.cache/provisioner`); one that cannot be read or written only means no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from provisioner.manifest.loader import JsonPath

FILE_NAME = "valid-bodies.json"
# Digests kept at most (the newest): a few large manifests' worth.
_MAX_ENTRIES = 20_000


class ValidCache:
    def __init__(self, path: Path | None, schema: str, known: Iterable[str] = ()) -> None:
        self._path = path
        self._schema = schema
        self._known = dict.fromkeys(known)  # insertion-ordered set: oldest first
        self._added = False

    @classmethod
    def open(cls, environ: Mapping[str, str], schema_digest: str) -> ValidCache:
        folder = _folder(environ)
        path = folder / FILE_NAME if folder is not None else None
        known: list[str] = []
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(doc, dict) and doc.get("schema") == schema_digest:
                    known = [d for d in doc.get("valid", []) if isinstance(d, str)]
        return cls(path, schema_digest, known)

    @staticmethod
    def digest(path: JsonPath, body: Any) -> str:
        text = json.dumps([list(path), body], sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def __contains__(self, digest: object) -> bool:
        return digest in self._known

    def add(self, digests: Iterable[str]) -> None:
        for d in digests:
            if d not in self._known:
                self._known[d] = None
                self._added = True

    def save(self) -> None:
        """Write the file if anything was added (atomically; failures are ignored)."""
        if not self._added or self._path is None:
            return
        keep = list(self._known)[-_MAX_ENTRIES:]
        text = json.dumps({"schema": self._schema, "valid": keep}, separators=(",", ":"))
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".valid-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, self._path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self._added = False


def _folder(environ: Mapping[str, str]) -> Path | None:
    base = environ.get("XDG_CACHE_HOME") or ""
    if base:
        return Path(base) / "provisioner"
    home = environ.get("HOME") or ""
    return Path(home) / ".cache" / "provisioner" if home else None
