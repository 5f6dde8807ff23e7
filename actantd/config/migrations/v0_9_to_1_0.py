"""0.9 → 1.0: camelCase keys, PascalCase enum values, references by plain name, backends as configs.

The 0.9 format (pre-release) differed as follows; each rule below undoes one difference:

- keys were snake_case (``launch_mode``, ``mcp_servers``, ``workspace_policy``, ``health_check``...);
- enum values were lower/kebab case (``"service"``, ``"one-shot"``, ``"read-only"``);
- ``restart`` was a string (``"on-failure"``) with ``max_restarts``/``restart_window`` beside it;
- ``stop_timeout`` and the health check's ``interval``/``timeout`` were bare seconds without a unit suffix;
- references were objects (``"skills": [{"name": "code-review"}]``) as often as strings;
- a template chose a built-in agent with ``backend_type`` (``"claude"``, ``"cursor"``...), before backends
  became config files, and ``command`` could be one shell string;
- skills, prompts and workflows kept their Markdown in ``body``;
- an MCP server used ``cmd`` for its command and ``transport`` for its type.

User data (``env``, ``headers`` keys, Markdown) is never renamed.
"""

from __future__ import annotations

import shlex
from typing import Any, Final

FROM: Final = "0.9"
TO: Final = "1.0"

_BACKEND_TYPES: Final = {
    "claude": "claude-code",
    "claude-code": "claude-code",
    "cursor": "cursor-agent",
    "cursor-agent": "cursor-agent",
    "codex": "codex",
    "gemini": "gemini",
    "custom": "custom",
}
_ENUMS: Final = {
    "service": "Service",
    "one-shot": "OneShot",
    "oneshot": "OneShot",
    "persistent": "Persistent",
    "ephemeral": "Ephemeral",
    "permissive": "Permissive",
    "standard": "Standard",
    "restricted": "Restricted",
    "read-only": "ReadOnly",
    "readonly": "ReadOnly",
    "always": "Always",
    "on-failure": "OnFailure",
    "onfailure": "OnFailure",
    "never": "Never",
    "no": "Never",
}
_RENAMES: Final = {
    "stop_timeout": "stopTimeoutSeconds",
    "interval": "intervalSeconds",
    "timeout": "timeoutSeconds",
    "restart_window": "windowSeconds",
    "window": "windowSeconds",
    "body": "content",
    "cmd": "command",
    "transport": "type",
}
_OPAQUE: Final = frozenset({"env", "headers"})


def _camel(key: str) -> str:
    if key in _RENAMES:
        return _RENAMES[key]
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {_camel(k): (dict(v) if k in _OPAQUE and isinstance(v, dict) else v) for k, v in obj.items()}


def _enum(value: Any) -> Any:
    return _ENUMS.get(value.lower(), value) if isinstance(value, str) else value


def _ref(value: Any) -> Any:
    return value["name"] if isinstance(value, dict) and isinstance(value.get("name"), str) else value


def _template(doc: dict[str, Any]) -> dict[str, Any]:
    if "backendType" in doc:
        kind = doc.pop("backendType")
        doc.setdefault("backend", _BACKEND_TYPES.get(str(kind).lower(), kind))
    for key in ("launchMode", "workspacePolicy"):
        if key in doc:
            doc[key] = _enum(doc[key])
    if isinstance(doc.get("permissions"), str):
        doc["permissions"] = _enum(doc["permissions"])
    if isinstance(doc.get("command"), str):
        doc["command"] = shlex.split(doc["command"])
    for key in ("skills", "prompts", "mcpServers"):
        if isinstance(doc.get(key), list):
            doc[key] = [_ref(item) for item in doc[key]]
    if "workflow" in doc:
        doc["workflow"] = _ref(doc["workflow"])

    restart = doc.get("restart")
    if isinstance(restart, str):
        restart = {"policy": restart}
    elif isinstance(restart, dict):
        restart = _camel_keys(restart)
    for loose in ("maxRestarts", "windowSeconds"):
        if loose in doc:
            restart = dict(restart or {})
            restart.setdefault(loose, doc.pop(loose))
    if isinstance(restart, dict):
        if "policy" in restart:
            restart["policy"] = _enum(restart["policy"])
        doc["restart"] = restart

    if isinstance(doc.get("healthCheck"), dict):
        check = _camel_keys(doc["healthCheck"])
        if isinstance(check.get("command"), str):
            check["command"] = shlex.split(check["command"])
        doc["healthCheck"] = check
    return doc


def migrate(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Return the 1.0 form of a 0.9 document of ``kind``; the input is left as it was."""
    out = _camel_keys(doc)
    if kind == "template":
        out = _template(out)
    elif kind == "mcp" and isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
        if out["type"] == "stdio":
            del out["type"]
    out["version"] = TO
    return out
