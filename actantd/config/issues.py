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


# --- every error of a document, not only the first -------------------------------------------------------

MAX_ISSUES_PER_FILE = 20
_MISSING_RE = re.compile(r"Object missing required field `(.+)`")
_UNKNOWN_RE = re.compile(r"Object contains unknown field `(.+)`")


def all_validation_errors(file: str, doc: Any, err: msgspec.ValidationError, schema: type[Any]) -> list[ConfigIssue]:
    """Every schema error of ``doc``, in document order as msgspec meets them, not just the first.

    msgspec stops at the first error; so each one is reported, then *repaired* in a scratch copy (an unknown
    field dropped, a wrong value replaced by a stand-in of the expected type, a missing field filled in) and
    the copy converted again, until it converts or nothing more can be repaired. The stand-ins never reach a
    config: they exist only so the next error can be found.
    """
    import copy

    root = mi.type_info(schema)
    scratch = copy.deepcopy(doc)
    issues: list[ConfigIssue] = []
    seen: set[str] = set()
    current: msgspec.ValidationError | None = err
    while current is not None and len(issues) < MAX_ISSUES_PER_FILE:
        issue = from_validation_error(file, current, schema)
        if str(issue) in seen:
            break  # a repair that did not take: stop rather than loop
        seen.add(str(issue))
        issues.append(issue)
        if not _repair(scratch, root, str(current)):
            break
        try:
            msgspec.convert(scratch, schema)
        except msgspec.ValidationError as exc:
            current = exc
        else:
            current = None
    return issues


def _repair(doc: Any, root: mi.Type, error: str) -> bool:
    match = _AT_RE.match(error)
    assert match is not None
    msg, path = match.group("msg"), match.group("path") or "$"
    container, key = _locate(doc, path)
    unknown = _UNKNOWN_RE.fullmatch(msg)
    missing = _MISSING_RE.fullmatch(msg)
    target = _get(doc, path)
    if unknown:
        if isinstance(target, dict):
            target.pop(unknown.group(1), None)
            return True
        return False
    if missing:
        if not isinstance(target, dict):
            return False
        field_type = next((f.type for f in _fields(_walk(root, path)) if f.encode_name == missing.group(1)), None)
        if field_type is None:
            return False
        target[missing.group(1)] = _stand_in(field_type)
        return True
    if container is None:
        return False
    expected = _walk(root, path)
    stand_in = _stand_in(expected) if expected is not None else None
    if stand_in is not None:
        container[key] = stand_in
        return True
    if isinstance(container, dict) and isinstance(key, str):
        parent = _walk(root, path.rsplit(".", 1)[0] if "." in path else "$")
        if next((not f.required for f in _fields(parent) if f.encode_name == key), False):
            del container[key]  # the field's default stands in
            return True
    return False


def _fields(t: mi.Type | None) -> tuple[mi.Field, ...]:
    return t.fields if isinstance(t, mi.StructType) else ()


def _tokens(path: str) -> list[str | int]:
    out: list[str | int] = []
    for match in _TOKEN_RE.finditer(path, 1):
        if match.group(1) is not None:
            out.append(match.group(1))
        elif match.group(2) is not None:
            out.append(int(match.group(2)))
        else:
            out.append(match.group(3).strip("'\""))
    return out


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _tokens(path):
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _locate(doc: Any, path: str) -> tuple[Any, str | int | None]:
    tokens = _tokens(path)
    if not tokens:
        return None, None
    parent = doc
    for token in tokens[:-1]:
        try:
            parent = parent[token]
        except (KeyError, IndexError, TypeError):
            return None, None
    last = tokens[-1]
    if isinstance(parent, dict) and isinstance(last, str) and last in parent:
        return parent, last
    if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        return parent, last
    return None, None


def _stand_in(t: mi.Type) -> Any:
    """Some value msgspec accepts for ``t``: the first literal, an empty container, a struct's required fields."""
    t = _strip(t)
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.UnionType):
        return _stand_in(next(x for x in t.types if not isinstance(x, mi.NoneType)))
    if isinstance(t, mi.StructType):
        return {f.encode_name: _stand_in(f.type) for f in t.fields if f.required}
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return []
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        return max(1, t.ge or 0, (t.gt or 0) + 1)
    if isinstance(t, mi.FloatType):
        return float(max(1, t.ge or 0, (t.gt or 0) + 1))
    if isinstance(t, mi.StrType):
        return "x" * max(1, t.min_length or 0)
    return None
