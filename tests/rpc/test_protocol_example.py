"""The Node example client of ``docs/protocol.md`` runs against a real daemon.

``docs/examples/node-client/client.js`` speaks Content-Length framing through ``vscode-jsonrpc`` (what an
editor plugin uses), so this is the daemon's LSP-style framing, event notifications and error-free
create/start/stop exercised by a foreign JSON-RPC implementation rather than by our own client.

Needs ``node`` and ``npm``; ``node_modules`` is installed from the committed lockfile on first run. The test
skips only when node/npm are missing or the install fails for lack of network; any other failure fails.

The last tests hold ``docs/protocol.md`` to its byte-exact framing examples and its stdlib one-liner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "node-client"
NETWORK_ERRORS = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network|socket hang up|getaddrinfo|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT",
    re.IGNORECASE,
)


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the Node example client (not on PATH)")
    return node, npm


def _install(npm: str) -> None:
    """``npm ci`` from the lockfile (``npm install`` if there is none) into the example's folder, once."""
    if (EXAMPLE / "node_modules" / "vscode-jsonrpc" / "package.json").exists():
        return
    verb = "ci" if (EXAMPLE / "package-lock.json").exists() else "install"
    try:
        done = subprocess.run(
            [npm, verb, "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm {verb} did not finish in 300 s (no network to the npm registry?)")
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if NETWORK_ERRORS.search(output):
            reason = next(line for line in output.splitlines() if NETWORK_ERRORS.search(line))
            pytest.skip(f"npm {verb} failed for lack of network: {reason.strip()}")
        pytest.fail(f"npm {verb} failed (exit {done.returncode}):\n{output[-3000:]}")


def test_node_client_pings_subscribes_and_sees_transitions(daemon: Any) -> None:
    node, npm = _tools()
    _install(npm)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTANT_")}
    done = subprocess.run(
        [node, "client.js", str(daemon.socket)],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"client failed:\n{done.stdout}\n{done.stderr}\ndaemon:\n{daemon.read_stderr()}"
    out = done.stdout

    ping = re.search(r"^ping: actantd (\S+) pid (\d+) ", out, re.MULTILINE)
    assert ping is not None, out
    assert int(ping[2]) == daemon.pid
    assert re.search(r"^agents: \(none\)$", out, re.MULTILINE), out  # a fresh daemon has none yet
    assert re.search(r"^subscribed: \S+$", out, re.MULTILINE), out
    assert re.search(r"^started: demo Running pid \d+$", out, re.MULTILINE), out
    assert re.search(r"^stopped: demo Stopped$", out, re.MULTILINE), out

    transitions = re.findall(r"^transition: demo (\w+) -> (\w+) \((.*)\)$", out, re.MULTILINE)
    pairs = [(a, b) for a, b, _ in transitions]
    # Subscribed before create, so the whole life is there, in order.
    assert pairs == [
        ("Created", "Initializing"),
        ("Initializing", "Ready"),
        ("Ready", "Starting"),
        ("Starting", "Running"),
        ("Running", "Stopping"),
        ("Stopping", "Stopped"),
    ], out

    # The daemon's view agrees, and running the example again (create is idempotent) works too.
    status = daemon.call("agent.status", {"name": "demo"})["agent"]
    assert status["status"] == "Stopped" and status["pid"] is None
    again = subprocess.run(
        [node, "client.js"], cwd=EXAMPLE, env={**env, "ACTANT_SOCKET": str(daemon.socket)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "agents: demo=Stopped" in again.stdout
    assert "transition: demo Stopped -> Starting (start requested)" in again.stdout
    assert "transition: demo Stopping -> Stopped (stopped)" in again.stdout


def test_node_client_reports_a_missing_daemon(short_tmp: Path) -> None:
    node, npm = _tools()
    _install(npm)
    done = subprocess.run(
        [node, "client.js", str(short_tmp / "absent.sock")], cwd=EXAMPLE, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "ENOENT" in done.stderr


# ------------------------------------------------------------------------------------- docs/protocol.md

PROTOCOL_MD = EXAMPLE.parent.parent / "protocol.md"
GHOST_REQUEST = b'Content-Length: 74\r\n\r\n{"jsonrpc":"2.0","id":2,"method":"agent.status","params":{"name":"ghost"}}'
GHOST_REPLY = (
    b'Content-Length: 150\r\n\r\n{"jsonrpc":"2.0","id":2,"error":{"code":-32003,"message":"no agent named \'ghost\'",'
    b'"data":{"errorCode":"AGENT_NOT_FOUND","context":{"agent":"ghost"}}}}'
)


def _exchange(path: Path, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the daemon closes: what ``socat`` does with a pipe."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def _escaped(frame: bytes) -> str:
    return frame.decode().replace("\r\n", "\\r\\n")


def test_documented_frames_are_byte_exact(daemon: Any) -> None:
    doc = PROTOCOL_MD.read_text()
    assert _escaped(GHOST_REQUEST) in doc and _escaped(GHOST_REPLY) in doc
    assert _exchange(daemon.socket, GHOST_REQUEST) == GHOST_REPLY

    ping = b'{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}'
    assert f"Content-Length: {len(ping)}\\r\\n\\r\\n{ping.decode()}" in doc
    pid = daemon.pid
    shape = rb'\{"jsonrpc":"2\.0","id":1,"result":\{"version":"[^"]+","pid":%d,"uptimeSeconds":[0-9.]+\}\}' % pid
    assert re.fullmatch(shape + rb"\n", _exchange(daemon.socket, ping + b"\n"))
    framed = _exchange(daemon.socket, b"Content-Length: %d\r\n\r\n%b" % (len(ping), ping))
    header, _, body = framed.partition(b"\r\n\r\n")
    assert header == b"Content-Length: %d" % len(body)
    assert re.fullmatch(shape, body)


def test_documented_python_one_liner(daemon: Any) -> None:
    line = next(ln for ln in PROTOCOL_MD.read_text().splitlines() if ln.startswith("python3 -c 'import socket"))
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed for the here-string in the documented one-liner")
    line = line.replace("python3 -c", f"{sys.executable} -c", 1)
    done = subprocess.run(
        [bash, "-c", line], env={**os.environ, "SOCK": str(daemon.socket)}, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["id"] == 1 and reply["result"]["pid"] == daemon.pid
