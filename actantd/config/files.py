"""Which files under a configs folder are configs: one rule shared by loading, watching, seeding, migrating.

Editors write swap, backup and probe files next to the file being edited (vim's ``.x.swp``/``x~``/``4913``,
Emacs's ``.#x``/``#x#``, many tools' ``*.tmp``), and Actant itself keeps ``.backup/``. If the loader and the
watcher disagreed about them, a swap file could trigger a reload that then ignores it, or worse, be loaded.
Hidden-ness is judged relative to the configs folder, since that folder itself usually lives in ``~/.config``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Final

IGNORED_NAME_PATTERNS: Final[tuple[str, ...]] = (
    "*.swp",
    "*.swx",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "*.tmp",
    "*.bak",
    "4913",
)

CONFIG_SUFFIX: Final = ".json"


def is_ignored_name(name: str) -> bool:
    """True for hidden names and editor/temp files, whatever their suffix."""
    return name.startswith(".") or any(fnmatch.fnmatchcase(name, pat) for pat in IGNORED_NAME_PATTERNS)


def is_ignored_relpath(rel: PurePath) -> bool:
    """True when any component of a path relative to the configs folder is hidden or a temp file."""
    return any(is_ignored_name(part) for part in rel.parts)


def is_config_relpath(rel: PurePath) -> bool:
    return rel.suffix == CONFIG_SUFFIX and not is_ignored_relpath(rel)


def iter_config_files(configs_dir: Path) -> Iterator[Path]:
    """Every candidate config file (absolute), sorted so that loads and reports are deterministic."""
    found: list[Path] = []
    for root, dirs, files in os.walk(configs_dir):
        dirs[:] = sorted(d for d in dirs if not is_ignored_name(d))
        for name in files:
            path = Path(root) / name
            if is_config_relpath(path.relative_to(configs_dir)):
                found.append(path)
    yield from sorted(found, key=lambda p: p.relative_to(configs_dir).as_posix())
