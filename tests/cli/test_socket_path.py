"""``paths.socket_path`` (strings, what the CLI uses) is the socket path ``pathlib`` computed before it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actantd import paths

VALUES = ["a", "./a.sock", "a//b/", "../x.sock", "/abs//x/", "//net/x", "///three/x", "~", "~/s.sock", "~//y",
          "/a/../b", ".", "/"]  # fmt: skip
VARIABLES = ["ACTANT_SOCKET", "XDG_RUNTIME_DIR", "ACTANT_HOME", "XDG_STATE_HOME"]


def pathlib_reference(socket: str | None, home: str | None, env: dict[str, str]) -> Path:
    """The function as it was written with pathlib."""

    def from_env(var: str) -> Path | None:
        value = env.get(var)
        return Path(value).expanduser() if value else None

    if socket:
        return Path(socket).expanduser().absolute()
    explicit = from_env("ACTANT_SOCKET")
    if explicit is not None:
        return explicit.absolute()
    runtime = from_env("XDG_RUNTIME_DIR")
    if runtime is not None:
        return (runtime / "actant" / "actantd.sock").absolute()
    if home:
        return (Path(home).expanduser() / "actantd.sock").absolute()
    base = from_env("ACTANT_HOME")
    if base is None:
        base = (from_env("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "actant"
    return (base / "actantd.sock").absolute()


@pytest.mark.parametrize("socket", [None, *VALUES])
@pytest.mark.parametrize("home", [None, "h", "~/h/"])
def test_socket_path_matches_pathlib(socket: str | None, home: str | None) -> None:
    for var in [None, *VARIABLES]:
        for value in VALUES:
            env = {} if var is None else {var: value}
            expected = pathlib_reference(socket, home, env)
            assert paths.socket_path(socket, home, env) == str(expected), (socket, home, env)
            assert paths.resolve_socket(socket, home, env) == expected


def test_default_dirs_match_pathlib() -> None:
    home = Path.home()
    assert paths.default_home({}) == home / ".local" / "state" / "actant"
    assert paths.default_configs({}) == home / ".config" / "actant"
    assert paths.default_home({"ACTANT_HOME": "rel/./h/"}) == Path.cwd() / "rel" / "h"
    assert paths.default_configs({"XDG_CONFIG_HOME": "~/c"}) == home / "c" / "actant"
    assert paths.socket_path(None, None, {"XDG_RUNTIME_DIR": "/run/user/1"}) == "/run/user/1/actant/actantd.sock"
    assert os.path.isabs(paths.socket_path())
