"""Parse an article's front-matter, and write changes back faithfully.

Reads: the bytes of one article (a ``---`` line, YAML, a closing ``---`` or ``...`` line, then the body).
Returns: a :class:`Document` (the bytes as read plus the front-matter as plain Python data), new file bytes
from :func:`apply`, and an atomic replace with :func:`write_atomic`. Settings: none (callers pass the
corpus roots and size limits from ``corpus``).

Faithfulness comes from splicing, not dumping: every edit replaces or inserts text at the exact source
spans libyaml's node marks report (character offsets into the decoded front-matter), so comments, quoting,
key order, indentation, CRLF, a BOM and the body stay as they were. After each splice the text is parsed
again and the data compared with what the edit should give; any mismatch is a :class:`FrontMatterError`,
never a write. Only the front-matter is decoded and parsed (libyaml's C composer, safe tags only); the body
stays bytes. Aliases are counted, not expanded, before any data is built, so an alias bomb is refused.

Exceptions::

    FrontMatterError      bad input, or an edit that cannot be made faithfully
    ├── WriteConflict     the file changed on disk since it was read
    └── OutsideRoots      the path (symlinks resolved) lies outside every configured root
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

FieldPath = tuple[str | int, ...]


class FrontMatterError(Exception):
    """An article's front-matter cannot be read or edited; the message is for people."""


class WriteConflict(FrontMatterError):
    """The file's bytes on disk differ from those read at the start of the run."""


class OutsideRoots(FrontMatterError):
    """The path resolves (symlinks included) outside every configured root."""


_BOM = b"\xef\xbb\xbf"
_OPENING = re.compile(rb"---[ \t]*(\r?\n)")
_CLOSING = re.compile(rb"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary"))
_SEQ_TAGS, _MAP_TAGS = frozenset({_TAG + "seq"}), frozenset({_TAG + "map"})
_TEXT_TAGS = frozenset(_TAG + t for t in ("str", "timestamp", "binary"))  # kept as their source text
_MAX_NODES = 100_000  # data nodes after alias expansion; a billion-laughs document is refused above this
_CTOR = yaml.constructor.SafeConstructor()
_resolve = cast(Callable[[type, str, tuple[bool, bool]], str], yaml.resolver.Resolver().resolve)
_PROPERTIES = re.compile(r"(?:[&!][^ \t\r\n]*[ \t]+)*")
_BOOL_PAIRS = [("true", "false"), ("yes", "no"), ("on", "off")]
_BOOL_WORDS = {word: pair for pair in _BOOL_PAIRS for word in pair}


def _printable(c: str) -> bool:
    return (
        "\x20" <= c <= "\x7e" or "\xa0" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
    ) and c != "\ufeff"


class _Node:
    """A composed YAML node with its source span; aliases are nodes of kind ``alias`` pointing at a target."""

    __slots__ = (
        "anchor",
        "data",
        "end",
        "flow",
        "items",
        "kind",
        "line",
        "referenced",
        "size",
        "start",
        "style",
        "tag",
        "target",
        "text",
    )

    def __init__(self, kind: str, start: int, end: int, line: int) -> None:
        self.kind, self.start, self.end, self.line = kind, start, end, line
        self.items: list[Any] = []  # mapping: [(key node, value node)], sequence: [node]
        self.anchor: str | None = None
        self.referenced = False
        self.flow = False
        self.style: str | None = None
        self.tag = ""
        self.text = ""  # a scalar's value as written (after unquoting)
        self.data: Any = None
        self.size = 1
        self.target: _Node | None = None


