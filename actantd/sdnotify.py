"""The sd_notify(3) protocol, in the few lines it takes.

``Type=notify`` makes systemd wait for ``READY=1`` before it considers the service started, so a client
started right after ``systemctl --user start actantd`` finds a listening socket. Reimplemented rather than
linking libsystemd: the protocol is one datagram to ``$NOTIFY_SOCKET``. Outside systemd the variable is unset
and every call is a cheap no-op, so the daemon calls ``notify`` unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 1.0
"""systemd drains its notify socket promptly; if it ever stalls, the daemon must not hang on a status line."""


def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (``READY=1``, ``STATUS=...``, ``STOPPING=1``; newline-separated) to the service manager.

    Returns True when the datagram was sent, False when there is no manager to tell (``NOTIFY_SOCKET``
    unset, or an address family this implementation does not speak) or the send failed. Never raises:
    a status line is not worth failing a start or a shutdown over.
    """
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # Abstract namespace: the leading '@' stands for the NUL byte the kernel expects.
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        log.debug("NOTIFY_SOCKET %r is not a unix socket address; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_SECONDS)
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify %r to %s failed: %s", message, address, exc)
        return False
    return True
