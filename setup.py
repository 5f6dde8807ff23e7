"""Packaging hook: the wheel carries the top-level ``configs/`` as ``actantd/bundled_configs/``.

``configs/`` stays where it is (``make run`` and the docs use it) and is the only copy in git; a symlink
inside the package would not survive every wheel builder, so the copy is made at build time instead.
An editable install needs no copy: ``bundled_configs_dir()`` finds the checkout's ``configs/`` first.
Everything else about the package is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TARGET = Path("actantd", "bundled_configs")


def _ignore(_dir: str, names: list[str]) -> set[str]:
    """Skip editor leftovers and migration backups: only real config files are shipped."""
    return {n for n in names if n.startswith(".") or n.endswith(("~", ".swp", ".tmp")) or n == "__pycache__"}


class BuildPyWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = ROOT / "configs"
        if not (source / "templates").is_dir():
            raise SystemExit(f"cannot build actant: {source} has no templates/ (is this a complete checkout?)")
        dest = Path(self.build_lib) / TARGET
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest, ignore=_ignore)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        dest = Path(self.build_lib) / TARGET
        if dest.is_dir():
            outputs += [str(p) for p in dest.rglob("*") if p.is_file()]
        return outputs


setup(cmdclass={"build_py": BuildPyWithConfigs})
