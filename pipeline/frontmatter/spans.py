"""Compose front-matter YAML into a node graph that keeps source spans, and build its plain data.

Reads: the decoded front-matter text. Returns: the root :class:`Node` (or None for an empty document), each
node carrying its character span, line, style, anchor and the plain Python data it stands for; a
:class:`YamlProblem` (message and 0-based line) when the text is not acceptable YAML. Also the data helpers
:func:`copy_plain` and :func:`equal_plain` used to compare what an edit gives with what it should give.
Settings: none.

libyaml's C composer does the parsing with safe tags only; aliases are counted, not expanded, before any
data is built, so an alias bomb is refused.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pipeline.models import SetValue

TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary"))
_SEQ_TAGS, _MAP_TAGS = frozenset({TAG + "seq"}), frozenset({TAG + "map"})
_TEXT_TAGS = frozenset(TAG + t for t in ("str", "timestamp", "binary"))  # kept as their source text
_MERGE = TAG + "merge"
_MAX_NODES = 100_000  # data nodes after alias expansion; a billion-laughs document is refused above this
_CTOR = yaml.constructor.SafeConstructor()


class Node:
    """A composed YAML node with its source span; aliases are nodes of kind ``alias`` pointing at a target."""

    __slots__ = (
        "anchor",
        "data",
        "end",
        "flow",
        "items",
        "kind",
        "line",
        "merged",
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
        self.target: Node | None = None
        self.merged: frozenset[str] = frozenset()  # a mapping's keys that come only through ``<<``


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line  # 0-based within the front-matter text


def compose(text: str) -> Node | None:
    loader = yaml.CSafeLoader(text)
    try:
        graph = loader.get_single_node()  # libyaml composes; aliases stay shared references, never copies
        return _Walker(text).node(graph, 0) if graph is not None else None
    except yaml.MarkedYAMLError as exc:
        mark: Any = exc.problem_mark or exc.context_mark
        raise YamlProblem(
            f"invalid YAML: {exc.problem or exc.context}", mark.line if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", None) from None
    except RecursionError:
        raise YamlProblem("the front-matter is nested too deeply", None) from None
    finally:
        loader.dispose()


_ANCHOR = re.compile(r"(?:![^ \t\r\n]*[ \t]+)?&([^ \t\r\n,\[\]{}]+)")
_SKIP_PROPERTIES = re.compile(r"(?:[&!][^ \t\r\n]*[ \t\r\n]+)*")
_TO_ALIAS = re.compile(r"(?:[ \t\r\n:,?\[{-]|#[^\n]*)*\*")


def _after_properties(text: str, index: int) -> int:
    found = _SKIP_PROPERTIES.match(text, index)
    return found.end() if found else index


class _Walker:
    """Turns libyaml's node graph into ``Node`` trees with spans, checking tags, keys and alias expansion.

    libyaml reports no position for an alias, so the second visit of a node is an alias use and its
    ``*name`` is found in the text after the previous sibling.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.done: dict[int, Node] = {}
        self.active: set[int] = set()
        self.expanded = 0  # values added by alias uses; the rest is bounded by the text's length

    def node(self, graph: Any, after: int, *, is_key: bool = False) -> Node:
        key = id(graph)
        seen = self.done.get(key)
        if seen is not None:
            return self._alias(seen, after)
        mark = graph.start_mark
        node = Node("scalar", mark.index, graph.end_mark.index, mark.line)
        node.tag = tag = graph.tag
        if type(graph) is yaml.ScalarNode:
            if tag not in _SCALAR_TAGS and not (is_key and tag == _MERGE):
                _check_tag(tag, _SCALAR_TAGS, mark.line)
            node.style, node.text = graph.style or None, graph.value
            text_like = tag in _TEXT_TAGS or tag == _MERGE
            node.data = graph.value if text_like else self._construct(graph, tag, mark.line)
        else:
            if key in self.active:
                raise YamlProblem("an alias refers to the collection that contains it", mark.line)
            self.active.add(key)
            self._collection(graph, node)
            self.active.discard(key)
        if self.text[node.start : node.start + 1] in ("&", "!"):
            anchor = _ANCHOR.match(self.text, node.start)
            node.anchor = anchor.group(1) if anchor else None
        self.done[key] = node
        return node

    def _collection(self, graph: Any, node: Node) -> None:
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
        merges: list[Node] = []
        for key_graph, value_graph in graph.value:
            key = self.node(key_graph, position, is_key=True)
            if key.kind != "scalar":
                raise YamlProblem("a mapping key must be a plain or quoted text", key.line)
            value = self.node(value_graph, key.end)
            node.items.append((key, value))
            node.size += value.size
            position = value.end
            if key.tag == _MERGE:
                merges.extend(_merged_maps(value))
                continue
            if key.text in data:
                raise YamlProblem(f"duplicate key {key.text!r}", key.line)
            data[key.text] = value.data
        merged: dict[str, Any] = {}
        for source in merges:  # YAML's merge: explicit keys win, then the earlier merged mapping
            for name, item in source.data.items():
                if name not in data and name not in merged:
                    merged[name] = copy_plain(item)
        node.merged = frozenset(merged)
        node.data = {**data, **merged}

    def _alias(self, target: Node, after: int) -> Node:
        self.expanded += target.size
        if self.expanded > _MAX_NODES:
            raise YamlProblem(
                f"aliases expand to more than {_MAX_NODES} values (an alias bomb?)", target.line
            )
        found = _TO_ALIAS.match(self.text, after)
        name = target.anchor or ""
        if not name or found is None or not self.text.startswith(name, found.end()):
            raise YamlProblem(f"cannot locate the alias of anchor &{name}", target.line)
        start = found.end() - 1
        node = Node("alias", start, found.end() + len(name), self.text.count("\n", 0, start))
        target.referenced = True
        node.target, node.size, node.data = target, target.size, copy_plain(target.data)
        return node

    @staticmethod
    def _construct(graph: Any, tag: str, line: int) -> Any:
        try:
            return getattr(_CTOR, "construct_yaml_" + tag[len(TAG) :])(graph)
        except (ValueError, yaml.YAMLError):
            raise YamlProblem(f"{graph.value!r} is not a valid {tag[len(TAG) :]}", line) from None


