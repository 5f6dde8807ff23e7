"""A stand-in agent for the bundled ``demo`` template and for tests: stdlib only, no model, no network.

It behaves like a well-mannered service so every supervisor path can be exercised without an AI CLI:

- prints a startup line naming itself (``ACTANT_INSTANCE``) and the first heading of ``AGENTS.md`` in its
  working directory, which shows that the workspace was materialized;
- prints a heartbeat every ``DEMO_INTERVAL`` seconds (default 3);
- exits 0 promptly on SIGTERM/SIGINT, after a goodbye line;
- ``DEMO_EXIT_AFTER=<seconds>`` exits on its own after that long with ``DEMO_EXIT_CODE`` (default 0), so tests
  can produce clean exits, crashes (non-zero) and crash loops (``DEMO_EXIT_AFTER=0``);
- ``DEMO_IGNORE_SIGTERM=1`` ignores SIGTERM, so tests can check the SIGKILL escalation after
  ``stopTimeoutSeconds``.

``python -m actantd.demo_agent PROMPT`` answers once with one JSON line and exits, like a backend's one-shot
``run`` argv.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType


def _float_env(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        print(f"demo-agent: ignoring {name}={raw!r} (not a number)", file=sys.stderr, flush=True)
        return default


def first_heading(path: Path) -> str | None:
    """The text of the first Markdown heading in ``path``, if the file exists and has one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("#"):
                    return line.lstrip("#").strip() or None
    except OSError:
        return None
    return None


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} {message}", flush=True)


def answer(prompt: str) -> int:
    name = os.environ.get("ACTANT_INSTANCE", "demo")
    print(json.dumps({"agent": name, "prompt": prompt, "result": f"demo agent received: {prompt}"}), flush=True)
    return 0


def serve() -> int:
    name = os.environ.get("ACTANT_INSTANCE", "demo")
    interval = max(_float_env("DEMO_INTERVAL", 3.0) or 3.0, 0.01)
    exit_after = _float_env("DEMO_EXIT_AFTER", None)
    exit_code = int(_float_env("DEMO_EXIT_CODE", 0) or 0)

    # An Event rather than a sleep loop: the signal handler sets it and the wait returns at once, so stop
    # latency is not bounded below by the heartbeat interval.
    stopping = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    if os.environ.get("DEMO_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_signal)

    heading = first_heading(Path.cwd() / "AGENTS.md")
    about = f" — {heading}" if heading else ""
    _say(f"demo agent '{name}' started (pid {os.getpid()}, cwd {Path.cwd()}){about}")

    started = time.monotonic()
    deadline = started + exit_after if exit_after is not None else None
    beats = 0
    while True:
        timeout = interval
        if deadline is not None:
            timeout = min(timeout, max(deadline - time.monotonic(), 0.0))
        if stopping.wait(timeout):
            _say(f"demo agent '{name}' got {received[0] if received else 'a signal'}; goodbye")
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            _say(f"demo agent '{name}' exiting with code {exit_code} after {exit_after:g}s (DEMO_EXIT_AFTER)")
            return exit_code
        beats += 1
        _say(f"demo agent '{name}' heartbeat {beats}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        return answer(" ".join(args))
    return serve()


if __name__ == "__main__":
    sys.exit(main())
