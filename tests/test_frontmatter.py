"""Faithful front-matter: byte-identical round trips, and edits that change only their own lines."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.frontmatter.splice as splice
from pipeline.errors import FrontMatterError, ThroughMerge
from pipeline.frontmatter.document import Document, apply, parse
from pipeline.models import Append, Remove, SetValue

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_132ac3e31a9df9d5.txt"
EDGE = Path(__file__).resolve().parent / "edge_cases"
SAMPLES = sorted(ROOT.glob("seeds/*")) + sorted(EDGE.iterdir())

LINK_HEALTH = {"dead": [{"field": "webUrl", "url": "https://x", "status": 404, "since": "2026-11-20"}]}


def changed(old: bytes, new: bytes) -> list[str]:
    """The removed (-) and added (+) lines between two files, newline characters kept."""
    old_lines = old.decode("utf-8").splitlines(keepends=True)
    new_lines = new.decode("utf-8").splitlines(keepends=True)
    return [
        line
        for line in difflib.unified_diff(old_lines, new_lines, n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def edited(path: Path, *edits: Any) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    return raw, apply(parse(raw), list(edits))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_round_trips_byte_identical(sample: Path) -> None:
    """Parsing a file and applying no edit (or a no-op edit) gives back its very bytes."""
    raw = sample.read_bytes()
    doc = parse(raw)

    assert apply(doc, []) is raw
    if doc.data:
        key, value = next(iter(doc.data.items()))
        assert apply(doc, [SetValue((key,), value)]) is raw


TITLED = [p for p in SAMPLES if "title" in parse(p.read_bytes()).data and p.name != "anchors.md"]


@pytest.mark.parametrize("sample", TITLED, ids=lambda p: p.name)
def test_changing_title_changes_only_its_line(sample: Path) -> None:
    """Setting `title` anywhere rewrites that one line and nothing else (CRLF, BOM, body untouched)."""
    raw, new = edited(sample, SetValue(("title",), "A new title: with colon"))
    lines = [line for line in raw.decode("utf-8-sig").splitlines(keepends=True) if line.startswith("title:")]
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"

    assert changed(raw, new) == [
        "-" + lines[0].lstrip("\ufeff"),
        f'+title: "A new title: with colon"{newline}',
    ]
    assert new.startswith(b"\xef\xbb\xbf") == raw.startswith(b"\xef\xbb\xbf")
    assert parse(new).body == parse(raw).body


def test_values_are_plain_python_and_scalars_keep_their_text() -> None:
    """Timestamps stay text, ints are ints, and YAML 1.1 words and numbers keep their typed values."""
    seed = parse(SEED.read_bytes()).data
    styles = parse((EDGE / "styles.md").read_bytes()).data

    assert seed["publishedDateTime"] == "2023-08-09T16:38:00Z"
    assert seed["related"][1]["images"][0]["width"] == 1280
    assert (seed["heat"], seed["published"], seed["quality"]) == (-1, False, 19)
    assert styles["date_only"] == "2024-01-31"
    assert styles["flags"] == [True, True, "off", False]
    assert (styles["mode"], styles["hex"], styles["ratio"]) == (0o755, 31, 1500.0)
    assert styles["nothing"] is None and styles["empty"] is None
    assert styles["literal"] == "First line\n  indented line\nlast line\n"


def test_set_excerpt_changes_only_the_excerpt_line() -> None:
    """A new excerpt replaces the old one inside its double quotes, on the same single line."""
    raw, new = edited(SEED, SetValue(("excerpt",), 'He said "hi"\tthen left. ' + "x" * 300))

    diff = changed(raw, new)
    assert diff[0].startswith('-excerpt: "The Cyberspace')
    assert diff[1:] == ['+excerpt: "He said \\"hi\\"\\tthen left. ' + "x" * 300 + '"\n']


def test_set_nested_image_width() -> None:
    """`related[1].images[0].width` is rewritten in place, indentation kept."""
    raw, new = edited(SEED, SetValue(("related", 1, "images", 0, "width"), 1300))

    assert changed(raw, new) == ["-        width: 1280\n", "+        width: 1300\n"]


def test_add_then_remove_nested_block_restores_exact_bytes() -> None:
    """A new top-level key with a nested block follows the file's style; removing it restores the file."""
    raw, new = edited(SEED, SetValue(("linkHealth",), LINK_HEALTH))

    assert changed(raw, new) == [
        "+linkHealth:\n",
        "+  dead:\n",
        "+    - field: webUrl\n",
        '+      url: "https://x"\n',
        "+      status: 404\n",
        '+      since: "2026-11-20"\n',
    ]
    assert parse(new).data["linkHealth"] == LINK_HEALTH
    assert apply(parse(new), [Remove(("linkHealth",))]) == raw


