"""A stand-in for an agent's interactive mode (``claude``, ``codex``, ``gemini`` without a prompt).

Says whether it has a terminal, where it runs and as which instance, then reads commands from stdin:
``exit N`` exits with code N, ``signal NAME`` kills itself with that signal, anything else is echoed.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    tty = os.isatty(0) and os.isatty(1)
    print(f"fake-tui: tty={tty} cwd={os.getcwd()} instance={os.environ.get('ACTANT_INSTANCE')}", flush=True)
    while True:
        print("ready> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        words = line.split()
        if words[:1] == ["exit"]:
            return int(words[1]) if len(words) > 1 else 0
        if words[:1] == ["signal"]:
            os.kill(os.getpid(), getattr(signal, words[1]))
        print(f"got: {line.strip()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
