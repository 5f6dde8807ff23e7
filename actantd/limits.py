"""Every size limit shared by more than one module, defined once.

Stdlib only (no imports at all): ``actantctl`` may import it, and so may the lowest layers of the daemon.
See docs/architecture.md for what each layer may import.
"""

from __future__ import annotations

MiB = 1024 * 1024

SOCKET_PATH_MAX = 107
"""Longest Unix socket path in bytes: ``sun_path`` is 108 bytes on Linux, one of them the terminating NUL."""

MAX_MESSAGE_BYTES = 8 * MiB
"""Largest JSON-RPC message either side accepts: far above any legitimate request, small enough that a
runaway client cannot bloat the daemon."""

MAX_OUTBOUND_BYTES = 32 * MiB
"""Replies and notifications queued for one slow connection before the daemon drops it."""

LOG_MAX_BYTES = 10 * MiB
"""An agent's ``stdout.log``/``stderr.log`` is rotated once it grows past this size."""

LOG_BACKUPS = 3
"""Rotated generations kept per stream (``stdout.log.1`` .. ``stdout.log.3``)."""

MAX_CONFIG_BYTES = 1 * MiB
"""Largest config file the daemon reads; a bigger one is reported as an error, not loaded."""
