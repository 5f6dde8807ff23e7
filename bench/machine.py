"""One line describing where the figures were measured: CPU, cores, RAM, kernel, Python, filesystem."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from bench.stats import percentile


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1024 * 1024):.1f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


def filesystem_of(path: Path) -> str:
    """The mount's filesystem type (``ext4``, ``tmpfs``...): fsync costs depend on it."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return fstype
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, parts[2]
    return fstype


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def describe(workdir: Path) -> str:
    cores = os.cpu_count() or 0
    affinity = len(os.sched_getaffinity(0))
    core_text = f"{cores} cores" if affinity == cores else f"{cores} cores ({affinity} usable)"
    return (
        f"{_cpu_model()}, {core_text}, {_ram()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, actant {_version('actant')}, supervisor {_version('supervisor')}, "
        f"temp dirs on {filesystem_of(workdir)} ({workdir})"
    )


def state_write_probe(directory: Path, count: int = 50) -> tuple[float, float]:
    """(p50, p90) seconds of a crash-safe 1 KiB write as the daemon does it for every transition:
    temp file, fsync, rename over the target, fsync the directory. Context for figures that persist state."""
    probe = directory / "fsync-probe"
    probe.mkdir(exist_ok=True)
    times = []
    data = b"x" * 1024
    try:
        for i in range(count):
            t0 = time.perf_counter()
            tmp = probe / f"record.tmp-{i}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, probe / "record.json")
            dfd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            times.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return percentile(times, 50), percentile(times, 90)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def git_revision(repo: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}"
