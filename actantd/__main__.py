"""``actantd`` entry point; the wiring lives in :mod:`actantd.daemon`.

The event loop is chosen here, before anything imports asyncio: with the standard loop (the default) the
``ssl`` module is refused first, so OpenSSL is never loaded into the daemon (:mod:`actantd.eventloop`).
"""

from __future__ import annotations

import sys


def main() -> None:
    from actantd import eventloop

    try:
        loop = eventloop.chosen_loop()
    except eventloop.UnknownLoop as exc:
        print(f"actantd: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if loop == "asyncio":
        eventloop.refuse_ssl()
    from actantd.daemon import main as daemon_main

    daemon_main(loop=loop)


if __name__ == "__main__":
    main()