def test_append_image_follows_sibling_style() -> None:
    """An image appended to `related[0].images` copies the sibling item's dash, indent and quoting."""
    image = {"url": "https://img.example/new.jpg", "width": 640, "height": 480, "isCached": False}
    raw, new = edited(SEED, Append(("related", 0, "images"), image))

    assert changed(raw, new) == [
        '+      - url: "https://img.example/new.jpg"\n',
        "+        width: 640\n",
        "+        height: 480\n",
        "+        isCached: false\n",
    ]
    assert parse(new).data["related"][0]["images"][1] == image


def test_edit_inside_crlf_bom_file_keeps_crlf_and_bom() -> None:
    """Edits in a CRLF file with a BOM write CRLF lines and keep the BOM and the body."""
    raw, new = edited(
        EDGE / "crlf_bom.md",
        SetValue(("related", 0, "images", 0, "width"), 200),
        SetValue(("linkHealth",), {"ok": True}),
        Append(("related", 0, "images"), {"url": "https://img.example/2.png"}),
    )

    assert new.startswith(b"\xef\xbb\xbf---\r\n")
    assert new.count(b"\n") == new.count(b"\r\n")
    assert changed(raw, new) == [
        "-        width: 100\r\n",
        "+        width: 200\r\n",
        '+      - url: "https://img.example/2.png"\r\n',
        "+linkHealth:\r\n",
        "+  ok: true\r\n",
    ]
    assert new.endswith(b"---\r\nBody line\r\n")


@pytest.mark.parametrize(
    ("path", "value", "old_line", "new_line"),
    [
        (("subtitle",), "It's new", "subtitle: 'Single ''quoted'' subtitle'", "subtitle: 'It''s new'"),
        (("plain",), "still plain", "plain: A plain value, with a comma", "plain: still plain"),
        (("plain",), "now: quoted", "plain: A plain value, with a comma", 'plain: "now: quoted"'),
        (("plain",), "123", "plain: A plain value, with a comma", 'plain: "123"'),
        (
            ("published",),
            "2024-01-01T00:00:00Z",
            "published: 2023-08-09T16:38:00Z",
            "published: 2024-01-01T00:00:00Z",
        ),
        (("heat",), 7, "heat: -1", "heat: 7"),
        (("heat",), "seven", "heat: -1", "heat: seven"),
        (("ratio",), 1e20, "ratio: 1.5e+3", "ratio: 1.0e+20"),
        (("nothing",), "set", "nothing: ~", "nothing: set"),
        (("empty",), 5, "empty:", "empty: 5"),
        (("url",), "http://example.org/b", "url: http://example.org/a?b=c  # trailing comment", None),
        (("folded",), "one line", "  folded text on one line", "  one line"),
        (
            ("title",),
            "line\nbreak",
            'title: "Double \\"quoted\\" title with \\u00e9 escape"',
            'title: "line\\nbreak"',
        ),
    ],
)
def test_scalar_styles_are_kept_when_safe(path: Any, value: Any, old_line: str, new_line: str | None) -> None:
    """A replaced scalar keeps its quoting style when it can, else is double-quoted with escapes."""
    raw, new = edited(EDGE / "styles.md", SetValue(path, value))

    diff = changed(raw, new)
    assert diff[0] == f"-{old_line}\n"
    if new_line is not None:
        assert diff == [f"-{old_line}\n", f"+{new_line}\n"]
    assert parse(new).data[path[0]] == value


def test_trailing_comment_is_kept_on_plain_replacement() -> None:
    """Replacing a plain value keeps the comment that follows it on the line."""
    raw, new = edited(EDGE / "styles.md", SetValue(("url",), "http://example.org/b"))

    assert changed(raw, new)[1] == "+url: http://example.org/b  # trailing comment\n"


