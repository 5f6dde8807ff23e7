"""Environment references in MCP server configs, rendered in each CLI's own syntax.

Actant's MCP files write a credential as ``${NAME}`` (``"Bearer ${GITHUB_TOKEN}"``), never as its value. Each
CLI expands references differently, and none of them may see Actant interpolate (the value would then sit
in a workspace file), so a materializer only rewrites the *syntax*:

- Claude Code (``.mcp.json``) and the custom backend: ``${NAME}`` as written (Claude expands it itself);
- Gemini CLI (``.gemini/settings.json``): ``$NAME`` (``${NAME}`` where a word character follows);
- Cursor (``.cursor/mcp.json``): ``${env:NAME}``;
- Codex (``.codex/config.toml``) has no expansion at all: a variable is forwarded by name (``env_vars``,
  ``bearer_token_env_var``, ``env_http_headers``); :func:`sole_reference` finds the values that can be.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: str) -> list[str]:
    return REFERENCE.findall(value)


def sole_reference(value: str, prefix: str = "") -> str | None:
    """``NAME`` when ``value`` is exactly ``prefix + "${NAME}"``, else None."""
    if not value.startswith(prefix):
        return None
    match = REFERENCE.fullmatch(value[len(prefix) :])
    return match.group(1) if match else None


def _sub(value: str, render: Callable[[re.Match[str]], str]) -> str:
    return REFERENCE.sub(render, value)


def claude(value: str) -> str:
    return value


def gemini(value: str) -> str:
    def render(match: re.Match[str]) -> str:
        rest = match.string[match.end() : match.end() + 1]
        return f"${{{match.group(1)}}}" if rest and (rest.isalnum() or rest == "_") else f"${match.group(1)}"

    return _sub(value, render)


def cursor(value: str) -> str:
    return _sub(value, lambda m: f"${{env:{m.group(1)}}}")


def render_map(values: Mapping[str, str], render: Callable[[str], str]) -> dict[str, str]:
    return {key: render(value) for key, value in values.items()}
