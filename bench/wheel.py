"""Actant installed from a wheel into a venv of its own, the way a user gets it (``pipx install``, ``pip install``).

The dev venv's editable install puts a ``.pth`` file in site-packages that imports setuptools' editable finder
(and with it ``pathlib``, ``importlib.util``, ``urllib.parse``) at every interpreter start, of any program
in that venv, supervisorctl included. A start-up figure measured there says more about the development setup
than about the command, so the CLI figure runs the console script of this venv, with supervisorctl installed
next to it from the same index.

The venv lives outside the repository, under ``~/.cache/actant-bench/cli-venv``, and is reused between runs:
dependencies are installed once (again when ``pyproject.toml``'s dependencies or the supervisor version
change); the wheel is rebuilt from the working tree (uncommitted edits included, as the daemon runs them) and
reinstalled without dependencies whenever the package sources change.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.procs import child_env

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "actant-bench" / "cli-venv"
SOURCES = ("actantd", "actantctl", "configs")
"""What goes into the wheel (``configs/`` becomes ``actantd/bundled_configs``), with the files below."""
BUILD_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _source_files() -> list[Path]:
    files = [REPO / name for name in BUILD_FILES if (REPO / name).is_file()]
    for top in SOURCES:
        files.extend(p for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(files)


def _pip(*args: str, python: Path | None = None) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if python is not None:
        argv += ["--python", str(python)]
    proc = subprocess.run([*argv, *args, "-q"], env=child_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed: {proc.stderr.strip()[-800:]}")


def _build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the working tree (so nothing is written into the checkout)."""
    with tempfile.TemporaryDirectory(prefix="actant-wheel-src-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for top in SOURCES:
            shutil.copytree(REPO / top, src / top, ignore=ignore)
        for name in BUILD_FILES:
            if (REPO / name).is_file():
                shutil.copy2(REPO / name, src / name)
        # No build isolation: the dev venv's setuptools builds it, so no index is needed for the build itself.
        _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(src))
    wheels = sorted(out.glob("actant-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip wheel left no actant wheel in {out}")
    return wheels[-1]


def wheel_venv() -> Path:
    """The venv's ``bin`` directory, with ``actantctl`` from a wheel of the current sources and ``supervisorctl``."""
    python = CACHE / "bin" / "python"
    supervisor = importlib.metadata.version("supervisor")
    deps_key = f"{_digest([REPO / 'pyproject.toml'])} supervisor=={supervisor} {sys.version.split()[0]}"
    src_key = _digest(_source_files())
    deps_stamp, src_stamp = CACHE / ".deps", CACHE / ".sources"
    fresh = not python.exists() or not deps_stamp.exists() or deps_stamp.read_text() != deps_key
    if fresh:
        shutil.rmtree(CACHE, ignore_errors=True)
        # Same base interpreter as the dev venv (venv follows sys._base_executable); pip runs from the dev venv.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(CACHE)], check=True, timeout=120)
    if fresh or not src_stamp.exists() or src_stamp.read_text() != src_key:
        with tempfile.TemporaryDirectory(prefix="actant-wheel-") as out:
            wheel = _build_wheel(Path(out))
            if fresh:
                _pip("install", str(wheel), f"supervisor=={supervisor}", python=python)
                deps_stamp.write_text(deps_key)
            else:
                _pip("install", "--no-deps", "--force-reinstall", str(wheel), python=python)
        src_stamp.write_text(src_key)
    bin_dir = CACHE / "bin"
    for tool in ("actantctl", "supervisorctl"):
        if not os.access(bin_dir / tool, os.X_OK):
            raise RuntimeError(f"{bin_dir / tool} is missing after the install")
    return bin_dir