def test_block_literal_stays_a_block() -> None:
    """A literal block scalar gets its new lines inside the same `|` header and indentation."""
    raw, new = edited(EDGE / "styles.md", SetValue(("literal",), "One\n  two\n"))

    assert changed(raw, new) == [
        "-  First line\n",
        "-    indented line\n",
        "-  last line\n",
        "+  One\n",
        "+    two\n",
    ]


def test_block_scalar_that_cannot_hold_the_value_becomes_double_quoted() -> None:
    """A value the folded header cannot express (several lines) is written double-quoted instead."""
    raw, new = edited(EDGE / "styles.md", SetValue(("folded",), "a\nb"))

    assert changed(raw, new) == ["-folded: >-\n", "-  folded text on one line\n", '+folded: "a\\nb"\n']


def test_bool_keeps_its_word_family() -> None:
    """A `yes`/`No` boolean flipped in a flow list is written as `no`/`Yes`."""
    raw, new = edited(EDGE / "styles.md", SetValue(("flags", 0), False), SetValue(("flags", 3), True))

    assert changed(raw, new) == ["-flags: [yes, on, 'off', No]\n", "+flags: [no, on, 'off', Yes]\n"]


def test_flow_list_append_and_remove() -> None:
    """Items are added to and removed from a flow list inside its brackets."""
    raw, new = edited(EDGE / "styles.md", Append(("flags",), "new item"), Remove(("flags", 1)))

    assert changed(raw, new)[1] == "+flags: [yes, 'off', No, new item]\n"


def test_flow_mapping_gets_new_key() -> None:
    """A key added to a flow mapping goes inside its braces."""
    raw, new = edited(EDGE / "styles.md", SetValue(("unknownKey", "added"), [1, "a b"]))

    assert changed(raw, new)[1] == '+unknownKey: {nested: [1, 2], other: "x", added: [1, a b]}\n'


def test_remove_list_item_and_key() -> None:
    """Removing a block list item or a key deletes exactly its lines."""
    raw, new = edited(SEED, Remove(("topics", 0)), Remove(("related", 3, "images", 0, "isCached")))

    assert changed(raw, new) == ["-  - Computer Vision\n", "-        isCached: true\n"]


def test_remove_first_key_of_list_item_keeps_the_dash() -> None:
    """Removing the key that sits on a list item's dash line moves the next key up to the dash."""
    raw, new = edited(SEED, Remove(("related", 0, "images", 0, "url")))

    assert changed(raw, new)[-1] == "+      - width: 1200\n"
    assert parse(new).data["related"][0]["images"][0] == {"width": 1200, "height": 799, "isCached": True}


def test_removing_the_only_key_leaves_an_empty_mapping() -> None:
    """A mapping whose last key is removed becomes `{}`, not null."""
    raw, new = edited(SEED, Remove(("provider", "name")), Remove(("provider", "domain")))

    assert changed(raw, new) == [
        "-provider:\n",
        "-  name: acm.org\n",
        "-  domain: acm.org\n",
        "+provider: {}\n",
    ]


def test_whole_subtree_set_is_diffed_into_minimal_edits() -> None:
    """Setting a whole mapping changes only the values that differ and adds the new keys."""
    raw, new = edited(SEED, SetValue(("provider",), {"name": "ACM", "domain": "acm.org", "topics": ["a"]}))

    assert changed(raw, new) == ["-  name: acm.org\n", "+  name: ACM\n", "+  topics:\n", "+    - a\n"]


def test_list_shrinks_and_grows_in_place() -> None:
    """Setting a shorter or longer list edits, removes or appends items only."""
    raw, new = edited(SEED, SetValue(("topics",), ["AI"]))
    assert changed(raw, new) == ["-  - Computer Vision\n"]

    raw, new = edited(SEED, SetValue(("topics",), ["Computer Vision", "AI", "Privacy"]))
    assert changed(raw, new) == ["+  - Privacy\n"]


def test_scalar_replaced_by_a_block_follows_indentation() -> None:
    """A scalar replaced by a list uses the file's list indentation (here: not indented)."""
    raw, new = edited(EDGE / "indentation.md", SetValue(("title",), ["a", "b"]))

    assert changed(raw, new) == ["-title: Odd indentation\n", "+title:\n", "+- a\n", "+- b\n"]


