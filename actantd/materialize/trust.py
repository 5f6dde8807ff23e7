"""Entries in the agent CLIs' own global trust files, for templates with ``"trust": "global"``.

Written only as the CLI itself would when a user accepts its trust dialog: one entry for one workspace,
added atomically, the rest of the file byte-identical, removed on destroy.

- Claude Code, ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when set): ``projects["{ws}"] =
  {"hasTrustDialogAccepted": true, "enabledMcpjsonServers": [...]}``; interactive ``claude`` otherwise
  lists the project's servers as "pending approval" and ignores its ``allow`` rules.
- Codex, ``~/.codex/config.toml`` (``$CODEX_HOME/config.toml``): ``[projects."{ws}"] trust_level =
  "trusted"``; Codex otherwise ignores the project's ``.codex/config.toml``.
- Gemini CLI, ``~/.gemini/trustedFolders.json``: ``{"{ws}": "TRUST_FOLDER"}`` (per-launch
  ``GEMINI_CLI_TRUST_WORKSPACE=true`` already covers Actant's own launches).

JSON is never re-serialized (that would reorder or reformat the user's file): the new member is spliced
into the text and the result verified by parsing it and comparing with the expected document; on any
mismatch nothing is written. An entry that was already there before Actant is left alone and not claimed,
so destroy never removes a user's own trust decision.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actantd.errors import WorkspaceInit
from actantd.fsutil import atomic_write

CLAUDE, CODEX, GEMINI = "claude-code", "codex", "gemini"


class TrustFileError(WorkspaceInit):
    """A CLI's trust file could not be changed safely (unparsable, or the splice would not verify)."""


def claude_file(env: Mapping[str, str], home: Path) -> Path:
    base = env.get("CLAUDE_CONFIG_DIR")
    return Path(base) / ".claude.json" if base else home / ".claude.json"


def codex_file(env: Mapping[str, str], home: Path) -> Path:
    base = env.get("CODEX_HOME")
    return Path(base) / "config.toml" if base else home / ".codex" / "config.toml"


def gemini_file(env: Mapping[str, str], home: Path) -> Path:
    return home / ".gemini" / "trustedFolders.json"


# --- a JSON scanner that keeps positions --------------------------------------------------------------


@dataclass(slots=True)
class _Member:
    key: str
    start: int
    """Just after the ``{`` or ``,`` before the member (its leading whitespace belongs to it)."""
    key_at: int
    value_at: int
    end: int
    """Just after the value."""
    value: Any


@dataclass(slots=True)
class _Object:
    open_at: int
    close_at: int
    members: list[_Member]


_decoder = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _object_at(text: str, i: int) -> _Object:
    """The object starting at ``text[i] == "{"``, with the positions of its direct members."""
    if text[i] != "{":
        raise ValueError(f"expected an object at offset {i}")
    members: list[_Member] = []
    j = _skip_ws(text, i + 1)
    if text[j] == "}":
        return _Object(i, j, members)
    start = i + 1
    while True:
        key_at = _skip_ws(text, start)
        key, after_key = _decoder.raw_decode(text, key_at)
        if not isinstance(key, str):
            raise ValueError("object key is not a string")
        colon = _skip_ws(text, after_key)
        if text[colon] != ":":
            raise ValueError("expected ':'")
        value_at = _skip_ws(text, colon + 1)
        value, end = _decoder.raw_decode(text, value_at)
        members.append(_Member(key, start, key_at, value_at, end, value))
        k = _skip_ws(text, end)
        if text[k] == "}":
            return _Object(i, k, members)
        if text[k] != ",":
            raise ValueError("expected ',' or '}'")
        start = k + 1


def _member_indent(text: str, obj: _Object, depth: int) -> str:
    if obj.members:
        first = obj.members[0]
        line_start = text.rfind("\n", 0, first.key_at) + 1
        lead = text[line_start : first.key_at]
        if line_start > obj.open_at and not lead.strip():
            return lead
    return "  " * depth


