"""Splice edits into front-matter text at the source spans.

Reads: the front-matter text, its composed root node (see :mod:`pipeline.frontmatter.spans`), whether the file
uses CRLF, and edits one at a time. Returns: :class:`Splicer` whose ``text`` and ``data`` hold the edited
front-matter after each :meth:`Splicer.run`; every splice is re-parsed and checked against
:func:`.edits.apply_plain` (a run of plain scalar replacements is spliced and checked together, by
one re-parse), and any mismatch is a ``FrontMatterError``. The new text itself is built by
:mod:`.emit`, in the file's own indentation, list indentation and per-key quoting. Settings: none.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import FrontMatterError, ThroughMerge
from pipeline.frontmatter.edits import apply_plain, checked, child
from pipeline.frontmatter.emit import (
    Style,
    after_key,
    block_scalar,
    column_at,
    flow_text,
    item_text,
    key_text,
    line_start,
    scalar_text,
    walk,
)
from pipeline.frontmatter.spans import (
    _REST_OF_LINE,
    TAG,
    Node,
    YamlProblem,
    compose,
    content_end,
    copy_plain,
    equal_plain,
    line_end,
    properties,
    spans_match,
)
from pipeline.models import Append, Edit, FieldPath, Remove, SetValue, format_field_path


class Splicer:
    """Applies edits one splice at a time, re-parsing and verifying after each.

    Runs of edits that each replace an existing plain or quoted scalar (no anchor, tag or alias in the
    document, no overlapping spans) are held back and spliced together, last span first, then verified by
    one re-parse: each splice is the one the one-at-a-time path would make, since it reads only its own
    scalar's text. If that check fails the held edits are replayed one at a time, which gives the equal_plain
    result or the same error as before. Reading ``text`` or ``data`` applies any held edits.
    """

    def __init__(self, text: str, root: Node | None, crlf: bool) -> None:
        self._text, self.root = text, root
        self._data: dict[str, Any] = copy_plain(root.data) if root is not None else {}
        self.newline = "\r\n" if crlf else "\n"
        self.style = Style(text, root)
        self._pending: list[tuple[int, int, str, SetValue]] = []  # held splices on the current text
        self._batchable = root is not None and not any(
            n.kind == "alias" or n.anchor is not None for n in walk(root)
        )

    @property
    def text(self) -> str:
        self._flush()
        return self._text

    @property
    def data(self) -> dict[str, Any]:
        self._flush()
        return self._data

    def run(self, edit: Edit) -> None:
        if isinstance(edit, SetValue):
            value = checked(edit.value, edit.path)
            if self._hold(edit.path, value):
                return
            self._flush()
            if self._hold(edit.path, value):
                return
            self._set(edit.path, value)
        elif isinstance(edit, Append):
            self._flush()
            self._append(edit.path, checked(edit.value, edit.path))
        else:
            self._flush()
            self._remove(edit.path)

    def _hold(self, path: FieldPath, value: Any) -> bool:
        """Hold back the splice of ``value`` over an existing plain scalar, when that is surely safe."""
        if not self._batchable or isinstance(value, dict | list) or not path:
            return False
        if any(held[3].path == path for held in self._pending):
            return False  # a second edit of one field waits for the first to be applied
        found, current = self._get(path)
        if not found:
            return False
        if equal_plain(current, value):
            return True  # the one-at-a-time path makes no change either
        try:
            chain = self._locate(path)
            flow = self._in_flow(path)
        except FrontMatterError:
            return False
        node = chain[-1]
        if node.kind != "scalar" or node.style in ("|", ">") or node.start >= node.end:
            return False
        start, end = node.start, node.end
        if properties(self._text[start:end])[0] or "\n" in self._text[start:end]:
            return False
        if any(not (end < s or e < start) for s, e, _, _ in self._pending):
            return False
        new = scalar_text(value, flow=flow, style=node.style, old=node)
        if "\n" in new or "\r" in new:
            return False
        self._pending.append((start, end, new, SetValue(path, value)))
        return True

    def _flush(self) -> None:
        """Splice the held edits last first, re-parse once, and check the data and the new scalars' spans."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        text = self._text
        for start, end, new, _ in sorted(pending, key=lambda held: held[0], reverse=True):
            text = text[:start] + new + text[end:]
        expected = copy_plain(self._data)
        for *_, edit in pending:
            apply_plain(expected, edit)
        try:
            root = compose(text)
        except YamlProblem:
            root = None
        if (
            root is not None
            and root.kind == "map"
            and equal_plain(root.data, expected)
            and spans_match(root, text, pending)
        ):
            self._text, self.root, self._data = text, root, root.data
            return
        for *_, edit in pending:  # replay one at a time: the same text, or the same error, as before
            self._set(edit.path, edit.value)

    def _commit(self, start: int, end: int, new: str, edit: Edit) -> None:
        text = self._text[:start] + new.replace("\n", self.newline) + self._text[end:]
        expected = copy_plain(self._data)
        apply_plain(expected, edit)
        try:
            root = compose(text)
        except YamlProblem as exc:
            raise FrontMatterError(
                f"{format_field_path(edit.path) or '(root)'}: the edit would not be valid YAML ({exc})"
            ) from None
        data = root.data if root is not None and root.kind == "map" else {}
        if not equal_plain(data, expected):
            raise FrontMatterError(
                f"{format_field_path(edit.path) or '(root)'}: the edit cannot be spliced in faithfully"
            )
        self._text, self.root, self._data = text, root, data

    def _locate(self, path: FieldPath) -> list[Node]:
        """The nodes from the root down to ``path``; refuses to edit through aliases or shared anchors."""
        if self.root is None:
            raise FrontMatterError(f"no field {format_field_path(path) or '(root)'}")
        chain = [self.root]
        for i, part in enumerate(path):
            node = chain[-1]
            if node.kind == "alias":
                raise FrontMatterError(
                    f"{format_field_path(path) or '(root)'}: cannot edit through the alias at"
                    f" {format_field_path(path[:i]) or '(root)'}"
                )
            if node.kind == "map" and isinstance(part, str):
                found = [v for k, v in node.items if k.text == part]
            elif node.kind == "seq" and isinstance(part, int) and 0 <= part < len(node.items):
                found = [node.items[part]]
            else:
                found = []
            if not found and node.kind == "map" and part in node.merged:
                raise ThroughMerge(
                    f"{format_field_path(path) or '(root)'}: the value comes through a merge key (<<);"
                    " not edited"
                )
            if not found:
                raise FrontMatterError(f"no field {format_field_path(path[: i + 1]) or '(root)'}")
            chain.append(found[0])
        for node in chain:
            if node.referenced:
                raise FrontMatterError(
                    f"{format_field_path(path) or '(root)'}: the value is shared through anchor"
                    f" &{node.anchor}"
                )
        return chain

    def _get(self, path: FieldPath) -> tuple[bool, Any]:
        current: Any = self._data
        for part in path:
            found, current = child(current, part)
            if not found:
                return False, None
        return True, current

    def _set(self, path: FieldPath, value: Any) -> None:
        found, current = self._get(path)
        if found and equal_plain(current, value):
            return
        if not found:
            holder = self._locate(path[:-1])[-1] if self.root is not None or len(path) > 1 else None
            if isinstance(path[-1], str) and (holder is None or holder.kind == "map"):
                self._add_key(holder, path, value)
                return
            raise FrontMatterError(f"no field {format_field_path(path) or '(root)'}")
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

    def _replace_scalar(self, node: Node, path: FieldPath, value: Any) -> None:
        """Rewrite a scalar, keeping its anchor, and its tag too when the new value still fits it."""
        every, anchors = properties(self._text[node.start : node.end])
        if every == anchors:
            self._scalar_with(node, path, value, every, every)
            return
        try:
            self._scalar_with(node, path, value, every, every)
        except FrontMatterError:
            self._scalar_with(node, path, value, every, anchors)

    def _scalar_with(self, node: Node, path: FieldPath, value: Any, written: str, prefix: str) -> None:
        """Rewrite a scalar whose properties ``written`` in the file are to become ``prefix``."""
        if node.style in ("|", ">"):
            block = block_scalar(self._text, node, written, prefix, value) if isinstance(value, str) else None
            end = content_end(self._text, node)
            new = block if block is not None else prefix + scalar_text(value, flow=False) + "\n"
            self._commit(node.start, end, new, SetValue(path, value))
            return
        tagged = prefix != properties(prefix)[1] and node.tag == TAG + "str"
        new = scalar_text(value, flow=self._in_flow(path), style=node.style, old=node, tagged=tagged)
        if node.start == node.end and self._text[node.start - 1 : node.start] not in (" ", "\t"):
            new = " " + new
        self._commit(node.start, node.end, prefix + new, SetValue(path, value))

    def _in_flow(self, path: FieldPath) -> bool:
        return any(n.flow for n in self._locate(path[:-1])) if path[:-1] or self.root else False

    def _replace_value(self, parent: Node, node: Node, path: FieldPath, value: Any) -> None:
        edit = SetValue(path, value)
        if parent.flow or self._in_flow(path):
            self._commit(node.start, content_end(self._text, node), flow_text(value, self.style), edit)
            return
        end = line_end(self._text, content_end(self._text, node))
        if parent.kind == "map":
            key = next(k for k, v in parent.items if v is node)
            column = column_at(self._text, key.start)
            every, anchors, comment = self._key_line(key, node)
            after = after_key(value, column, {}, self.style)
            for prefix in dict.fromkeys((every, anchors)):
                head = ":" + (" " + prefix.rstrip() if prefix else "")
                new = head + comment + after if after.startswith("\n") else head + after + comment
                try:
                    self._commit(key.end, end, new + "\n", edit)
                    return
                except FrontMatterError:
                    if prefix == anchors:
                        raise
        else:
            self._commit(
                node.start,
                end,
                item_text(value, column_at(self._text, node.start), {}, self.style) + "\n",
                edit,
            )

    def _key_line(self, key: Node, node: Node) -> tuple[str, str, str]:
        """The properties (all, anchors only) and comment that ``key:`` has on its line before ``node``."""
        eol = line_end(self._text, key.end)
        stop = content_end(self._text, node)
        every, anchors = "", ""
        if node.start >= eol:
            rest = self._text[self._text.index(":", key.end) + 1 : eol]
        else:
            every, anchors = properties(self._text[node.start : stop])
            if "\n" not in self._text[node.start : stop]:
                rest = self._text[stop:eol]
            else:
                rest = self._text[node.start + len(every) : eol]
        found = _REST_OF_LINE.fullmatch(rest)
        if found is None or found.group(2) is None:
            return every, anchors, ""
        return every, anchors, (found.group(1) or " ") + found.group(2)

    def _add_key(self, parent: Node | None, path: FieldPath, value: Any) -> None:
        key, edit = str(path[-1]), SetValue(path, value)
        if parent is None:
            self._commit(
                len(self._text),
                len(self._text),
                key_text(key) + ":" + after_key(value, 0, {}, self.style) + "\n",
                edit,
            )
        elif parent.flow or self._in_flow(path):
            new = f"{key_text(key)}: {flow_text(value, self.style)}"
            self._flow_insert(parent, new, edit)
        else:
            column = column_at(self._text, parent.items[0][0].start)
            at = line_end(self._text, content_end(self._text, parent))
            new = " " * column + key_text(key) + ":" + after_key(value, column, {}, self.style) + "\n"
            self._commit(at, at, new, edit)

    def _flow_insert(self, parent: Node, new: str, edit: Edit) -> None:
        if parent.items:
            at = content_end(self._text, parent.items[-1][1] if parent.kind == "map" else parent.items[-1])
            self._commit(at, at, ", " + new, edit)
        else:
            self._commit(parent.end - 1, parent.end - 1, new, edit)

    def _append(self, path: FieldPath, value: Any) -> None:
        node, edit = self._locate(path)[-1], Append(path, value)
        if node.kind == "alias":
            raise FrontMatterError(f"{format_field_path(path) or '(root)'}: cannot append through an alias")
        if node.kind != "seq":
            raise FrontMatterError(f"{format_field_path(path) or '(root)'} is not a list")
        if node.flow:
            self._flow_insert(node, flow_text(value, self.style), edit)
            return
        last = node.items[-1]
        hints: dict[str, str | None] = {}
        if last.kind == "map":
            hints = {k.text: v.style for k, v in last.items if v.kind == "scalar" and v.tag == TAG + "str"}
        elif last.kind == "scalar" and last.tag == TAG + "str":
            hints = {"": last.style}
        dash = column_at(self._text, node.start)
        column = column_at(self._text, node.items[0].start)
        at = line_end(self._text, content_end(self._text, node))
        new = (
            " " * dash + "-" + " " * (column - dash - 1) + item_text(value, column, hints, self.style) + "\n"
        )
        self._commit(at, at, new, edit)

    def _remove(self, path: FieldPath) -> None:
        found, _ = self._get(path)
        if not found:
            if len(path) == 1 and isinstance(path[0], str):
                return
            self._locate(path[:-1])
            if isinstance(path[-1], int):
                raise FrontMatterError(f"no field {format_field_path(path) or '(root)'}")
            return
        chain = self._locate(path)
        parent, node, edit = chain[-2], chain[-1], Remove(path)
        entries = (
            [(k.start, v) for k, v in parent.items]
            if parent.kind == "map"
            else [(n.start, n) for n in parent.items]
        )
        index = next(i for i, (_, v) in enumerate(entries) if v is node)
        start, end = entries[index][0], content_end(self._text, node)
        if parent.flow:
            if index + 1 < len(entries):
                end = entries[index + 1][0]
            elif index > 0:
                start = content_end(self._text, entries[index - 1][1])
            self._commit(start, end, "", edit)
            return
        if len(entries) == 1:
            if parent is self.root:
                self._commit(line_start(self._text, start), line_end(self._text, end), "", edit)
            else:
                self._replace_value(chain[-3], parent, path[:-1], {} if parent.kind == "map" else [])
            return
        following = entries[index + 1][0] if index + 1 < len(entries) else end
        if parent.kind == "seq":
            start = self._text.rindex("-", 0, start)
            following = self._text.rindex("-", 0, following)
        if self._text[line_start(self._text, start) : start].strip():
            self._commit(start, following, "", edit)
        else:
            self._commit(line_start(self._text, start), line_end(self._text, end), "", edit)