def test_new_nested_mapping_uses_the_files_indent_step() -> None:
    """New nested keys are indented by the file's own step (four spaces here)."""
    raw, new = edited(EDGE / "indentation.md", SetValue(("linkHealth",), {"dead": {"webUrl": 404}}))

    assert changed(raw, new) == ["+linkHealth:\n", "+    dead:\n", "+        webUrl: 404\n"]
    assert new.endswith(b"# blank lines and a comment at the end\n---\nbody\n")


def test_append_to_four_space_list_of_mappings() -> None:
    """An item appended to a `-   key:` list keeps the three spaces after the dash."""
    raw, new = edited(EDGE / "indentation.md", Append(("related", 0, "images"), {"url": "u", "width": 1}))

    assert changed(raw, new) == ['+        -   url: "u"\n', "+            width: 1\n"]


def test_empty_front_matter_gets_its_first_key() -> None:
    """Adding a key to an empty front-matter writes it between the two `---` lines."""
    raw, new = edited(EDGE / "empty_frontmatter.md", SetValue(("title",), "T"))

    assert new == b"---\ntitle: T\n---\nOnly a body.\n"
    assert apply(parse(new), [Remove(("title",))]) == raw


def test_alias_occurrence_can_be_replaced_but_shared_anchor_cannot_be_edited() -> None:
    """Editing a value shared through an anchor is refused; replacing an alias use is allowed."""
    doc = parse((EDGE / "anchors.md").read_bytes())

    with pytest.raises(FrontMatterError, match=r"defaults\.name: the value is shared through anchor &site"):
        apply(doc, [SetValue(("defaults", "name"), "X")])
    with pytest.raises(FrontMatterError, match="cannot edit through the alias at provider"):
        apply(doc, [SetValue(("provider", "name"), "X")])
    new = apply(doc, [SetValue(("provider",), {"name": "Own"}), SetValue(("single",), "changed")])
    assert changed(doc.raw, new) == [
        "-provider: *site\n",
        "+provider:\n",
        "+  name: Own\n",
        "-single: &lonely value\n",
        "+single: &lonely changed\n",
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (SetValue(("nope", "x"), 1), "no field nope"),
        (SetValue(("related", 9, "title"), "x"), r"no field related\[9\]"),
        (SetValue(("topics", 5), "x"), r"no field topics\[5\]"),
        (Append(("title",), "x"), "title is not a list"),
        (SetValue(("title", "sub"), "x"), "title is not a mapping or a list"),
        (SetValue(("title",), object()), "cannot store a object"),
        (SetValue((), 1), "non-empty field path"),
    ],
)
def test_impossible_edits_raise_clear_errors(edit: Any, message: str) -> None:
    """An edit whose parents are missing or whose value cannot be stored names the field."""
    with pytest.raises(FrontMatterError, match=message):
        apply(parse(SEED.read_bytes()), [edit])


def test_removing_a_missing_key_is_a_no_op() -> None:
    """Remove of a key that is not there changes nothing and returns the original bytes."""
    doc = parse(SEED.read_bytes())

    assert apply(doc, [Remove(("linkHealth",))]) is doc.raw


def test_true_is_not_the_same_as_one() -> None:
    """SetValue(True) on an int 1 is a real change (bool is never confused with int)."""
    doc = parse(b"---\ncount: 1\n---\n")

    assert apply(doc, [SetValue(("count",), True)]) == b"---\ncount: true\n---\n"


def test_document_data_mutation_does_not_affect_apply() -> None:
    """Callers mutating `doc.data` cannot make apply() write something it did not verify."""
    doc: Document = parse(SEED.read_bytes())
    doc.data["title"] = "mutated"

    assert apply(doc, [SetValue(("heat",), -1)]) is doc.raw


# --- property: generated documents in many styles -------------------------------------------------------

WORD = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._/-]{0,12}[A-Za-z0-9]", fullmatch=True)
PLAIN = WORD.filter(lambda s: isinstance(yaml.safe_load(s), str) and "  " not in s)
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
QUOTABLE = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cn", "Cs", "Zl", "Zp"), exclude_characters="\ufeff"
    ),
    max_size=30,
)
KEYS = st.from_regex(r"[a-z][a-zA-Z0-9]{0,8}", fullmatch=True).filter(
    lambda k: isinstance(yaml.safe_load(k), str)
)


