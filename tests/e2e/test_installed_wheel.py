"""The installed copy works (issue #11): sdist → wheel → a fresh venv outside the repo → a daemon on the
default XDG paths of a fresh ``$HOME`` → the bundled demo agent starts.

Fast and offline on purpose: the build uses the test venv's setuptools (``--no-build-isolation``), and the new
venv reaches the already-installed dependencies through a ``.pth`` line naming the test venv's site-packages
(added *after* its own, so ``actantd`` itself comes from the wheel, never from this checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done  # type: ignore[no-any-return]


def _tracked_copy(dest: Path) -> Path:
    """The checkout as a fresh clone would have it: only files git tracks (plus uncommitted edits to them)."""
    src = dest / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, timeout=30)  # fmt: skip
    if listed.returncode != 0:
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".run", "build", "dist", "*.egg-info"))
        return src
    for rel in filter(None, listed.stdout.decode().split("\0")):
        path = REPO / rel
        if path.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / rel)
    return src


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel), the wheel built from the unpacked sdist as pip and pipx do."""
    root = tmp_path_factory.mktemp("build")
    src = _tracked_copy(root)
    backend = "from setuptools import build_meta as b; import sys; print(b.build_{}(sys.argv[1]))"
    out = root / "dist"
    sdist_name = _run([sys.executable, "-c", backend.format("sdist"), str(out)], cwd=src).stdout.split()[-1]
    sdist = out / sdist_name
    with tarfile.open(sdist) as tar:
        tar.extractall(root / "unpacked", filter="data")
    (unpacked,) = (root / "unpacked").iterdir()
    wheel_name = _run([sys.executable, "-c", backend.format("wheel"), str(out)], cwd=unpacked).stdout.split()[-1]
    return sdist, out / wheel_name


def test_sdist_and_wheel_carry_the_configs_and_the_demo_agent(built: tuple[Path, Path]) -> None:
    sdist, wheel = built
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    assert any(n.endswith("/configs/templates/demo.json") for n in names), names
    assert any(n.endswith("/actantd/demo_agent.py") for n in names)
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    shipped = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.json")}
    assert {f"actantd/bundled_configs/{rel}" for rel in shipped} <= files
    assert "actantd/demo_agent.py" in files
    assert not any(f.startswith(("configs/", "tests/", "bench/")) for f in files), "only the packages are installed"


@pytest.fixture
def venv(built: tuple[Path, Path]) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="act-venv-", dir="/tmp"))
    try:
        _run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")])
        python = root / "venv" / "bin" / "python"
        purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
        # The dependencies, already installed in the test venv; no network, no index.
        Path(purelib, "zz-actant-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
        _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
              str(built[1])])  # fmt: skip
        yield root / "venv"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_installed_wheel_starts_a_daemon_on_default_paths_and_runs_the_demo(venv: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="act-home-", dir="/tmp"))
    ctl = str(venv / "bin" / "actantctl")
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep} | {"HOME": str(home)}
    state = home / ".local" / "state" / "actant"
    daemon_pid: int | None = None

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([ctl, *args], env=env, cwd=home)

    try:
        where = _run([str(venv / "bin" / "python"), "-c", "import actantd; print(actantd.__file__)"],
                      env=env, cwd=home)  # fmt: skip
        assert where.stdout.startswith(str(venv)), f"actantd must come from the wheel: {where.stdout}"
        started = json.loads(run("daemon", "start", "--json").stdout)
        daemon_pid = started["pid"]
        assert started["started"] is True
        assert Path(started["socket"]) == state / "actantd.sock"
        assert (home / ".config" / "actant" / "templates" / "demo.json").is_file(), "configs seeded from the wheel"
        templates = json.loads(run("template", "list", "--json").stdout)
        assert "demo" in {t["name"] for t in templates["items"]}
        run("agent", "create", "hello", "--template", "demo")
        agent = json.loads(run("agent", "start", "hello", "--json").stdout)["agent"]
        assert agent["status"] == "Running"
        logs = run("agent", "logs", "hello", "--stdout").stdout
        assert "demo agent 'hello' started" in logs
        run("agent", "stop", "hello")
        run("daemon", "stop")
        daemon_pid = None
    finally:
        if daemon_pid is not None:  # a failed assertion above: don't leave the daemon (and its agents) behind
            subprocess.run([ctl, "daemon", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
