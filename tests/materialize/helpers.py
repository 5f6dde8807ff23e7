"""Shared pieces of the materialization tests: the fixture configs (a template per backend with two skills,
a prompt, a workflow and three MCP servers) combined with the bundled backends."""

from __future__ import annotations

import shutil
from pathlib import Path

from actantd.config.registry import Registry
from actantd.config.store import bundled_configs_dir, load_registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "materialize"
BACKENDS = ("claude-code", "codex", "gemini", "cursor-agent", "custom")
SECRET = "sk-fixture-secret-value"
"""The template's ``env`` value: it must reach the agent's environment and never a workspace file."""


def fixture_configs(dest: Path) -> Path:
    """A configs folder: the fixture configs plus the bundled ``backends/``."""
    shutil.copytree(FIXTURES / "configs", dest)
    shutil.copytree(bundled_configs_dir() / "backends", dest / "backends")
    return dest


def fixture_registry(tmp: Path) -> Registry:
    result = load_registry(fixture_configs(tmp / "configs"))
    assert not result.errors, result.errors
    return result.registry


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
