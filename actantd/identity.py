"""Which home a socket belongs to: ``{socket}.home``, written by the daemon when it starts listening.

A socket path says nothing about the home behind it, and after ``daemon stop`` nothing answers there to ask.
So ``actantctl daemon start`` with only a socket (``ACTANT_SOCKET`` still exported after a ``make run``)
would start a *different* daemon, on the default home with freshly seeded configs, and the agents the old
one left running (``--keep-agents``) would go unsupervised. The daemon therefore leaves this small file next
to its socket, and it stays after the daemon exits; the client reads it to start the right daemon again.

This is not socket discovery (both sides still compute the socket path with ``paths.resolve_socket``): it
maps an already-known socket back to its home. Stdlib only, shared by daemon and client.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SUFFIX: Final = ".home"


@dataclass(frozen=True, slots=True)
class SocketOwner:
    home: Path
    configs: Path | None


def identity_path(socket: Path) -> Path:
    return socket.with_name(socket.name + SUFFIX)


def write_identity(socket: Path, home: Path, configs: Path) -> None:
    """Record ``home`` and ``configs`` next to ``socket`` (atomically, 0600). Raises OSError when it cannot."""
    target = identity_path(socket)
    doc = json.dumps({"home": str(home), "configs": str(configs), "pid": os.getpid()}) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(doc)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_identity(socket: Path) -> SocketOwner | None:
    """The home (and configs) that last served ``socket``, or None when unknown or unreadable."""
    try:
        doc = json.loads(identity_path(socket).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("home"), str) or not os.path.isabs(doc["home"]):
        return None
    configs = doc.get("configs")
    return SocketOwner(Path(doc["home"]), Path(configs) if isinstance(configs, str) and configs else None)
