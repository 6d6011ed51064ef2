"""The one escaping function for text that people read: log lines, the summary line, report.md and .html.

Reads: any text that may come from outside (a file name, a server's reason phrase, a page title). Returns it
with every character that could act on a terminal or forge a line shown as a visible escape instead:

- C0 controls and DEL (ESC, BEL, NUL, CR, LF, TAB …) and C1 controls (U+0080–U+009F, some terminals take
  U+009B as CSI): ``\\n``, ``\\r``, ``\\t``, or ``\\xNN``;
- a byte of a file name that is not UTF-8 (``os.fsdecode`` keeps it as a lone surrogate U+DC80–U+DCFF):
  ``\\xNN``, the byte itself, so ``x\\xff.md`` reads as the name on disk and the text stays valid UTF-8;
- any other lone surrogate, the Unicode line and paragraph separators and the bidirectional overrides
  (which can make a name read backwards): ``\\uNNNN``.

:func:`json_text` is the same rule for JSON text (report.json, JSON log lines): JSON escapes C0 itself,
and the rest is spelled ``\\uNNNN`` there, so the data is kept exactly.

Backslashes are left as they are, so a name that really contains ``\\x1b`` reads the same as one holding
the character; that ambiguity is the price of text that stays readable.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import datetime

__all__ = ["json_text", "printable"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# What json.dumps(ensure_ascii=False) leaves raw: everything above but C0, which JSON escapes itself.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as one line of safe text: controls, undecodable name bytes and bidi overrides escaped."""
    if isinstance(value, str):  # first: the PathLike check below is an ABC's, slow for every report cell
        text = value
    elif isinstance(value, bytes | os.PathLike):
        text = os.fsdecode(value)  # a name's undecodable bytes become surrogates, escaped below
    else:
        text = str(value)
    return _UNSAFE.sub(_escape, text)


def json_text(serialized: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` with the characters it leaves raw escaped.

    Same data (``\\u009b`` decodes to what was there), but no raw C1 control, separator or bidi override
    reaches a terminal or an editor. Such characters can only be inside JSON strings, so this is safe.
    """
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", serialized)


# C0 and C1 control characters that are not whitespace (whitespace is folded), and the replacement char.
_UNWRITABLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufffd]")


_JOINERS = frozenset("\u200d\ufe0e\ufe0f")


def fold(text: str) -> str:
    return " ".join(text.split())


def bounded_text(text: str, max_length: int) -> str:
    """Text fit to write: no control characters or U+FFFD, whitespace folded, at most ``max_length``
    characters, cut at a word boundary (or, in text without spaces, never inside a combined character)."""
    text = fold(_UNWRITABLE.sub("", text))
    if len(text) <= max_length:
        return text
    cut = text[: max_length - 1]
    space = cut.rfind(" ")
    if space >= max_length // 2:
        cut = cut[:space]
    else:
        while cut and (unicodedata.combining(text[len(cut)]) or text[len(cut)] in _JOINERS):
            cut = cut[:-1]
        while cut and cut[-1] in _JOINERS:
            cut = cut[:-1]
    return cut.rstrip(" ,;:-") + "…"


def iso(moment: datetime | None) -> str | None:
    """A time as the report and the history store it (ISO 8601, with its UTC offset); None stays None."""
    return moment.isoformat() if moment is not None else None