class _Problem(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line  # 0-based within the front-matter text


def _compose(text: str) -> _Node | None:
    loader = yaml.CSafeLoader(text)
    try:
        graph = loader.get_single_node()  # libyaml composes; aliases stay shared references, never copies
        return _Walker(text).node(graph, 0) if graph is not None else None
    except yaml.MarkedYAMLError as exc:
        mark: Any = exc.problem_mark or exc.context_mark
        raise _Problem(f"invalid YAML: {exc.problem or exc.context}", mark.line if mark else None) from None
    except yaml.YAMLError as exc:
        raise _Problem(f"invalid YAML: {exc}", None) from None
    except RecursionError:
        raise _Problem("the front-matter is nested too deeply", None) from None
    finally:
        loader.dispose()


_ANCHOR = re.compile(r"(?:![^ \t\r\n]*[ \t]+)?&([^ \t\r\n,\[\]{}]+)")
_SKIP_PROPERTIES = re.compile(r"(?:[&!][^ \t\r\n]*[ \t\r\n]+)*")
_TO_ALIAS = re.compile(r"(?:[ \t\r\n:,?\[{-]|#[^\n]*)*\*")


def _after_properties(text: str, index: int) -> int:
    found = _SKIP_PROPERTIES.match(text, index)
    return found.end() if found else index


class _Walker:
    """Turns libyaml's node graph into ``_Node`` trees with spans, checking tags, keys and alias expansion.

    libyaml reports no position for an alias, so the second visit of a node is an alias use and its
    ``*name`` is found in the text after the previous sibling.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.done: dict[int, _Node] = {}
        self.active: set[int] = set()
        self.expanded = 0  # values added by alias uses; the rest is bounded by the text's length

    def node(self, graph: Any, after: int) -> _Node:
        key = id(graph)
        seen = self.done.get(key)
        if seen is not None:
            return self._alias(seen, after)
        mark = graph.start_mark
        node = _Node("scalar", mark.index, graph.end_mark.index, mark.line)
        node.tag = tag = graph.tag
        if type(graph) is yaml.ScalarNode:
            if tag not in _SCALAR_TAGS:
                _check_tag(tag, _SCALAR_TAGS, mark.line)
            node.style, node.text = graph.style or None, graph.value
            node.data = graph.value if tag in _TEXT_TAGS else self._construct(graph, tag, mark.line)
        else:
            if key in self.active:
                raise _Problem("an alias refers to the collection that contains it", mark.line)
            self.active.add(key)
            self._collection(graph, node)
            self.active.discard(key)
        if self.text[node.start : node.start + 1] in ("&", "!"):
            anchor = _ANCHOR.match(self.text, node.start)
            node.anchor = anchor.group(1) if anchor else None
        self.done[key] = node
        return node

    def _collection(self, graph: Any, node: _Node) -> None:
        line, position = node.line, _after_properties(self.text, node.start)
        node.flow = bool(graph.flow_style)
        if type(graph) is yaml.SequenceNode:
            node.kind = "seq"
            _check_tag(node.tag, _SEQ_TAGS, line)
            for child in graph.value:
                item = self.node(child, position)
                node.items.append(item)
                node.size += item.size
                position = item.end
            node.data = [item.data for item in node.items]
            return
        node.kind = "map"
        _check_tag(node.tag, _MAP_TAGS, line)
        data: dict[str, Any] = {}
        for key_graph, value_graph in graph.value:
            key = self.node(key_graph, position)
            if key.kind != "scalar":
                raise _Problem("a mapping key must be a plain or quoted text", key.line)
            if key.text in data:
                raise _Problem(f"duplicate key {key.text!r}", key.line)
            value = self.node(value_graph, key.end)
            node.items.append((key, value))
            node.size += value.size
            data[key.text] = value.data
            position = value.end
        node.data = data

    def _alias(self, target: _Node, after: int) -> _Node:
        self.expanded += target.size
        if self.expanded > _MAX_NODES:
            raise _Problem(f"aliases expand to more than {_MAX_NODES} values (an alias bomb?)", target.line)
        found = _TO_ALIAS.match(self.text, after)
        name = target.anchor or ""
        if not name or found is None or not self.text.startswith(name, found.end()):
            raise _Problem(f"cannot locate the alias of anchor &{name}", target.line)
        start = found.end() - 1
        node = _Node("alias", start, found.end() + len(name), self.text.count("\n", 0, start))
        target.referenced = True
        node.target, node.size, node.data = target, target.size, _clone(target.data)
        return node

    @staticmethod
    def _construct(graph: Any, tag: str, line: int) -> Any:
        try:
            return getattr(_CTOR, "construct_yaml_" + tag[len(_TAG) :])(graph)
        except (ValueError, yaml.YAMLError):
            raise _Problem(f"{graph.value!r} is not a valid {tag[len(_TAG) :]}", line) from None


def _check_tag(tag: str, allowed: frozenset[str], line: int) -> None:
    if tag in allowed:
        return
    if tag == _TAG + "merge":
        raise _Problem("merge keys (<<) are not supported", line)
    shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
    kind = "unsafe" if "python/" in tag else "unsupported"
    raise _Problem(f"{kind} tag {shown} (only plain YAML values are allowed)", line)


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equality that tells ``True`` from ``1`` and ``1.0`` from ``1``, and a NaN equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@dataclass(frozen=True, slots=True)
class Document:
    """One article as read: its exact bytes, and its front-matter as plain Python data."""

    raw: bytes
    data: dict[str, Any]
    _start: int = field(default=-1, repr=False, compare=False)  # offset of the YAML text (after `---` line)
    _end: int = field(default=-1, repr=False, compare=False)  # offset of the closing line; -1: not parsed

    @property
    def text(self) -> str:
        """The YAML text between the opening and closing lines."""
        return self.raw[self._start : self._end].decode("utf-8")

    @property
    def body(self) -> bytes:
        """The bytes after the closing ``---`` line."""
        after = self.raw.find(b"\n", self._end)
        return self.raw[after + 1 :] if after >= 0 else b""


def parse(raw: bytes) -> Document:
    """Split ``raw`` into front-matter and body and parse the front-matter; raise FrontMatterError."""
    if b"\x00" in raw:
        raise FrontMatterError("binary file: it contains NUL bytes")
    start = len(_BOM) if raw.startswith(_BOM) else 0
    opening = _OPENING.match(raw, start)
    if opening is None:
        raise FrontMatterError("no front-matter: the file does not start with a '---' line")
    closing = _CLOSING.search(raw, opening.end())
    if closing is None:
        raise FrontMatterError("unterminated front-matter: no closing '---' line")
    try:
        text = raw[opening.end() : closing.start()].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, opening.end() + exc.start) + 1
        raise FrontMatterError(f"line {line}: the front-matter is not UTF-8 text") from None
    try:
        root = _compose(text)
    except _Problem as exc:
        where = f"line {exc.line + 2}: " if exc.line is not None else ""
        raise FrontMatterError(f"{where}{exc}") from None
    if root is not None and root.kind != "map":
        if root.kind == "scalar" and root.tag == _TAG + "null" and not root.text:
            root = None
        else:
            kind = {"seq": "a list", "scalar": "a single value", "alias": "an alias"}[root.kind]
            raise FrontMatterError(f"line {root.line + 2}: the front-matter is {kind}, not a mapping of keys")
    return Document(raw, root.data if root is not None else {}, opening.end(), closing.start())


@dataclass(frozen=True, slots=True)
class SetValue:
    """Set a scalar or a whole mapping/list subtree at ``path``; a missing last key is created."""

    path: FieldPath
    value: Any


@dataclass(frozen=True, slots=True)
class Append:
    """Append an item to the existing list at ``path``."""

    path: FieldPath
    value: Any


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove the mapping key or list item at ``path`` (a missing key is a no-op)."""

    path: FieldPath


Edit = SetValue | Append | Remove


def _show(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(root)"


def _checked(value: Any, path: FieldPath) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_checked(v, path) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _checked(v, path) for k, v in value.items()}
    raise FrontMatterError(f"{_show(path)}: cannot store a {type(value).__name__} in front-matter")


def _child(current: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(current, dict) and isinstance(part, str) and part in current:
        return True, current[part]
    if (
        isinstance(current, list)
        and isinstance(part, int)
        and not isinstance(part, bool)
        and 0 <= part < len(current)
    ):
        return True, current[part]
    return False, None


def _container(data: Any, path: FieldPath) -> Any:
    """The Python object holding ``path[-1]``; raises when a parent is missing."""
    if not path:
        raise FrontMatterError("an edit needs a non-empty field path")
    current = data
    for i, part in enumerate(path[:-1]):
        found, current = _child(current, part)
        if not found:
            raise FrontMatterError(f"no field {_show(path[: i + 1])}")
    if not isinstance(current, dict | list):
        raise FrontMatterError(f"{_show(path[:-1])} is not a mapping or a list")
    return current


def _py_apply(data: dict[str, Any], edit: Edit) -> None:
    """Apply ``edit`` to plain data in place: the result the splice must reproduce."""
    parent, last = _container(data, edit.path), edit.path[-1]
    if isinstance(parent, dict):
        if not isinstance(last, str) or (isinstance(edit, Append) and last not in parent):
            raise FrontMatterError(f"no field {_show(edit.path)}")
        if isinstance(edit, Remove):
            parent.pop(last, None)
            return
    elif isinstance(last, bool) or not isinstance(last, int) or not 0 <= last < len(parent):
        raise FrontMatterError(f"no field {_show(edit.path)}")
    elif isinstance(edit, Remove):
        del parent[last]
        return
    if isinstance(edit, SetValue):
        parent[last] = _checked(edit.value, edit.path)
    elif isinstance(parent[last], list):
        parent[last].append(_checked(edit.value, edit.path))
    else:
        raise FrontMatterError(f"{_show(edit.path)} is not a list")


def apply(doc: Document, edits: Sequence[Edit]) -> bytes:
    """Return the file bytes with ``edits`` spliced in; ``doc.raw`` itself when nothing changes."""
    if doc._end < 0:  # built by hand (in a test, say) rather than by parse()
        doc = parse(doc.raw)
    text = doc.text
    try:
        root = _compose(text)
    except _Problem as exc:  # only for a Document not made by parse()
        raise FrontMatterError(str(exc)) from None
    original = root.data if root is not None and root.kind == "map" else {}
    expected = _clone(original)
    for edit in edits:
        _py_apply(expected, edit)
    if _same(expected, original):
        return doc.raw
    splicer = _Splicer(text, root, doc.raw[doc._start - 2 : doc._start] == b"\r\n")
    for edit in edits:
        splicer.run(edit)
    if not _same(splicer.data, expected):
        raise FrontMatterError("the edited front-matter does not hold the expected values")
    return doc.raw[: doc._start] + splicer.text.encode("utf-8") + doc.raw[doc._end :]


def _content_end(text: str, node: _Node) -> int:
    """Where a node's own text ends (a block collection's end mark runs on over comments and blanks)."""
    while node.kind in ("map", "seq") and not node.flow and node.items:
        last = node.items[-1]
        node = last[1] if node.kind == "map" else last
    if node.kind == "scalar" and node.style in ("|", ">"):
        return _line_end(text, node.start + len(text[node.start : node.end].rstrip()))
    return node.end


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    if index > 0 and text[index - 1] == "\n":
        return index
    found = text.find("\n", index)
    return len(text) if found < 0 else found + 1


def _walk(node: _Node | None) -> Iterator[_Node]:
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        yield current
        if current.kind == "map":
            stack.extend(v for pair in current.items for v in pair)
        elif current.kind == "seq":
            stack.extend(current.items)


class _Style:
    """What new text should look like in this file: indentation step, list indentation, quoting by key."""

    def __init__(self, text: str, root: _Node | None) -> None:
        step: int | None = None
        self.seq_offset: int | None = None
        self.by_key: dict[str, str | None] = {}
        for node in _walk(root):
            if node.kind != "map" or node.flow:
                continue
            for key, value in node.items:
                if value.kind == "scalar" and value.tag == _TAG + "str":
                    self.by_key.setdefault(key.text, value.style)
                if (
                    value.kind == "map"
                    and not value.flow
                    and value.items
                    and value.line > key.line
                    and not step
                ):
                    step = max(1, _column(text, value.items[0][0].start) - _column(text, key.start))
                if value.kind == "seq" and not value.flow and self.seq_offset is None:
                    self.seq_offset = max(0, _column(text, value.start) - _column(text, key.start))
        self.step = step or 2
        if self.seq_offset is None:
            self.seq_offset = self.step


def _column(text: str, index: int) -> int:
    return index - _line_start(text, index)


def _plain_ok(value: str, flow: bool, old_tag: str | None = None) -> bool:
    if (
        not value
        or value != value.strip(" ")
        or value[0] in "-?:,[]{}#&*!|>'\"%@`"
        or value.startswith("...")
    ):
        return False
    if not all(_printable(c) for c in value) or ": " in value or " #" in value or value.endswith(":"):
        return False
    if flow and any(c in value for c in ",[]{}:"):
        return False
    tag = _resolve(yaml.ScalarNode, value, (True, False))
    return tag == _TAG + "str" or (tag == old_tag == _TAG + "timestamp")


_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f"}
_ESCAPES |= {"\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\u2028": "\\L"}
_ESCAPES |= {"\u2029": "\\P"}


def _double_quoted(value: str) -> str:
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif _printable(c):
            out.append(c)
        elif c <= "\xff":
            out.append(f"\\x{ord(c):02X}")
        elif c <= "\uffff":
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(f"\\U{ord(c):08X}")
    return '"' + "".join(out) + '"'


def _scalar_text(value: Any, *, flow: bool, style: str | None = None, old: _Node | None = None) -> str:
    """A scalar in the style asked for when it can keep it, else plain when safe, else double-quoted."""
    if value is None:
        return old.text if old is not None and old.tag == _TAG + "null" and old.text else "null"
    if isinstance(value, bool):
        if old is not None and old.tag == _TAG + "bool" and old.text.lower() in _BOOL_WORDS:
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
    if style == "'" and all(_printable(c) for c in value):
        return "'" + str(value).replace("'", "''") + "'"
    if style in (None, "") and _plain_ok(value, flow, old.tag if old is not None else None):
        return str(value)
    return _double_quoted(value)


def _flow_text(value: Any, style: _Style) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{_key_text(k)}: {_flow_text(v, style)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow_text(v, style) for v in value) + "]"
    return _scalar_text(value, flow=True)


def _key_text(key: str) -> str:
    return key if _plain_ok(key, flow=True) else _double_quoted(key)


class _Splicer:
    """Applies edits one splice at a time, re-parsing and verifying after each."""

    def __init__(self, text: str, root: _Node | None, crlf: bool) -> None:
        self.text, self.root = text, root
        self.data: dict[str, Any] = _clone(root.data) if root is not None else {}
        self.newline = "\r\n" if crlf else "\n"
        self.style = _Style(text, root)

    def run(self, edit: Edit) -> None:
        if isinstance(edit, SetValue):
            self._set(edit.path, _checked(edit.value, edit.path))
        elif isinstance(edit, Append):
            self._append(edit.path, _checked(edit.value, edit.path))
        else:
            self._remove(edit.path)

    def _commit(self, start: int, end: int, new: str, edit: Edit) -> None:
        text = self.text[:start] + new.replace("\n", self.newline) + self.text[end:]
        expected = _clone(self.data)
        _py_apply(expected, edit)
        try:
            root = _compose(text)
        except _Problem as exc:
            raise FrontMatterError(f"{_show(edit.path)}: the edit would not be valid YAML ({exc})") from None
        data = root.data if root is not None and root.kind == "map" else {}
        if not _same(data, expected):
            raise FrontMatterError(f"{_show(edit.path)}: the edit cannot be spliced in faithfully")
        self.text, self.root, self.data = text, root, data

    def _locate(self, path: FieldPath) -> list[_Node]:
        """The nodes from the root down to ``path``; refuses to edit through aliases or shared anchors."""
        if self.root is None:
            raise FrontMatterError(f"no field {_show(path)}")
        chain = [self.root]
        for i, part in enumerate(path):
            node = chain[-1]
            if node.kind == "alias":
                raise FrontMatterError(f"{_show(path)}: cannot edit through the alias at {_show(path[:i])}")
            if node.kind == "map" and isinstance(part, str):
                found = [v for k, v in node.items if k.text == part]
            elif node.kind == "seq" and isinstance(part, int) and 0 <= part < len(node.items):
                found = [node.items[part]]
            else:
                found = []
            if not found:
                raise FrontMatterError(f"no field {_show(path[: i + 1])}")
            chain.append(found[0])
        for node in chain:
            if node.referenced:
                raise FrontMatterError(f"{_show(path)}: the value is shared through anchor &{node.anchor}")
        return chain

    def _get(self, path: FieldPath) -> tuple[bool, Any]:
        current: Any = self.data
        for part in path:
            found, current = _child(current, part)
            if not found:
                return False, None
        return True, current

    def _set(self, path: FieldPath, value: Any) -> None:
        found, current = self._get(path)
        if found and _same(current, value):
            return
        if not found:
            holder = self._locate(path[:-1])[-1] if self.root is not None or len(path) > 1 else None
            if isinstance(path[-1], str) and (holder is None or holder.kind == "map"):
                self._add_key(holder, path, value)
                return
            raise FrontMatterError(f"no field {_show(path)}")
        chain = self._locate(path)
        parent, node = chain[-2], chain[-1]
        if isinstance(value, dict) and value and node.kind == "map" and node.items:
            for key, item in value.items():
                self._set((*path, key), item)
            for key in [k for k in current if k not in value]:
                self._remove((*path, key))
        elif isinstance(value, list) and value and node.kind == "seq" and node.items:
            for i, item in enumerate(value[: len(current)]):
                self._set((*path, i), item)
            for item in value[len(current) :]:
                self._append(path, item)
            for i in reversed(range(len(value), len(current))):
                self._remove((*path, i))
        elif node.kind == "scalar" and not isinstance(value, dict | list):
            self._replace_scalar(node, path, value)
        else:
            self._replace_value(parent, node, path, value)

    def _replace_scalar(self, node: _Node, path: FieldPath, value: Any) -> None:
        source = self.text[node.start : node.end]
        props = _PROPERTIES.match(source)
        prefix = props.group() if props and node.anchor else ""
        if node.style in ("|", ">"):
            block = self._block_scalar(node, len(prefix), value) if isinstance(value, str) else None
            end = _content_end(self.text, node)
            new = block if block is not None else prefix + _scalar_text(value, flow=False) + "\n"
            self._commit(node.start, end, new, SetValue(path, value))
            return
        new = _scalar_text(value, flow=self._in_flow(path), style=node.style, old=node)
        if node.start == node.end and self.text[node.start - 1 : node.start] not in (" ", "\t"):
            new = " " + new
        self._commit(node.start, node.end, prefix + new, SetValue(path, value))

    def _block_scalar(self, node: _Node, skip: int, value: str) -> str | None:
        """The new value in the node's own block style with its header, or None when that is unsafe."""
        source = self.text[node.start : node.end]
        header, _, body = source.partition("\n")
        indicators = header[skip:].rstrip("\r").split("#")[0].strip()
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
        if (
            not content
            or lines[0].startswith(" ")
            or not all(_printable(c) for c in content.replace("\n", ""))
        ):
            return None
        if node.style == ">" and len(lines) > 1:
            return None
        indent = next((len(x) - len(x.lstrip(" ")) for x in body.split("\n") if x.strip()), 2)
        return header.rstrip("\r") + "\n" + "".join((" " * indent + x if x else "") + "\n" for x in lines)

    def _in_flow(self, path: FieldPath) -> bool:
        return any(n.flow for n in self._locate(path[:-1])) if path[:-1] or self.root else False

    def _replace_value(self, parent: _Node, node: _Node, path: FieldPath, value: Any) -> None:
        edit = SetValue(path, value)
        if parent.flow or self._in_flow(path):
            self._commit(node.start, _content_end(self.text, node), _flow_text(value, self.style), edit)
            return
        end = _line_end(self.text, _content_end(self.text, node))
        if parent.kind == "map":
            key = next(k for k, v in parent.items if v is node)
            column = _column(self.text, key.start)
            self._commit(key.end, end, ":" + self._after_key(value, column, {}) + "\n", edit)
        else:
            self._commit(node.start, end, self._item(value, _column(self.text, node.start), {}) + "\n", edit)

    def _after_key(self, value: Any, column: int, hints: dict[str, str | None]) -> str:
        """Text after ``key:`` for a value whose key sits at ``column`` (no final newline)."""
        if isinstance(value, dict) and value:
            return "\n" + self._mapping(value, column + self.style.step, hints)
        if isinstance(value, list) and value:
            offset = self.style.seq_offset or 0
            return "\n" + self._sequence(value, column + offset, hints)
        if isinstance(value, dict | list):
            return " " + _flow_text(value, self.style)
        return " " + _scalar_text(value, flow=False, style=None)

    def _mapping(self, value: dict[str, Any], column: int, hints: dict[str, str | None]) -> str:
        lines = []
        for key, item in value.items():
            style = hints.get(key, self.style.by_key.get(key))
            if isinstance(item, str) and style in ('"', "'"):
                text = " " + _scalar_text(item, flow=False, style=style)
            else:
                text = self._after_key(item, column, {})
            lines.append(" " * column + _key_text(key) + ":" + text)
        return "\n".join(lines)

    def _sequence(self, value: list[Any], column: int, hints: dict[str, str | None]) -> str:
        return "\n".join(" " * column + "- " + self._item(item, column + 2, hints) for item in value)

    def _item(self, value: Any, column: int, hints: dict[str, str | None]) -> str:
        """A list item's text after its dash, for an item whose content starts at ``column``."""
        if isinstance(value, dict) and value:
            return self._mapping(value, column, hints)[column:]
        if isinstance(value, list) and value:
            return self._sequence(value, column, hints)[column:]
        if isinstance(value, dict | list):
            return _flow_text(value, self.style)
        return _scalar_text(value, flow=False, style=hints.get(""))

    def _add_key(self, parent: _Node | None, path: FieldPath, value: Any) -> None:
        key, edit = str(path[-1]), SetValue(path, value)
        if parent is None:
            self._commit(
                len(self.text),
                len(self.text),
                _key_text(key) + ":" + self._after_key(value, 0, {}) + "\n",
                edit,
            )
        elif parent.flow or self._in_flow(path):
            new = f"{_key_text(key)}: {_flow_text(value, self.style)}"
            self._flow_insert(parent, new, edit)
        else:
            column = _column(self.text, parent.items[0][0].start)
            at = _line_end(self.text, _content_end(self.text, parent))
            new = " " * column + _key_text(key) + ":" + self._after_key(value, column, {}) + "\n"
            self._commit(at, at, new, edit)

    def _flow_insert(self, parent: _Node, new: str, edit: Edit) -> None:
        if parent.items:
            at = _content_end(self.text, parent.items[-1][1] if parent.kind == "map" else parent.items[-1])
            self._commit(at, at, ", " + new, edit)
        else:
            self._commit(parent.end - 1, parent.end - 1, new, edit)

    def _append(self, path: FieldPath, value: Any) -> None:
        node, edit = self._locate(path)[-1], Append(path, value)
        if node.kind == "alias":
            raise FrontMatterError(f"{_show(path)}: cannot append through an alias")
        if node.kind != "seq":
            raise FrontMatterError(f"{_show(path)} is not a list")
        if node.flow:
            self._flow_insert(node, _flow_text(value, self.style), edit)
            return
        last = node.items[-1]
        hints: dict[str, str | None] = {}
        if last.kind == "map":
            hints = {k.text: v.style for k, v in last.items if v.kind == "scalar" and v.tag == _TAG + "str"}
        elif last.kind == "scalar" and last.tag == _TAG + "str":
            hints = {"": last.style}
        dash = _column(self.text, node.start)
        column = _column(self.text, node.items[0].start)
        at = _line_end(self.text, _content_end(self.text, node))
        new = " " * dash + "-" + " " * (column - dash - 1) + self._item(value, column, hints) + "\n"
        self._commit(at, at, new, edit)

    def _remove(self, path: FieldPath) -> None:
        found, _ = self._get(path)
        if not found:
            if len(path) == 1 and isinstance(path[0], str):
                return
            self._locate(path[:-1])
            if isinstance(path[-1], int):
                raise FrontMatterError(f"no field {_show(path)}")
            return
        chain = self._locate(path)
        parent, node, edit = chain[-2], chain[-1], Remove(path)
        entries = (
            [(k.start, v) for k, v in parent.items]
            if parent.kind == "map"
            else [(n.start, n) for n in parent.items]
        )
        index = next(i for i, (_, v) in enumerate(entries) if v is node)
        start, end = entries[index][0], _content_end(self.text, node)
        if parent.flow:
            if index + 1 < len(entries):
                end = entries[index + 1][0]
            elif index > 0:
                start = _content_end(self.text, entries[index - 1][1])
            self._commit(start, end, "", edit)
            return
        if len(entries) == 1:
            if parent is self.root:
                self._commit(_line_start(self.text, start), _line_end(self.text, end), "", edit)
            else:
                self._replace_value(chain[-3], parent, path[:-1], {} if parent.kind == "map" else [])
            return
        following = entries[index + 1][0] if index + 1 < len(entries) else end
        if parent.kind == "seq":
            start = self.text.rindex("-", 0, start)
            following = self.text.rindex("-", 0, following)
        if self.text[_line_start(self.text, start) : start].strip():
            self._commit(start, following, "", edit)
        else:
            self._commit(_line_start(self.text, start), _line_end(self.text, end), "", edit)


def _keep_owner(fd: int, info: os.stat_result) -> None:
    with contextlib.suppress(PermissionError):  # only root may give a file away; others keep their own
        os.fchown(fd, info.st_uid, info.st_gid)


def write_atomic(path: Path, new: bytes, expected_old: bytes, roots: Sequence[Path]) -> None:
    """Replace ``path`` with ``new`` atomically, only inside ``roots`` and only if nobody changed it since."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise FrontMatterError(f"{path}: cannot resolve the path ({exc})") from None
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise OutsideRoots(f"{path}: resolves to {real}, outside the configured roots; not written")
    try:
        current = real.read_bytes()
        info = real.stat()
        mode = info.st_mode
    except OSError as exc:
        raise FrontMatterError(f"{path}: cannot read before writing ({exc.strerror})") from None
    if current != expected_old:
        raise WriteConflict(f"{path}: the file changed on disk during the run; not written")
    if new == current:
        return
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(real, os.W_OK):
        raise FrontMatterError(f"{path}: the file is read-only; not written")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(new)
            out.flush()
            os.fchmod(out.fileno(), stat.S_IMODE(mode))
            _keep_owner(out.fileno(), info)
            os.fsync(out.fileno())
        if real.read_bytes() != expected_old:  # narrows the window for an editor saving meanwhile
            raise WriteConflict(f"{path}: the file changed on disk during the run; not written")
        os.replace(tmp, real)
        tmp = None
        folder = os.open(real.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise FrontMatterError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
