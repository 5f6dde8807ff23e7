"""``actantd`` entry point; the wiring lives in :mod:`actantd.daemon`."""

from __future__ import annotations


def main() -> None:
    import os
    import sys

    if os.environ.get("ACTANT_EVENT_LOOP") == "asyncio" and "ssl" not in sys.modules:
        # The daemon speaks no TLS; without uvloop nothing needs ssl, whose OpenSSL costs ~5 MiB of RSS.
        sys.modules["ssl"] = None  # type: ignore[assignment]
    from actantd.daemon import main as daemon_main

    daemon_main()


if __name__ == "__main__":
    main()
