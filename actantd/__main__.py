"""``actantd`` entry point; the wiring lives in :mod:`actantd.daemon`."""

from __future__ import annotations


def main() -> None:
    from actantd.daemon import main as daemon_main

    daemon_main()


if __name__ == "__main__":
    main()
