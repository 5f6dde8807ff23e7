"""Class 9 of issue #10: the client checks who listens before it sends anything.

Before, ``actantctl`` sent requests (``--env`` secrets included) to any process bound at the socket path.
Now it reads the server's uid with ``SO_PEERCRED`` and refuses anyone but the caller (or root). The test
runs the impostor as ``nobody``: we are root, so the impostor is the stranger here.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from actantctl.client import Client, UntrustedServer
from tests.harness import running_daemon

IMPOSTOR = r"""
import socket, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(5)
got = b""
try:
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
except OSError:
    pass
print(repr(got), flush=True)
"""


def _python_for(uid: int) -> str:
    """A Python the impostor's user can execute (ours may sit in a directory only we can read)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            probe = subprocess.run([candidate, "-c", "pass"], user=uid, capture_output=True, check=False)
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no Python executable by uid {uid} for the impostor")


def _nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run the impostor as")


def test_a_server_run_by_another_user_is_refused_before_anything_is_sent(short_tmp: Path) -> None:
    nobody = _nobody()
    if os.getuid() == nobody.pw_uid:
        pytest.skip("the test runs as nobody itself")
    short_tmp.chmod(0o777)
    path = short_tmp / "impostor.sock"
    proc = subprocess.Popen(
        [_python_for(nobody.pw_uid), "-c", IMPOSTOR, str(path)],
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        client = Client(path, timeout=5)
        with pytest.raises(UntrustedServer, match=r"runs as nobody .*not as you"):
            client.call("agent.create", {"name": "x", "env": {"OPENAI_KEY": "sk-secret"}})
        client.close()
        received = proc.communicate(timeout=10)[0]
        assert received.strip() == "b''", f"the impostor received {received!r}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_our_own_daemon_is_trusted(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon, Client(daemon.socket) as client:
        assert client.call("daemon.ping") is not None
