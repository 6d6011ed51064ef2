"""Emit new front-matter text: scalars (plain, quoted or kept block), flow collections, keys and block nodes.

Reads: plain Python values (str, int, float, bool, None, dict, list), the old node a scalar replaces (to keep
its quoting, its boolean spelling or its timestamp) and a :class:`Style` measured from the file's own text
and composed root (see :mod:`.spans`). Returns: YAML text for :mod:`.splice` to
splice in, with ``\\n`` newlines (the splicer writes the file's own), following the file's indentation,
list indentation and per-key quoting; nothing here checks the result, the splicer re-parses every splice.
Also the node walk and line/column helpers that :class:`Style` measures with. Settings: none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, cast

import yaml

from pipeline.frontmatter.spans import TAG, Node, block_chomp

_resolve = cast(Callable[[type, str, tuple[bool, bool]], str], yaml.resolver.Resolver().resolve)
_BOOL_PAIRS = [("true", "false"), ("yes", "no"), ("on", "off")]
_BOOL_WORDS = {word: pair for pair in _BOOL_PAIRS for word in pair}


def printable(c: str) -> bool:
    return (
        "\x20" <= c <= "\x7e" or "\xa0" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
    ) and c not in "\ufeff\u2028\u2029"


def line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def walk(node: Node | None) -> Iterator[Node]:
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        yield current
        if current.kind == "map":
            stack.extend(v for pair in current.items for v in pair)
        elif current.kind == "seq":
            stack.extend(current.items)


class Style:
    """What new text should look like in this file: indentation step, list indentation, quoting by key."""

    def __init__(self, text: str, root: Node | None) -> None:
        step: int | None = None
        self.seq_offset: int | None = None
        self.by_key: dict[str, str | None] = {}
        for node in walk(root):
            if node.kind != "map" or node.flow:
                continue
            for key, value in node.items:
                if value.kind == "scalar" and value.tag == TAG + "str":
                    self.by_key.setdefault(key.text, value.style)
                if (
                    value.kind == "map"
                    and not value.flow
                    and value.items
                    and value.line > key.line
                    and not step
                ):
                    step = max(1, column_at(text, value.items[0][0].start) - column_at(text, key.start))
                if value.kind == "seq" and not value.flow and self.seq_offset is None:
                    self.seq_offset = max(0, column_at(text, value.start) - column_at(text, key.start))
        self.step = step or 2
        if self.seq_offset is None:
            self.seq_offset = self.step


def column_at(text: str, index: int) -> int:
    return index - line_start(text, index)


def plain_ok(value: str, flow: bool, old_tag: str | None = None, tagged: bool = False) -> bool:
    """Whether ``value`` reads back as itself written plain (``tagged``: after an explicit ``!!str``)."""
    if (
        not value
        or value != value.strip(" ")
        or value[0] in "-?:,[]{}#&*!|>'\"%@`"
        or value.startswith("...")
    ):
        return False
    if not all(printable(c) for c in value) or ": " in value or " #" in value or value.endswith(":"):
        return False
    if flow and any(c in value for c in ",[]{}:"):
        return False
    tag = _resolve(yaml.ScalarNode, value, (True, False))
    return tagged or tag == TAG + "str" or (tag == old_tag == TAG + "timestamp")


_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f"}
_ESCAPES |= {"\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\u2028": "\\L"}
_ESCAPES |= {"\u2029": "\\P"}


def double_quoted(value: str) -> str:
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif printable(c):
            out.append(c)
        elif c <= "\xff":
            out.append(f"\\x{ord(c):02X}")
        elif c <= "\uffff":
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(f"\\U{ord(c):08X}")
    return '"' + "".join(out) + '"'


def scalar_text(
    value: Any, *, flow: bool, style: str | None = None, old: Node | None = None, tagged: bool = False
) -> str:
    """A scalar in the style asked for when it can keep it, else plain when safe, else double-quoted."""
    if value is None:
        return old.text if old is not None and old.tag == TAG + "null" and old.text else "null"
    if isinstance(value, bool):
        if old is not None and old.tag == TAG + "bool" and old.text.lower() in _BOOL_WORDS:
            word = _BOOL_WORDS[old.text.lower()][0 if value else 1]
            return word.upper() if old.text.isupper() else word.title() if old.text.istitle() else word
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        text = repr(value)
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if style == "'" and all(printable(c) for c in value):
        return "'" + str(value).replace("'", "''") + "'"
    if style in (None, "") and plain_ok(value, flow, old.tag if old is not None else None, tagged):
        return str(value)
    return double_quoted(value)


def flow_text(value: Any, style: Style) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{key_text(k)}: {flow_text(v, style)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow_text(v, style) for v in value) + "]"
    return scalar_text(value, flow=True)


def key_text(key: str) -> str:
    return key if plain_ok(key, flow=True) else double_quoted(key)


def block_scalar(text: str, node: Node, written: str, prefix: str, value: str) -> str | None:
    """The new value in the node's own block style with its header, or None when that is unsafe."""
    source = text[node.start : node.end]
    header, _, body = source.partition("\n")
    indicators = block_chomp(source, len(written))
    if len(indicators) > 2 or any(c.isdigit() for c in indicators):
        return None
    chomp = indicators[1:]
    if chomp == "-" and not value.endswith("\n"):
        content = value
    elif chomp == "" and value.endswith("\n") and not value.endswith("\n\n"):
        content = value[:-1]
    else:
        return None
    lines = content.split("\n")
    if not content or lines[0].startswith(" ") or not all(printable(c) for c in content.replace("\n", "")):
        return None
    if node.style == ">" and len(lines) > 1:
        return None
    indent = next((len(x) - len(x.lstrip(" ")) for x in body.split("\n") if x.strip()), 2)
    first = prefix + header[len(written) :].rstrip("\r")
    return first + "\n" + "".join((" " * indent + x if x else "") + "\n" for x in lines)


def after_key(value: Any, column: int, hints: dict[str, str | None], style: Style) -> str:
    """Text after ``key:`` for a value whose key sits at ``column`` (no final newline)."""
    if isinstance(value, dict) and value:
        return "\n" + _mapping(value, column + style.step, hints, style)
    if isinstance(value, list) and value:
        offset = style.seq_offset or 0
        return "\n" + _sequence(value, column + offset, hints, style)
    if isinstance(value, dict | list):
        return " " + flow_text(value, style)
    return " " + scalar_text(value, flow=False, style=None)


def _mapping(value: dict[str, Any], column: int, hints: dict[str, str | None], style: Style) -> str:
    lines = []
    for key, item in value.items():
        quoting = hints.get(key, style.by_key.get(key))
        if isinstance(item, str) and quoting in ('"', "'"):
            text = " " + scalar_text(item, flow=False, style=quoting)
        else:
            text = after_key(item, column, {}, style)
        lines.append(" " * column + key_text(key) + ":" + text)
    return "\n".join(lines)


def _sequence(value: list[Any], column: int, hints: dict[str, str | None], style: Style) -> str:
    return "\n".join(" " * column + "- " + item_text(item, column + 2, hints, style) for item in value)


def item_text(value: Any, column: int, hints: dict[str, str | None], style: Style) -> str:
    """A list item's text after its dash, for an item whose content starts at ``column``."""
    if isinstance(value, dict) and value:
        return _mapping(value, column, hints, style)[column:]
    if isinstance(value, list) and value:
        return _sequence(value, column, hints, style)[column:]
    if isinstance(value, dict | list):
        return flow_text(value, style)
    return scalar_text(value, flow=False, style=hints.get(""))
