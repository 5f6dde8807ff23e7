"""A real ``actantd`` on the fixture configs, with its own fake user HOME (for trust files)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.harness import Daemon, served
from tests.materialize.helpers import fixture_configs


class HomeDaemon(Daemon):
    """The daemon's ``HOME`` is a temp dir, so global trust entries land in files the test owns."""

    def __init__(self, root: Path, configs: Path) -> None:
        super().__init__(root, configs)
        self.user_home = root / "user"
        self.user_home.mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["HOME"] = str(self.user_home)
        for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
            env.pop(var, None)
        return env


@contextlib.contextmanager
def fixture_daemon(root: Path) -> Iterator[HomeDaemon]:
    """Starts on ``root/configs`` (the fixture configs, copied there unless the caller prepared it)."""
    configs = root / "configs"
    with served(HomeDaemon(root, configs if configs.exists() else fixture_configs(configs))) as d:
        yield d
