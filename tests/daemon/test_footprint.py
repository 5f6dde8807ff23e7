"""The daemon's footprint: what its start-up loads, which event loop it runs, and that OpenSSL stays out.

The daemon's RSS is a benchmark target (README, Benchmarks), so what its start-up chain imports is pinned
here: ACP sessions, one-shot runs, the config migration runner and TLS load only when used, and the
standard event loop (the default) runs without the ``ssl`` module and without OpenSSL mapped at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actantd import eventloop
from tests.harness import Daemon, daemon_env, make_configs, served

NOT_AT_START = (
    "ssl",
    "_ssl",
    "uvloop",
    "watchfiles",
    "anyio",
    "multiprocessing",
    "actantd.acp.session",
    "actantd.acp.connection",
    "actantd.acp.permissions",
    "actantd.runs",
    "actantd.config.migrations.runner",
)
"""Modules (and packages, with everything below them) the daemon's start-up must not import."""
OPENSSL = ("libssl", "libcrypto", "_ssl.")


def _startup_modules(env: dict[str, str]) -> set[str]:
    """``sys.modules`` once the ``actantd`` entry point has parsed its arguments: the event loop choice and
    the daemon's whole module chain are imported by then (``--version`` exits right after)."""
    code = (
        "import json, sys\n"
        "sys.argv = ['actantd', '--version']\n"
        "from actantd.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)  # fmt: skip
    version, modules = proc.stdout.splitlines()[-2:]
    assert version.startswith("actantd ")
    return set(json.loads(modules))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_startup_chain_loads_only_what_the_daemon_needs() -> None:
    modules = _startup_modules(daemon_env())
    assert {"actantd.daemon", "actantd.config.fswatch", "asyncio", "msgspec", "sqlite3"} <= modules
    assert [m for m in NOT_AT_START if _loaded(modules, m)] == []


def test_running_daemon_never_maps_openssl(short_tmp: Path) -> None:
    """With the default loop, neither a started agent nor the config calls bring OpenSSL in."""
    with served(Daemon(short_tmp, make_configs(short_tmp))) as d:
        d.call("agent.create", {"name": "a", "template": "sleeper"})
        d.call("agent.start", {"name": "a"})
        d.call("config.validate")
        d.call("config.migrate", {"dryRun": True})
        maps = _maps(d.pid)
        d.call("agent.stop", {"name": "a"})
    assert [lib for lib in OPENSSL if lib in maps] == []


class UvloopDaemon(Daemon):
    def env(self) -> dict[str, str]:
        return {**super().env(), eventloop.LOOP_ENV: "uvloop"}


def test_uvloop_is_a_setting(short_tmp: Path) -> None:
    """``ACTANT_EVENT_LOOP=uvloop`` runs the daemon on uvloop (which brings ``ssl``, hence OpenSSL, with it)."""
    with served(UvloopDaemon(short_tmp, make_configs(short_tmp))) as d:
        assert d.call("daemon.ping") is not None
        maps = _maps(d.pid)
    assert "uvloop" in maps and any(lib in maps for lib in OPENSSL)


def test_unknown_loop_is_refused(short_tmp: Path) -> None:
    env = {**daemon_env(), eventloop.LOOP_ENV: "tokio"}
    argv = [sys.executable, "-m", "actantd", "--home", str(short_tmp / "home"), "--socket", str(short_tmp / "s")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "ACTANT_EVENT_LOOP='tokio': choose one of asyncio, uvloop" in proc.stderr
    assert not (short_tmp / "home").exists()  # refused before touching anything


@pytest.mark.parametrize(("value", "loop"), [("", "asyncio"), ("asyncio", "asyncio"), (" UVLoop ", "uvloop")])
def test_chosen_loop(value: str, loop: str) -> None:
    assert eventloop.chosen_loop({eventloop.LOOP_ENV: value}) == loop
    assert eventloop.chosen_loop({}) == eventloop.DEFAULT_LOOP


def test_refused_ssl_is_an_import_error_and_asyncio_still_works(short_tmp: Path) -> None:
    """``import ssl`` fails as on a Python built without OpenSSL; asyncio's Unix sockets work regardless."""
    code = """
from actantd import eventloop
eventloop.refuse_ssl()
import asyncio, sys
try:
    import ssl
except ImportError as exc:
    print("refused:", exc)

async def main(path):
    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    async with await asyncio.start_unix_server(echo, path):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"hello\\n")
        line = await reader.readline()
        writer.close()
        return line.decode().strip()

print(asyncio.run(main(sys.argv[1])), "ssl" in sys.modules)
"""
    sock = str(short_tmp / "echo.sock")
    out = subprocess.run([sys.executable, "-c", code, sock], capture_output=True, text=True, timeout=60, check=True)
    assert "refused: actantd runs without TLS support" in out.stdout
    assert out.stdout.splitlines()[-1] == "hello False"
