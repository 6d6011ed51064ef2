"""Page bytes + response headers -> the encoding to decode them with (pure).

Reads: the bytes of a fetched page and its response headers (lower-cased names; only ``content-type`` is
used). Returns: the Python codec name for :func:`bytes.decode`, always one that decodes text (``utf-8`` when
nothing better is known). Callers decode the slices they need (``scrape`` decodes only the head).
Settings: none.

Order, as the HTML standard has it: a byte-order mark, then the ``charset`` of the ``Content-Type`` header,
then ``<meta charset>``/``http-equiv`` in the first ``_PRESCAN_BYTES`` (or later in the head, which a
browser honours by re-decoding), then detection (charset-normalizer).
Labels are mapped to the superset browsers use (``iso-8859-1`` -> ``cp1252``, ``gb2312`` -> ``gb18030`` …).
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Mapping

import charset_normalizer

__all__ = ["detect_encoding"]

_PRESCAN_BYTES = 4096  # where <meta charset> may appear (the standard says 1024; real pages are sloppier)
_DETECT_BYTES = 64 * 1024  # bytes examined to confirm UTF-8 or to detect an undeclared encoding

_LATE_DECLARATION_BYTES = 1024 * 1024  # a head longer than this has no late <meta charset> honoured
_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^<>]{1,2048}?charset\s*=\s*["']?\s*([\w:.+-]+)""", re.IGNORECASE)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w:.+-]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels the HTML standard maps to a superset; decoding with the narrow codec garbles real pages.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
_SUPERSETS = {
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"), "cp1252"),
    **dict.fromkeys(("gb2312", "gbk", "x-gbk"), "gb18030"),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j"), "cp932"),
    **dict.fromkeys(("euc-kr", "ks_c_5601-1987"), "cp949"),
    **dict.fromkeys(("tis-620", "iso-8859-11"), "cp874"),
    "iso-8859-9": "cp1254",
    "big5": "big5hkscs",
}


def detect_encoding(body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """The page's encoding: BOM, then the header, then ``<meta charset>``/``http-equiv``, then detection."""
    # The BOM wins over the header, as the HTML standard says; the header wins over the page's own claim.
    for bom, bom_name in _BOMS:
        if body.startswith(bom):
            return bom_name
    content_type = (headers or {}).get("content-type")
    header = _CT_CHARSET.search(content_type) if content_type else None
    name = _codec(header.group(1)) if header else None
    if name:
        return name
    declared = _META_CHARSET.search(body, 0, _PRESCAN_BYTES)
    if declared is None:
        # A browser that meets <meta charset> later in the head re-decodes the page with it (the
        # standard's "change the encoding"), so a late declaration still beats detection.
        head_end = _HEAD_END.search(body, 0, _LATE_DECLARATION_BYTES)
        declared = _META_CHARSET.search(body, 0, head_end.start() if head_end else _PRESCAN_BYTES)
    name = _codec(declared.group(1).decode("ascii")) if declared else None
    if name:
        if name != "utf-8" and _is_utf8(body):
            # Saved or re-encoded pages keep their old <meta charset>; text in another multi-byte or 8-bit
            # encoding is almost never valid UTF-8 by chance, so valid UTF-8 wins.
            return "utf-8"
        # A page cannot declare UTF-16 in ASCII bytes; the standard reads such a claim as UTF-8.
        return "utf-8" if name.startswith("utf-16") else name
    if _is_utf8(body) or body[:_DETECT_BYTES].isascii():
        return "utf-8"
    guess = charset_normalizer.from_bytes(body[:_DETECT_BYTES]).best()
    return (_codec(guess.encoding) if guess is not None else None) or "utf-8"


def _is_utf8(body: bytes) -> bool:
    sample = body[:_DETECT_BYTES]
    if sample.isascii():
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data"  # only a character cut by the sample's end
    return True


@functools.lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """Python's name for a charset label, or None when it names no text encoding we can decode."""
    label = label.strip().lower()
    try:
        name = codecs.lookup(_SUPERSETS.get(label, label)).name
        # Python also has codecs that are no charsets ("base64", "rot13", "idna", "undefined" …).
        text = codecs.getincrementaldecoder(name)().decode(b"<")
    except (LookupError, UnicodeError, TypeError, ValueError):
        return None
    return name if isinstance(text, str) and name not in _NOT_CHARSETS else None
