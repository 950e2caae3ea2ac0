"""Characters a reader cannot see, made visible. Pure.

A name holding U+202E (right-to-left override) or another bidi control, a zero-width
character or a terminal control is printed as its escape (`\u202e`), so that a plan or a
PR comment cannot show a reviewer something other than what it will apply.
"""

from __future__ import annotations

import re
import unicodedata

# Control (Cc), format (Cf: bidi controls, zero-width characters), line and paragraph
# separators, surrogates and private-use characters; not newline and tab, which
# renderers lay out themselves.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_CANDIDATE = re.compile(r"[^\n\t\x20-\x7e]")


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES:
        return ch
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with every invisible or control character (but newline and tab) escaped."""
    if text.isascii() and text.isprintable():
        return text
    return _CANDIDATE.sub(_escape, text)
