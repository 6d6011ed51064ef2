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
    ├── ThroughMerge      the edited value comes through a merge key (``<<: *base``)
    ├── WriteConflict     the file changed on disk since it was read
    └── OutsideRoots      the path (symlinks resolved) lies outside every configured root
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import FrontMatterError, OutsideRoots, ThroughMerge, WriteConflict
from pipeline.frontmatter.edits import apply_plain
from pipeline.frontmatter.replace import replace_if_unchanged
from pipeline.frontmatter.spans import TAG, Node, YamlProblem, compose, copy_plain, equal_plain
from pipeline.frontmatter.splice import Splicer
from pipeline.models import Append, Edit, FieldPath, Remove, SetValue

__all__ = [
    "Append",
    "Document",
    "Edit",
    "FieldPath",
    "FrontMatterError",
    "OutsideRoots",
    "Remove",
    "SetValue",
    "ThroughMerge",
    "WriteConflict",
    "apply",
    "parse",
    "write_atomic",
]

_BOM = b"\xef\xbb\xbf"
# No real article needs more; a larger front-matter is hostile and would cost seconds and GBs to parse.
MAX_FRONT_MATTER_BYTES = 1024 * 1024
_OPENING = re.compile(rb"---[ \t]*(\r?\n)")
_CLOSING = re.compile(rb"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Document:
    """One article as read: its exact bytes, and its front-matter as plain Python data."""

    raw: bytes
    data: dict[str, Any]
    _start: int = field(default=-1, repr=False, compare=False)  # offset of the YAML text (after `---` line)
    _end: int = field(default=-1, repr=False, compare=False)  # offset of the closing line; -1: not parsed
    _root: Node | None = field(default=None, repr=False, compare=False)  # the composed tree, for lines

    def line_of(self, path: FieldPath) -> int | None:
        """The file line (1-based) of the key that holds ``path``; None when the path is not there.

        Read from the tree the parse composed anyway, so it costs a walk down one path and no re-parse.
        """
        node, line = self._root, None
        for part in path:
            while node is not None and node.kind == "alias":
                node = node.target
            if node is None:
                return None
            if isinstance(part, int):
                if node.kind != "seq" or part >= len(node.items):
                    return None
                node = node.items[part]
                line = node.line
                continue
            if node.kind != "map":
                return None
            for key, value in node.items:
                if key.text == part:
                    node, line = value, key.line
                    break
            else:
                return None
        # Node lines count from 0 within the YAML text, which starts on the file's second line.
        return None if line is None else line + 2

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
    size = closing.start() - opening.end()
    if size > MAX_FRONT_MATTER_BYTES:
        raise FrontMatterError(
            f"the front-matter is too large ({size} bytes; the limit is {MAX_FRONT_MATTER_BYTES})"
        )
    try:
        text = raw[opening.end() : closing.start()].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, opening.end() + exc.start) + 1
        raise FrontMatterError(f"line {line}: the front-matter is not UTF-8 text") from None
    try:
        root = compose(text)
    except YamlProblem as exc:
        where = f"line {exc.line + 2}: " if exc.line is not None else ""
        raise FrontMatterError(f"{where}{exc}") from None
    if root is not None and root.kind != "map":
        if root.kind == "scalar" and root.tag == TAG + "null" and not root.text:
            root = None
        else:
            kind = {"seq": "a list", "scalar": "a single value", "alias": "an alias"}[root.kind]
            raise FrontMatterError(f"line {root.line + 2}: the front-matter is {kind}, not a mapping of keys")
    return Document(raw, root.data if root is not None else {}, opening.end(), closing.start(), root)


def apply(doc: Document, edits: Sequence[Edit]) -> bytes:
    """Return the file bytes with ``edits`` spliced in; ``doc.raw`` itself when nothing changes."""
    if doc._end < 0:  # built by hand (in a test, say) rather than by parse()
        doc = parse(doc.raw)
    text = doc.text
    # The tree parse() composed is the text's own (nothing edits it): composing it again would cost one
    # more parse of every changed article.
    root = doc._root
    if root is None:
        try:
            root = compose(text)
        except YamlProblem as exc:  # only for a Document not made by parse()
            raise FrontMatterError(str(exc)) from None
    original = root.data if root is not None and root.kind == "map" else {}
    expected = copy_plain(original)
    for edit in edits:
        apply_plain(expected, edit)
    if equal_plain(expected, original):
        return doc.raw
    splicer = Splicer(text, root, doc.raw[doc._start - 2 : doc._start] == b"\r\n")
    for edit in edits:
        splicer.run(edit)
    if not equal_plain(splicer.data, expected):
        raise FrontMatterError("the edited front-matter does not hold the expected values")
    edited = splicer.text.encode("utf-8")
    if len(edited) > MAX_FRONT_MATTER_BYTES:
        # Written, it would be refused by every later read: the article would drop out of the corpus.
        raise FrontMatterError(
            f"the edits would make the front-matter {len(edited)} bytes, above the read limit of"
            f" {MAX_FRONT_MATTER_BYTES}; not written"
        )
    return doc.raw[: doc._start] + edited + doc.raw[doc._end :]


def write_atomic(path: Path, new: bytes, expected_old: bytes, roots: Sequence[Path]) -> None:
    """Replace ``path`` with ``new`` atomically, only inside ``roots`` and only if nobody changed it since.

    The comparison with ``expected_old`` and the replace are made one step where the system allows it
    (``frontmatter.replace`` says which guarantee each system gives); a conflict leaves the user's bytes.
    """
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise FrontMatterError(f"{path}: cannot resolve the path ({exc})") from None
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise OutsideRoots(f"{path}: resolves to {real}, outside the configured roots; not written")
    replace_if_unchanged(real, new, expected_old, path)