@st.composite
def scalars(draw: st.DrawFn) -> tuple[str, Any]:
    """(source text, value) for one scalar in a random style."""
    kind = draw(st.sampled_from(["plain", "double", "single", "int", "bool", "null", "stamp"]))
    if kind == "plain":
        text = draw(PLAIN)
        return text, text
    if kind == "double":
        text = draw(QUOTABLE)
        ascii_only = draw(st.booleans()) and all(
            ord(c) < 0x10000 for c in text
        )  # YAML has no surrogate pairs
        return json.dumps(text, ensure_ascii=ascii_only), text
    if kind == "single":
        text = draw(QUOTABLE)
        return "'" + text.replace("'", "''") + "'", text
    if kind == "int":
        number = draw(st.integers(-(10**12), 10**12))
        return str(number), number
    if kind == "bool":
        word = draw(st.sampled_from(["true", "False", "yes", "NO", "on", "off"]))
        return word, word.lower() in ("true", "yes", "on")
    if kind == "null":
        return draw(st.sampled_from(["null", "~", ""])), None
    return "2023-08-09T16:38:00Z", "2023-08-09T16:38:00Z"


@st.composite
def documents(draw: st.DrawFn) -> tuple[bytes, dict[str, Any], list[tuple[Any, int]]]:
    """A generated article: its bytes, expected data, and (path, line number) of every scalar leaf."""
    indent = " " * draw(st.sampled_from([2, 4]))
    lines: list[str] = []
    data: dict[str, Any] = {}
    leaves: list[tuple[Any, int]] = []
    for key in draw(st.lists(KEYS, min_size=1, max_size=6, unique=True)):
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# a comment", "   # indented comment"])))
        shape = draw(st.sampled_from(["scalar", "map", "list", "flow"]))
        if shape == "scalar":
            text, value = draw(scalars())
            leaves.append(((key,), len(lines)))
            lines.append(f"{key}: {text}".rstrip(" ") + draw(st.sampled_from(["", "  # note"])))
        elif shape == "map":
            value = {}
            lines.append(f"{key}:")
            for sub in draw(st.lists(KEYS, min_size=1, max_size=3, unique=True)):
                text, value[sub] = draw(scalars())
                leaves.append(((key, sub), len(lines)))
                lines.append(f"{indent}{sub}: {text}".rstrip(" "))
        elif shape == "list":
            value = []
            lines.append(f"{key}:")
            dash = draw(st.sampled_from(["", indent]))
            for i in range(draw(st.integers(1, 3))):
                text, item = draw(scalars().filter(lambda s: s[0] != ""))
                value.append(item)
                leaves.append(((key, i), len(lines)))
                lines.append(f"{dash}- {text}")
        else:
            items = draw(st.lists(PLAIN.filter(lambda s: not set(s) & set(",[]{}:")), min_size=1, max_size=3))
            value = list(items)
            leaves.extend(((key, i), len(lines)) for i in range(len(items)))
            lines.append(f"{key}: [{', '.join(items)}]")
        data[key] = value
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    body = draw(st.sampled_from(["", "Body\n", "Body\n---\nmore", "no newline"]))
    text = bom + "---" + newline + newline.join(lines) + newline + "---" + newline + body
    return text.encode("utf-8"), data, [(path, n + 1) for path, n in leaves]


@settings(max_examples=150, deadline=None)
@given(documents(), st.data())
def test_generated_documents_round_trip_and_edit_one_value(doc_case: Any, data: st.DataObject) -> None:
    """Any generated document round-trips byte-identically, and a random scalar edit changes only its line."""
    raw, expected, leaves = doc_case
    doc = parse(raw)
    assert doc.data == expected
    assert apply(doc, []) is raw

    path, line = data.draw(st.sampled_from(leaves))
    value = data.draw(st.one_of(ANY_TEXT, st.integers(), st.booleans(), st.none(), PLAIN))
    new = apply(doc, [SetValue(path, value)])

    want = parse(raw).data
    target = want
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert parse(new).data == want
    old_lines, new_lines = raw.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    assert [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b] in ([], [line])


def test_literal_block_in_crlf_file_keeps_crlf() -> None:
    """A literal block replaced in a CRLF file is written with CRLF line ends."""
    raw, new = edited(EDGE / "crlf_bom.md", SetValue(("literal",), "new one\nnew two\n"))

    assert changed(raw, new) == ["-  line one\r\n", "-  line two\r\n", "+  new one\r\n", "+  new two\r\n"]