def _render_member(key: str, value: Any, indent: str) -> str:
    body = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)
    return f"{json.dumps(key, ensure_ascii=False)}: {body}"


def _insert(text: str, obj: _Object, key: str, value: Any, depth: int) -> str:
    """``obj`` with ``key: value`` as its first member; everything else unchanged."""
    indent = _member_indent(text, obj, depth)
    member = _render_member(key, value, indent)
    if obj.members:
        return text[: obj.open_at + 1] + f"\n{indent}{member}," + text[obj.open_at + 1 :]
    closing = "  " * (depth - 1)
    return text[: obj.open_at + 1] + f"\n{indent}{member}\n{closing}" + text[obj.close_at :]


def _delete(text: str, obj: _Object, key: str) -> str:
    """``obj`` without ``key``: exactly the inverse of :func:`_insert` for a member it inserted."""
    index = next(i for i, m in enumerate(obj.members) if m.key == key)
    member = obj.members[index]
    if len(obj.members) == 1:
        return text[: obj.open_at + 1] + text[obj.close_at :]
    if index < len(obj.members) - 1:
        return text[: member.start] + text[obj.members[index + 1].start :]
    comma = obj.members[index - 1].end
    return text[:comma] + text[member.end :]


def _load_json(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", None
    if not text.strip():
        return text, None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrustFileError(f"{path}: not valid JSON ({exc.msg}); no trust entry added", file=str(path)) from exc
    if not isinstance(doc, dict):
        raise TrustFileError(f"{path}: not a JSON object; no trust entry added", file=str(path))
    return text, doc


def _commit(path: Path, old: str, new: str, expected: Any, parse: Any) -> None:
    if parse(new) != expected:
        raise TrustFileError(f"{path}: could not splice the trust entry verifiably; file left as it was")
    if new == old:
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = os.stat(path).st_mode & 0o7777 if path.exists() else 0o600
    atomic_write(path, new.encode(), mode=mode)


def _json_set(path: Path, parents: list[str], key: str, value: Any) -> bool:
    """Add ``key: value`` to the object at ``parents`` (created when missing); False when ``key`` exists."""
    text, doc = _load_json(path)
    if doc is None:
        doc, text = {}, "{}\n"
    expected = json.loads(json.dumps(doc))
    target = expected
    for p in parents:
        nxt = target.get(p)
        if nxt is None:
            nxt = target[p] = {}
        if not isinstance(nxt, dict):
            raise TrustFileError(f"{path}: {p!r} is not an object; no trust entry added", file=str(path))
        target = nxt
    if key in target:
        return False
    target[key] = value
    # Walk the text down the same path, creating the missing objects as one spliced member.
    obj = _object_at(text, _skip_ws(text, 0))
    depth = 1
    pending_value: Any = value
    pending_key = key
    for i, p in enumerate(parents):
        member = next((m for m in obj.members if m.key == p), None)
        if member is None:
            pending_key, pending_value = p, _nest(parents[i + 1 :], key, value)
            break
        obj = _object_at(text, member.value_at)
        depth += 1
    new = _insert(text, obj, pending_key, pending_value, depth)
    _commit(path, text, new, expected, json.loads)
    return True


def _nest(rest: list[str], key: str, value: Any) -> Any:
    out: Any = {key: value}
    for q in reversed(rest):
        out = {q: out}
    return out


def _json_delete(path: Path, parents: list[str], key: str) -> bool:
    text, doc = _load_json(path)
    if doc is None:
        return False
    expected = json.loads(text)
    target = expected
    for p in parents:
        target = target.get(p) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return False
    if key not in target:
        return False
    del target[key]
    obj = _object_at(text, _skip_ws(text, 0))
    for p in parents:
        member = next(m for m in obj.members if m.key == p)
        obj = _object_at(text, member.value_at)
    _commit(path, text, _delete(text, obj, key), expected, json.loads)
    return True


# --- TOML (Codex) ---------------------------------------------------------------------------------------


def _toml_block(workspace: str) -> str:
    return f'\n[projects.{json.dumps(workspace)}]\ntrust_level = "trusted"\n'


def _toml_load(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", {}
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrustFileError(f"{path}: not valid TOML ({exc}); no trust entry added", file=str(path)) from exc


def _codex_add(path: Path, workspace: str) -> bool:
    text, doc = _toml_load(path)
    projects = doc.get("projects", {})
    if not isinstance(projects, dict):
        raise TrustFileError(f"{path}: 'projects' is not a table; no trust entry added", file=str(path))
    if workspace in projects:
        return False
    expected = json.loads(json.dumps(doc))
    expected.setdefault("projects", {})[workspace] = {"trust_level": "trusted"}
    sep = "" if not text or text.endswith("\n") else "\n"
    new = text + sep + _toml_block(workspace)
    try:
        _commit(path, text, new, expected, tomllib.loads)
    except tomllib.TOMLDecodeError as exc:  # e.g. projects defined as an inline table
        raise TrustFileError(f"{path}: cannot append a [projects] table here ({exc})", file=str(path)) from exc
    return True


def _codex_remove(path: Path, workspace: str) -> bool:
    text, doc = _toml_load(path)
    block = _toml_block(workspace)
    at = text.rfind(block)
    if at < 0:
        return False  # not in the shape Actant wrote (edited since): leave the user's file alone
    expected = json.loads(json.dumps(doc))
    del expected["projects"][workspace]
    if not expected["projects"]:
        del expected["projects"]
    _commit(path, text, text[:at] + text[at + len(block) :], expected, tomllib.loads)
    return True


# --- public ---------------------------------------------------------------------------------------------


def supported(materializer: str) -> bool:
    return materializer in (CLAUDE, CODEX, GEMINI)


def trust_file(materializer: str, env: Mapping[str, str], home: Path) -> Path:
    return {CLAUDE: claude_file, CODEX: codex_file, GEMINI: gemini_file}[materializer](env, home)


def add(materializer: str, workspace: str, *, home: Path, env: Mapping[str, str],
        mcp_servers: list[str] | None = None) -> Path | None:  # fmt: skip
    """Add the workspace's entry; returns the file when Actant added it (so destroy may remove it), None
    when there was nothing to do (unsupported backend, or the user's own entry was already there)."""
    if not supported(materializer):
        return None
    path = trust_file(materializer, env, home)
    if materializer == CLAUDE:
        entry = {"hasTrustDialogAccepted": True, "enabledMcpjsonServers": list(mcp_servers or [])}
        added = _json_set(path, ["projects"], workspace, entry)
    elif materializer == CODEX:
        added = _codex_add(path, workspace)
    else:
        added = _json_set(path, [], workspace, "TRUST_FOLDER")
    return path if added else None


def remove(materializer: str, workspace: str, *, home: Path, env: Mapping[str, str]) -> bool:
    """Remove the entry Actant added; True when it was there."""
    if not supported(materializer):
        return False
    path = trust_file(materializer, env, home)
    if materializer == CLAUDE:
        return _json_delete(path, ["projects"], workspace)
    if materializer == CODEX:
        return _codex_remove(path, workspace)
    return _json_delete(path, [], workspace)


def update_claude_servers(workspace: str, servers: list[str], *, home: Path, env: Mapping[str, str]) -> bool:
    """Keep ``enabledMcpjsonServers`` of Actant's own ``~/.claude.json`` entry equal to the template's servers
    (hot reload changed them); only that member is re-spliced. True when the file changed."""
    path = claude_file(env, home)
    _text, doc = _load_json(path)
    entry = (doc or {}).get("projects", {}).get(workspace)
    if not isinstance(entry, dict) or entry.get("enabledMcpjsonServers") == servers:
        return False
    if "enabledMcpjsonServers" in entry:
        _json_delete(path, ["projects", workspace], "enabledMcpjsonServers")
    return _json_set(path, ["projects", workspace], "enabledMcpjsonServers", list(servers))
