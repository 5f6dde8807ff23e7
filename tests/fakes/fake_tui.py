"""A stand-in for an agent's interactive mode (``claude``, ``codex``, ``gemini`` without a prompt).

Says whether it has a terminal, where it runs and as which instance, then reads commands from stdin:
``exit N`` exits with code N, ``signal NAME`` kills itself with that signal, ``env NAME`` prints the
SHA-256 of that variable's value (so a test sees that a secret arrived without the secret being printed),
anything else is echoed.
"""

from __future__ import annotations

import hashlib
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
        if words[:1] == ["env"] and len(words) == 2:
            value = os.environ.get(words[1])
            digest = "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()
            print(f"env {words[1]} sha256={digest}", flush=True)
            continue
        print(f"got: {line.strip()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
