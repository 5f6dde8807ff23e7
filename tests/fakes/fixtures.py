"""Fixtures of the talk tests (runs, acp, cli): a real daemon whose configs add one backend per fake agent."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, make_configs, served, write_json

FAKES = Path(__file__).resolve().parent
HERE_PYTHON = sys.executable

FAKE_BACKENDS = {
    "fake-claude": {
        "run": ["{python}", str(FAKES / "fake_claude.py"), "-p", "--output-format", "json", "{prompt}"],
        "runResume": ["{python}", str(FAKES / "fake_claude.py"), "-p", "--output-format", "json", "--resume",
                      "{session}", "{prompt}"],
        "runOutput": "claude-json",
        "open": ["{python}", str(FAKES / "fake_tui.py")],
    },
    "fake-codex": {
        "run": ["{python}", str(FAKES / "fake_codex.py"), "exec", "--json", "{prompt}"],
        "runResume": ["{python}", str(FAKES / "fake_codex.py"), "exec", "--json", "resume", "{session}", "{prompt}"],
        "runOutput": "codex-jsonl",
    },
    "fake-gemini": {
        "run": ["{python}", str(FAKES / "fake_gemini.py"), "-p", "{prompt}", "--output-format", "json"],
        "runResume": ["{python}", str(FAKES / "fake_gemini.py"), "--resume", "latest", "-p", "{prompt}",
                      "--output-format", "json"],  # as the bundled gemini backend: no {session} needed
        "runOutput": "gemini-json",
    },
    "fake-acp": {
        "service": ["{python}", str(FAKES / "fake_acp.py")],
        "protocol": "acp",
    },
}  # fmt: skip


def add_fake_configs(configs: Path) -> None:
    for name, fields in FAKE_BACKENDS.items():
        write_json(configs / "backends" / f"{name}.json",
                   {"version": "1.0", "name": name, "materializer": "custom", **fields})  # fmt: skip
        template = {"version": "1.0", "name": name, "backend": name, "restart": {"policy": "Never"},
                    "env": {"FAKE_AGENT_STATE": "{workspace}/.fake-agent"}}  # fmt: skip
        if "service" not in fields:  # a service to supervise besides the one-shot runs: the demo agent
            template["command"] = ["{python}", "-m", "actantd.demo_agent"]
        write_json(configs / "templates" / f"{name}.json", template)
    write_json(configs / "templates" / "fake-acp-permissive.json",
               {"version": "1.0", "name": "fake-acp-permissive", "backend": "fake-acp", "permissions": "Permissive",
                "restart": {"policy": "Never"}, "env": {"FAKE_AGENT_STATE": "{workspace}/.fake-agent"}})  # fmt: skip


@pytest.fixture
def fake_daemon(short_tmp: Path) -> Iterator[Daemon]:
    configs = make_configs(short_tmp)
    add_fake_configs(configs)
    with served(Daemon(short_tmp, configs)) as d:
        yield d