def _merged_maps(value: Node) -> list[Node]:
    """The mappings a ``<<`` key merges: one mapping (or alias to one), or a list of them."""
    items = value.items if value.kind == "seq" else [value]
    maps = [item.target if item.kind == "alias" and item.target is not None else item for item in items]
    if not maps or any(m.kind != "map" for m in maps):
        raise YamlProblem("a merge key (<<) must hold a mapping or a list of mappings", value.line)
    return maps


def _check_tag(tag: str, allowed: frozenset[str], line: int) -> None:
    if tag in allowed:
        return
    if tag == _MERGE:
        raise YamlProblem("a merge (<<) is allowed only as a mapping key", line)
    shown = "!!" + tag[len(TAG) :] if tag.startswith(TAG) else tag
    kind = "unsafe" if "python/" in tag else "unsupported"
    raise YamlProblem(f"{kind} tag {shown} (only plain YAML values are allowed)", line)


def copy_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: copy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_plain(v) for v in value]
    return value


def equal_plain(a: Any, b: Any) -> bool:
    """Equality that tells ``True`` from ``1`` and ``1.0`` from ``1``, and a NaN equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal_plain(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(equal_plain(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def spans_match(root: Node, text: str, pending: list[tuple[int, int, str, SetValue]]) -> bool:
    """Whether each held edit's new scalar reads back exactly where and as it was spliced in."""
    shift = 0
    for start, end, new, edit in sorted(pending, key=lambda held: held[0]):
        node: Node | None = root
        for part in edit.path:
            if node is None or node.kind not in ("map", "seq"):
                return False
            if node.kind == "map":
                node = next((v for k, v in node.items if k.text == part), None)
            else:
                node = node.items[part] if isinstance(part, int) and 0 <= part < len(node.items) else None
        if node is None or node.kind != "scalar" or node.anchor is not None:
            return False
        if node.start != start + shift or node.end != start + shift + len(new):
            return False
        if text[node.start : node.end] != new:
            return False
        shift += len(new) - (end - start)
    return True


_PROPERTY = re.compile(r"([&!][^ \t\r\n]*)(?:[ \t]+|(?=[\r\n])|$)")


_REST_OF_LINE = re.compile(r"([ \t]*)(#[^\r\n]*)?\r?\n?")


def properties(source: str) -> tuple[str, str]:
    """A node's leading anchor and tag properties as written, and its anchors alone (each ends in a blank)."""
    position, every, anchors = 0, [], []
    while found := _PROPERTY.match(source, position):
        piece = found.group() if found.group() != found.group(1) else found.group(1) + " "
        every.append(piece)
        if piece.startswith("&"):
            anchors.append(piece)
        position = found.end()
    return "".join(every), "".join(anchors)


def content_end(text: str, node: Node) -> int:
    """Where a node's own text ends (a block collection's end mark runs on over comments and blanks)."""
    while node.kind in ("map", "seq") and not node.flow and node.items:
        last = node.items[-1]
        node = last[1] if node.kind == "map" else last
    if node.kind == "scalar" and node.style in ("|", ">"):
        source = text[node.start : node.end]
        if "+" in block_chomp(source, len(properties(source)[0])):
            return node.end  # a kept block's trailing blank lines are part of its value
        return line_end(text, node.start + len(source.rstrip()))
    return node.end


def line_end(text: str, index: int) -> int:
    if index > 0 and text[index - 1] == "\n":
        return index
    found = text.find("\n", index)
    return len(text) if found < 0 else found + 1


def block_chomp(source: str, skip: int) -> str:
    """A block scalar header's indicators (``|``, ``>-``, ``|2+``...) after ``skip`` property characters."""
    return source.partition("\n")[0][skip:].rstrip("\r").split("#")[0].strip()