def test_document_built_by_hand_is_parsed_before_editing() -> None:
    """apply() on a Document made without parse() works from its raw bytes."""
    raw = b"---\na: 1\n---\nbody\n"

    assert apply(Document(raw, {"a": 1}), [SetValue(("a",), 2)]) == b"---\na: 2\n---\nbody\n"


IMAGE = [{"url": "https://x/a.png", "width": 1, "height": 2}]
IMAGE_BLOCK = "  - url: https://x/a.png\n    width: 1\n    height: 2\n"


@pytest.mark.parametrize(
    ("old_line", "new_line"),
    [
        ("images: # none yet", "images: # none yet"),
        ("images: ~ # none", "images: # none"),
        ("images: [] # none yet", "images: # none yet"),
        ("images: &i []", "images: &i"),
        ("images: &i {}  # later", "images: &i  # later"),
    ],
)
def test_empty_value_replaced_by_a_block_keeps_comment_and_anchor(old_line: str, new_line: str) -> None:
    """An empty, null or flow-empty value turned into a block keeps its line's anchor and comment."""
    raw = f"---\n{old_line}\ntitle: t\n---\nbody\n".encode()

    new = apply(parse(raw), [SetValue(("images",), IMAGE)])

    assert new == f"---\n{new_line}\n{IMAGE_BLOCK}title: t\n---\nbody\n".encode()


def test_nested_empty_list_replaced_by_a_block_keeps_its_comment() -> None:
    """Inside a list item, `images: [] # c` becomes `images: # c` with the new block below it."""
    raw = b"---\nrelated:\n  - title: a\n    images: [] # none yet\n  - title: b\n---\n"

    new = apply(parse(raw), [SetValue(("related", 0, "images"), IMAGE)])

    block = "".join("    " + line + "\n" for line in IMAGE_BLOCK.splitlines())
    assert new == f"---\nrelated:\n  - title: a\n    images: # none yet\n{block}  - title: b\n---\n".encode()


def test_empty_scalar_with_comment_gets_its_value_before_the_comment() -> None:
    """`excerpt: # todo` set to a text becomes `excerpt: "text" # todo`."""
    raw = b"---\nexcerpt: # todo\ntitle: t\n---\n"

    assert (
        apply(parse(raw), [SetValue(("excerpt",), "a: b")]) == b'---\nexcerpt: "a: b" # todo\ntitle: t\n---\n'
    )


@pytest.mark.parametrize(
    ("old_line", "value", "new_line"),
    [
        ("t: abc", "a\u2028b", 't: "a\\Lb"'),
        ("t: 'abc'", "a\u2029b", 't: "a\\Pb"'),
        ("t: abc", "a\x85b", 't: "a\\Nb"'),
        ("t: |\n  abc", "a\u2028b\n", 't: "a\\Lb\\n"'),
    ],
)
def test_yaml_line_break_characters_are_escaped(old_line: str, value: str, new_line: str) -> None:
    """U+2028, U+2029 and U+0085 in a new text are written double-quoted as \\L, \\P and \\N."""
    raw = f"---\n{old_line}\nu: 1\n---\n".encode()

    new = apply(parse(raw), [SetValue(("t",), value)])

    assert new == f"---\n{new_line}\nu: 1\n---\n".encode()
    assert parse(new).data["t"] == value


@pytest.mark.parametrize(
    ("old_line", "value", "new_line"),
    [
        ("q: !!int 5", 6, "q: !!int 6"),
        ("q: !!float 1", 2.5, "q: !!float 2.5"),
        ("t: !!str 123", "456", "t: !!str 456"),
        ("t: !!str 123", "a: b", 't: !!str "a: b"'),
        ("q: !!int 5", "abc", "q: abc"),
        ("t: &a !!str 1", 2, "t: &a 2"),
        ("t: !!str &a 1", "2", "t: !!str &a 2"),
    ],
)
def test_explicit_tag_is_kept_when_it_fits_the_new_value(old_line: str, value: Any, new_line: str) -> None:
    """A scalar's explicit tag stays when the new value still fits it, and is dropped when it does not."""
    raw = f"---\n{old_line}\nu: 1\n---\n".encode()

    new = apply(parse(raw), [SetValue((old_line[0],), value)])

    assert new == f"---\n{new_line}\nu: 1\n---\n".encode()


