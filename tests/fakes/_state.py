"""Session memory shared by the fake agents: one JSON file per session under ``$FAKE_AGENT_STATE``.

The real CLIs keep their conversations in the user's home (``~/.claude/projects``, ``~/.codex/sessions``,
``~/.gemini/tmp``); the fakes keep theirs in a directory the test chooses (default ``.fake-agent`` in the
working directory), so "continue the conversation" and "resume after a restart" can be checked from outside.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    path = Path(os.environ.get("FAKE_AGENT_STATE") or Path.cwd() / ".fake-agent")
    path.mkdir(parents=True, exist_ok=True)
    return path


def load(session_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir() / f"{session_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(session: dict[str, Any]) -> None:
    path = state_dir() / f"{session['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(session))
    os.replace(tmp, path)
    (state_dir() / "latest").write_text(session["id"])


def latest() -> str | None:
    try:
        return (state_dir() / "latest").read_text().strip() or None
    except OSError:
        return None


def new_session() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "turns": []}


def knobs() -> tuple[float, int]:
    """``FAKE_SLEEP`` seconds before answering (timeouts), ``FAKE_EXIT`` exit code (failures)."""
    return float(os.environ.get("FAKE_SLEEP") or 0), int(os.environ.get("FAKE_EXIT") or 0)


def progress(name: str, lines: int = 3) -> None:
    """What the real CLIs print while they work (stderr), so streaming to the caller can be seen."""
    for i in range(lines):
        print(f"{name}: working ({i + 1}/{lines})", file=sys.stderr, flush=True)


def maybe_spawn_grandchild() -> None:
    """``FAKE_GRANDCHILD=1``: leave a sleeping descendant behind, as tool calls do, to test tree kills."""
    if os.environ.get("FAKE_GRANDCHILD") == "1":
        import subprocess

        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=False)


def wait() -> None:
    seconds, _ = knobs()
    if seconds:
        time.sleep(seconds)


def flood() -> None:
    """``FAKE_FLOOD=<bytes>``: that much stderr chatter, to check that the runner bounds what it keeps."""
    size = int(os.environ.get("FAKE_FLOOD") or 0)
    chunk = "x" * 1023 + "\n"
    while size > 0:
        sys.stderr.write(chunk)
        size -= len(chunk)
    sys.stderr.flush()
