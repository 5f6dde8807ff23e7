"""Config problems in one shape, ``file: $.json.path: reason``, whatever produced them.

msgspec reports ``Expected `str`, got `int` - at `$.skills[1]``; users should see the same
``templates/x.json: $.skills[1]: expected str, got int`` line from the CLI, the events stream and the
journal, so translation happens here once. Where the schema knows the answer (allowed enum values, the
field a typo was probably meant to be), the message says so.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One error or warning about one config file.

    ``file`` is relative to the configs folder when the file is inside it (absolute otherwise), ``path`` is a
    JSON path into the document (``$`` for the whole file).
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "path": self.path, "message": self.message, "text": str(self)}


_AT_RE = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_TOKEN_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[([^\]]*)\]")


def _walk(t: mi.Type, path: str) -> mi.Type | None:
    """The schema type at a msgspec JSON path, or None when the path leaves what we can follow."""
    pos = 1  # skip "$"
    while pos < len(path):
        match = _TOKEN_RE.match(path, pos)
        if match is None:
            return None
        pos = match.end()
        t = _strip(t)
        if match.group(1) is not None:
            if not isinstance(t, mi.StructType):
                return None
            by_name = {f.encode_name: f.type for f in t.fields}
            if match.group(1) not in by_name:
                return None
            t = by_name[match.group(1)]
        elif isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
            t = t.item_type
        elif isinstance(t, mi.DictType):
            t = t.value_type
        else:
            return None
    return _strip(t)


def _strip(t: mi.Type) -> mi.Type:
    """Look through Optional/Union: a union with one Struct (e.g. a preset or rules) is that Struct."""
    if isinstance(t, mi.UnionType):
        structs = [x for x in t.types if isinstance(x, mi.StructType)]
        literals = [x for x in t.types if isinstance(x, mi.LiteralType)]
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
        if len(structs) == 1:
            return structs[0]
        if len(literals) == 1:
            return literals[0]
    return t


def _literal_values(t: mi.Type | None) -> list[Any] | None:
    if isinstance(t, mi.LiteralType):
        return list(t.values)
    if isinstance(t, mi.UnionType):
        lits = [v for x in t.types if isinstance(x, mi.LiteralType) for v in x.values]
        return lits or None
    return None


def _field_names(t: mi.Type | None) -> list[str]:
    return [f.encode_name for f in t.fields] if isinstance(t, mi.StructType) else []


def _literal_at(root: mi.Type, path: str) -> list[Any] | None:
    # Resolve the parent first so a Union[Literal, Struct] field (permissions) still yields its literals.
    if path == "$":
        return None
    parent_path, _, _ = path.rpartition(".")
    parent = _walk(root, parent_path or "$")
    last = path.rsplit(".", 1)[-1]
    if isinstance(parent, mi.StructType):
        for f in parent.fields:
            if f.encode_name == last:
                return _literal_values(f.type)
    return _literal_values(_walk(root, path))


def from_validation_error(file: str, err: msgspec.ValidationError, schema: type[Any]) -> ConfigIssue:
    """Turn a msgspec error into the one-line shape, enriched from the schema where possible."""
    match = _AT_RE.match(str(err))
    assert match is not None  # the pattern matches any string
    msg, path = match.group("msg"), match.group("path") or "$"
    root = mi.type_info(schema)

    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        field = unknown.group(1)
        text = f"unknown field '{field}'"
        close = difflib.get_close_matches(field, _field_names(_walk(root, path)), n=1)
        if close:
            text += f" (did you mean '{close[0]}'?)"
        return ConfigIssue(file, f"{path}.{field}", text)

    missing = re.fullmatch(r"Object missing required field `(.+)`", msg)
    if missing:
        return ConfigIssue(file, path, f"missing required field '{missing.group(1)}'")

    if msg.startswith("Invalid enum value"):
        values = _literal_at(root, path)
        value = msg.removeprefix("Invalid enum value").strip()
        if values:
            return ConfigIssue(file, path, f"invalid value {value}; expected one of {', '.join(map(str, values))}")
        return ConfigIssue(file, path, f"invalid value {value}")

    on_field = re.fullmatch(r"\[(\w+)\] (.*)", msg, re.DOTALL)
    if on_field:  # raised with schema.field_error
        return ConfigIssue(file, f"{path}.{on_field.group(1)}", on_field.group(2))

    text = msg.replace("`", "")
    return ConfigIssue(file, path, text[:1].lower() + text[1:])


def from_decode_error(file: str, data: bytes, err: Exception) -> ConfigIssue:
    """A JSON syntax error with line and column (msgspec only gives a byte offset)."""
    import json

    if not data.strip():
        return ConfigIssue(file, "$", "file is empty (a partial write?)")
    try:
        json.loads(data)
    except json.JSONDecodeError as exc:
        return ConfigIssue(file, "$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except UnicodeDecodeError as exc:
        return ConfigIssue(file, "$", f"not UTF-8 text: {exc.reason}")
    return ConfigIssue(file, "$", f"invalid JSON: {err}")