@pytest.mark.parametrize(
    ("raw", "path", "want"),
    [
        ("---\nx: 1\ne: |+\n  text\n\n---\n", ("y",), "---\nx: 1\ne: |+\n  text\n\ny: 1\n---\n"),
        ("---\nr:\n  e: |+\n    text\n\n---\n", ("r", "y"), "---\nr:\n  e: |+\n    text\n\n  y: 1\n---\n"),
        (
            "---\nr:\n  e: |+\n    text\n\n\nz: 2\n---\n",
            ("r", "y"),
            "---\nr:\n  e: |+\n    text\n\n\n  y: 1\nz: 2\n---\n",
        ),
    ],
)
def test_key_added_after_a_keep_block_goes_after_its_blank_lines(raw: str, path: Any, want: str) -> None:
    """A `|+` block's trailing blank lines are part of its value, so a new key goes after them."""
    assert apply(parse(raw.encode()), [SetValue(path, 1)]) == want.encode()


def test_several_scalar_edits_in_one_call_give_exact_bytes() -> None:
    """Scalar edits spread over the file, applied in one call in any order, each rewrite only their value."""
    raw = (
        b'---\ntitle: "Old title"\nexcerpt: "Old excerpt."  # kept\ntags: [a, b]\n'
        b"related:\n  - title: 'It''s old'\n    images:\n      - url: https://x/a.png\n"
        b"        width: 1200\n        height: 799\n---\nbody\n"
    )
    edits = [
        SetValue(("related", 0, "images", 0, "width"), 1300),
        SetValue(("excerpt",), "A new excerpt: fresh"),
        SetValue(("tags", 1), "c"),
        SetValue(("related", 0, "title"), "It's new"),
        SetValue(("title",), "New title"),
    ]

    new = apply(parse(raw), edits)

    assert new == (
        b'---\ntitle: "New title"\nexcerpt: "A new excerpt: fresh"  # kept\ntags: [a, c]\n'
        b"related:\n  - title: 'It''s new'\n    images:\n      - url: https://x/a.png\n"
        b"        width: 1300\n        height: 799\n---\nbody\n"
    )


def test_scalar_edits_on_adjacent_lines_in_a_crlf_file_give_exact_bytes() -> None:
    """Width and height on neighbouring lines, edited together, keep CRLF and change only their digits."""
    raw = b"---\r\nimages:\r\n  - width: 10\r\n    height: 20\r\n    alt: x\r\n---\r\nbody\r\n"

    new = apply(parse(raw), [SetValue(("images", 0, "height"), 7), SetValue(("images", 0, "width"), 123456)])

    assert new == b"---\r\nimages:\r\n  - width: 123456\r\n    height: 7\r\n    alt: x\r\n---\r\nbody\r\n"


def test_same_field_set_twice_in_one_call_keeps_the_last_value() -> None:
    """Setting a field, then setting it back, in one call leaves the file as it was."""
    raw = b"---\na: 1\nb: 2\n---\n"

    assert apply(parse(raw), [SetValue(("a",), 5), SetValue(("b",), 3), SetValue(("a",), 1)]) == (
        b"---\na: 1\nb: 3\n---\n"
    )


def test_scalar_edits_mixed_with_a_new_key_and_a_removal_give_exact_bytes() -> None:
    """Scalar edits before and after a key insertion and a removal all land, in order, in the bytes."""
    raw = b"---\na: 1\nb: x\nc: [1, 2]\nd: true\n---\n"
    edits: list[SetValue | Remove] = [
        SetValue(("a",), 2),
        SetValue(("b",), "y"),
        SetValue(("e",), {"k": 1}),
        SetValue(("c", 0), 9),
        Remove(("d",)),
        SetValue(("a",), 3),
    ]

    assert apply(parse(raw), edits) == b"---\na: 3\nb: y\nc: [9, 2]\ne:\n  k: 1\n---\n"


