"""The edit records and what each edit must do to plain data, plus the front-matter exception tree.

Reads: an :data:`Edit` (``SetValue``, ``Append``, ``Remove``) and the front-matter as plain Python data.
Returns: the data changed in place by :func:`apply_plain` — the result any splice must reproduce — or a
:class:`FrontMatterError` naming the field path. Settings: none. The public names are re-exported by
:mod:`pipeline.frontmatter.document`, which is where callers import them from.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import FrontMatterError
from pipeline.models import Append, Edit, FieldPath, Remove, SetValue, format_field_path


def checked(value: Any, path: FieldPath) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [checked(v, path) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: checked(v, path) for k, v in value.items()}
    raise FrontMatterError(
        f"{format_field_path(path) or '(root)'}: cannot store a {type(value).__name__} in front-matter"
    )


def child(current: Any, part: str | int) -> tuple[bool, Any]:
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
        found, current = child(current, part)
        if not found:
            raise FrontMatterError(f"no field {format_field_path(path[: i + 1]) or '(root)'}")
    if not isinstance(current, dict | list):
        raise FrontMatterError(f"{format_field_path(path[:-1]) or '(root)'} is not a mapping or a list")
    return current


def apply_plain(data: dict[str, Any], edit: Edit) -> None:
    """Apply ``edit`` to plain data in place: the result the splice must reproduce."""
    parent, last = _container(data, edit.path), edit.path[-1]
    if isinstance(parent, dict):
        if not isinstance(last, str) or (isinstance(edit, Append) and last not in parent):
            raise FrontMatterError(f"no field {format_field_path(edit.path) or '(root)'}")
        if isinstance(edit, Remove):
            parent.pop(last, None)
            return
    elif isinstance(last, bool) or not isinstance(last, int) or not 0 <= last < len(parent):
        raise FrontMatterError(f"no field {format_field_path(edit.path) or '(root)'}")
    elif isinstance(edit, Remove):
        del parent[last]
        return
    if isinstance(edit, SetValue):
        parent[last] = checked(edit.value, edit.path)
    elif isinstance(parent[last], list):
        parent[last].append(checked(edit.value, edit.path))
    else:
        raise FrontMatterError(f"{format_field_path(edit.path) or '(root)'} is not a list")
