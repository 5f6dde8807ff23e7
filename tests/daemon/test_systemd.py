"""systemd integration (DESIGN §11): the unit files, and sd_notify over a real datagram socket.

``systemd-analyze --user verify`` needs a user manager's runtime directory to build its lookup paths. Without a
login session (root in a container has no ``/run/user/0``) it fails with "Failed to lookup RuntimeDirectory
path: No such device or address"; pointing ``XDG_RUNTIME_DIR`` at an existing 0700 directory is all it takes.
``HOME`` and ``XDG_CONFIG_HOME`` point into the temp dir too, so units installed on the machine can't affect
the result. verify exits 0 even for unknown keys or unparsable values (it only *warns*, "ignoring"), so the
test also requires it to print nothing, and a control case shows a bad setting does print.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actantd.sdnotify import notify

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "systemd" / "actantd.service"
SOCKET = REPO / "systemd" / "actantd.socket"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values...]}}``; unit files may repeat a key, so values are lists."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# ---------------------------------------------------------------------------------------------------------
# Unit contents


def test_service_has_the_required_settings() -> None:
    unit = parse_unit(SERVICE)
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["KillMode"] == ["mixed"]
    assert service["Restart"] == ["on-failure"]
    assert service["ExecStart"] == ["@ACTANTD@"]  # what `make install-user-service` substitutes
    assert int(service["TimeoutStopSec"][0]) > 10  # above the default agent stopTimeoutSeconds
    assert unit["Unit"]["Documentation"]
    assert unit["Unit"]["Requires"] == ["actantd.socket"]
    assert unit["Install"]["Also"] == ["actantd.socket"]


def test_socket_has_the_required_settings() -> None:
    sock = parse_unit(SOCKET)["Socket"]
    # The path paths.resolve_socket() computes from XDG_RUNTIME_DIR, which is what %t is for a user manager.
    assert sock["ListenStream"] == ["%t/actant/actantd.sock"]
    assert sock["SocketMode"] == ["0600"]
    assert sock["DirectoryMode"] == ["0700"]
    assert parse_unit(SOCKET)["Install"]["WantedBy"] == ["sockets.target"]


def test_the_makefile_installs_what_the_tests_verify() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "s|@ACTANTD@|" in makefile and "systemd/actantd.service" in makefile
    assert "systemd/actantd.socket" in makefile


# ---------------------------------------------------------------------------------------------------------
# systemd-analyze verify


def actantd_executable() -> str:
    """The venv's actantd, as the Makefile substitutes it; any real executable will do for verify."""
    candidate = Path(sys.executable).parent / "actantd"
    return str(candidate) if os.access(candidate, os.X_OK) else sys.executable


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """Both units side by side, @ACTANTD@ substituted as `make install-user-service` does."""
    out = tmp_path / "units"
    out.mkdir()
    (out / "actantd.service").write_text(SERVICE.read_text().replace("@ACTANTD@", actantd_executable()))
    shutil.copy(SOCKET, out / "actantd.socket")
    return out


def verify_user(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--user", "verify", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


@needs_systemd_analyze
def test_units_pass_systemd_analyze_user_verify(tmp_path: Path, units: Path) -> None:
    result = verify_user(tmp_path, units / "actantd.service", units / "actantd.socket")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@needs_systemd_analyze
def test_verify_does_complain_about_a_bad_setting(tmp_path: Path, units: Path) -> None:
    """Control: proves that the silence asserted above is meaningful in this environment."""
    service = units / "actantd.service"
    service.write_text(service.read_text().replace("KillMode=mixed", "KillMode=sometimes"))
    result = verify_user(tmp_path, service, units / "actantd.socket")
    assert "sometimes" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# sd_notify


@pytest.fixture
def listener(short_tmp: Path) -> Iterator[tuple[socket.socket, str]]:
    path = short_tmp / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


def test_notify_sends_one_datagram_to_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1\nSTATUS=listening on /run/x.sock", env={"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on /run/x.sock"
    assert notify("STOPPING=1", env={"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"STOPPING=1"


def test_notify_reads_the_process_environment_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1") is True
    assert sock.recv(4096) == b"READY=1"


def test_notify_to_an_abstract_socket() -> None:
    name = f"actant-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("READY=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}])
def test_notify_is_a_no_op_without_a_unix_notify_socket(env: dict[str, str]) -> None:
    assert notify("READY=1", env=env) is False


def test_notify_to_a_missing_socket_returns_false(short_tmp: Path) -> None:
    assert notify("READY=1", env={"NOTIFY_SOCKET": str(short_tmp / "gone")}) is False
