"""Which files under a configs folder are configs: one rule shared by loading, watching, seeding, migrating.

Editors write swap, backup and probe files next to the file being edited (vim's ``.x.swp``/``x~``/``4913``,
Emacs's ``.#x``/``#x#``, many tools' ``*.tmp``), and Actant itself keeps ``.backup/``. If the loader and the
watcher disagreed about them, a swap file could trigger a reload that then ignores it, or worse, be loaded.
Hidden-ness is judged relative to the configs folder, since that folder itself usually lives in ``~/.config``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Final

from actantd import limits

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

MAX_CONFIG_BYTES: Final = limits.MAX_CONFIG_BYTES
"""The largest config file read; the biggest real config (a long skill) is a few tens of KiB."""


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


class UnreadableConfig(Exception):
    """Why one file was not read; the message is what the file's issue says."""


def read_config_bytes(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``, else :class:`UnreadableConfig`.

    Anything can sit in a configs folder or be named by a client: a FIFO (an ordinary ``open`` blocks until
    a writer appears, forever), a symlink to ``/dev/zero`` (a read never ends) or to a terminal, a file
    growing while it is read. So the file is opened with ``O_NONBLOCK`` (a FIFO opens at once), checked with
    ``fstat`` on the open descriptor (no window for a swap between check and read), and read with a bound
    (a file that grew past the limit after the check is still refused). Callers run this off the event loop:
    even a regular file can sit on a hung network mount.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableConfig(f"cannot read: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableConfig(f"not a regular file ({_file_type(st.st_mode)}); only regular files are read")
        if st.st_size > max_bytes:
            raise UnreadableConfig(f"{st.st_size} bytes; a config file may hold at most {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(max_bytes + 1 - total, 256 * 1024))
            except BlockingIOError:  # a mandatory-locked or otherwise not-ready file: do not wait for it
                raise UnreadableConfig("cannot read: the file is not ready (locked?)") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnreadableConfig(f"grew past {max_bytes} bytes while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableConfig(f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _file_type(mode: int) -> str:
    for test, label in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return label
    return "not a regular file"


def folder_problem(configs_dir: Path) -> str | None:
    """Why ``configs_dir`` cannot be used as a configs folder (missing, not a folder, a symlink loop, no
    permission), or None when it is a readable directory. ``Path.is_dir`` would fold all of these into
    False, which reads as "does not exist" and sends the seeder at a symlink loop."""
    try:
        st = os.stat(configs_dir)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "configs folder does not exist"
        if exc.errno == errno.ELOOP:
            return "configs folder is a symlink loop"
        return f"configs folder cannot be read: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return "configs folder is not a directory"
    return None
