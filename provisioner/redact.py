"""Redaction, the last line of defence: secret values scrubbed from every text the tool
writes (messages, log lines, plans, PR comments), whatever path the text took.

Secrets are kept out of output by construction (`values.Sensitive`, `SecretText`); this
catches what slips past that: an HTTP library's error quoting a header, an API error
echoing a field, a schema message quoting a value. Values are registered where they are
resolved (`${env:}` in `resolve`, the API key in `settings`); `scrub` is applied by the
writers (`cli.main`). Only values of `MIN_LENGTH` characters or more are scrubbed: a
shorter one would also match ordinary words.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping

MIN_LENGTH = 8
REDACTED = "(sensitive)"

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    """The ways `value` can appear in text: as is, stripped of surrounding whitespace,
    and escaped as Python's `repr` of text or bytes and JSON write it (`b'Bearer x\\n'`)."""
    forms = {value, value.strip()}
    forms.add(value.encode("unicode_escape").decode("ascii"))
    forms.add(repr(value.encode("utf-8"))[2:-1])
    forms.add(repr(value)[1:-1])
    forms.add(json.dumps(value)[1:-1])
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register_secret(value: str | None) -> None:
    """Remember `value` (and its escaped forms) as a secret, if it is long enough."""
    global _pattern
    if not value or len(value.strip()) < MIN_LENGTH:
        return
    new = _forms(value) - _secrets
    if not new:
        return
    with _lock:
        _secrets.update(new)
        # Longest first, so that a secret containing another is replaced whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


# Where the API keys and Twilio credentials come from when not from the manifest.
SECRET_VARIABLES = ("VAPI_TOKEN", "VAPI_API_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_API_SECRET")


def register_environment(environ: Mapping[str, str]) -> None:
    """Register the API keys and Twilio credentials the environment holds."""
    for name in SECRET_VARIABLES:
        register_secret(environ.get(name))


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by `(sensitive)`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def forget_all() -> None:
    """Forget every registered secret (a new run in the same process: the CLI's tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None
