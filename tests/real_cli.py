"""The real agent CLIs from the npm registry, installed once per machine for the tests that need them.

``real_cli("@google/gemini-cli", "gemini")`` runs
``npm install --prefix ~/.cache/actant-tests/npm/@google+gemini-cli @google/gemini-cli`` the first time (under
a file lock, so parallel test processes and other worktrees install it once) and returns the path of the
``gemini`` executable. When npm is missing or the registry cannot be reached the calling test is skipped
with the reason; nothing here needs a model API.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path.home() / ".cache" / "actant-tests" / "npm"
INSTALL_TIMEOUT = 600.0
"""One install of one package (the Claude Code package is ~100 MB unpacked) on a slow shared machine."""


def install_dir(package: str) -> Path:
    return CACHE / package.replace("/", "+")


def real_cli(package: str, bin_name: str) -> Path:
    """The ``bin_name`` executable of ``package``, installed into the shared cache on first use."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed, so {package} cannot be installed from the npm registry")
    prefix = install_dir(package)
    binary = prefix / "node_modules" / ".bin" / bin_name
    if os.access(binary, os.X_OK):
        return binary
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # another process may be installing it right now
        if os.access(binary, os.X_OK):
            return binary
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", package],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {package} did not finish in {INSTALL_TIMEOUT:.0f}s (registry unreachable?)")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"npm install {package} failed (registry unreachable?): {' | '.join(tail)}")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{package} installed, but it has no {bin_name!r} executable in {binary.parent}")
    return binary