@settings(max_examples=60, deadline=None)
@given(documents(), st.data())
def test_generated_documents_take_several_scalar_edits_at_once(doc_case: Any, data: st.DataObject) -> None:
    """Several scalar edits in one call give the data asked for and change only the edited leaves' lines."""
    raw, _, leaves = doc_case
    picked = data.draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=5, unique_by=lambda x: x[0]))
    values = st.one_of(ANY_TEXT, st.integers(), st.booleans(), st.none(), PLAIN)
    edits = [SetValue(path, data.draw(values)) for path, _ in picked]

    new = apply(parse(raw), edits)

    want = parse(raw).data
    for edit in edits:
        target: Any = want
        for part in edit.path[:-1]:
            target = target[part]
        target[edit.path[-1]] = edit.value
    assert parse(new).data == want
    old_lines, new_lines = raw.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    differing = {i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b}
    assert differing <= {line for _, line in picked}


def test_batched_scalar_edits_that_fail_their_check_are_replayed_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the one re-parse of held scalar edits is not trusted, replaying them gives the same bytes."""
    raw = b"---\nwidth: 10\nheight: 20\ntitle: 'a'\n---\n"
    edits = [SetValue(("width",), 11), SetValue(("height",), 21), SetValue(("title",), "b")]
    want = b"---\nwidth: 11\nheight: 21\ntitle: 'b'\n---\n"
    assert apply(parse(raw), edits) == want
    checks: list[int] = []

    def distrust(*_: Any) -> bool:
        checks.append(1)
        return False

    monkeypatch.setattr(splice, "spans_match", distrust)

    assert apply(parse(raw), edits) == want
    assert checks == [1]


MERGED = b"""---
base: &base
  webUrl: https://a.example/x
  excerpt: From the base
other: &other {excerpt: From other, site: S}
item:
  <<: [*base, *other]
  title: Own title  # a comment
  site: Own site
---
body
"""


def test_merge_keys_give_yaml_merge_data() -> None:
    """``<<`` merges mappings: explicit keys win, then the earlier merged mapping; ``<<`` itself is no key."""
    assert parse(MERGED).data["item"] == {
        "webUrl": "https://a.example/x",
        "excerpt": "From the base",
        "title": "Own title",
        "site": "Own site",
    }


def test_an_article_with_a_merge_key_gets_its_own_fields_edited() -> None:
    """Fields written in the mapping itself, or new ones, are edited faithfully beside ``<<``."""
    doc = parse(MERGED)

    new = apply(doc, [SetValue(("item", "title"), "New title"), SetValue(("item", "image"), "i.png")])

    assert changed(MERGED, new) == [
        "-  title: Own title  # a comment\n",
        "+  title: New title  # a comment\n",
        "+  image: i.png\n",
    ]
    assert parse(new).data["item"]["excerpt"] == "From the base"


def test_an_edit_through_a_merge_is_refused() -> None:
    """A value that comes through ``<<`` belongs to the base: editing it is a ThroughMerge error."""
    with pytest.raises(ThroughMerge, match=r"^item\.excerpt: the value comes through a merge key"):
        apply(parse(MERGED), [SetValue(("item", "excerpt"), "Changed")])


def test_an_edit_never_makes_the_front_matter_larger_than_the_read_limit() -> None:
    """A front-matter just under 1 MiB that an edit would push over the limit is refused, not written."""
    from pipeline.frontmatter.document import MAX_FRONT_MATTER_BYTES

    filler = "x" * (MAX_FRONT_MATTER_BYTES - len("title: t\nnotes: \n") - 1)
    raw = f"---\ntitle: t\nnotes: {filler}\n---\nbody\n".encode()
    doc = parse(raw)

    with pytest.raises(FrontMatterError, match=r"above the read limit of 1048576; not written$"):
        apply(doc, [SetValue(("excerpt",), "A description of some length " * 8)])
    assert apply(doc, [SetValue(("title",), "u")]) != raw  # an edit that fits is still made


def test_a_changed_article_costs_one_verifying_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Applying scalar edits to a parsed document composes the YAML once (the check), never the original."""
    import pipeline.frontmatter.document as document

    doc = parse(
        b'---\ntitle: a\nexcerpt: ""\nimages:\n  - url: "http://x/i.png"\n    height: 359\n---\nBody\n'
    )
    calls: list[str] = []
    real = splice.compose

    def counting(text: str) -> object:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(splice, "compose", counting)
    monkeypatch.setattr(document, "compose", counting)
    new = apply(doc, [SetValue(("excerpt",), "Filled."), SetValue(("images", 0, "height"), 360)])
    assert b"excerpt: Filled." in new or b'excerpt: "Filled."' in new
    assert len(calls) == 1
