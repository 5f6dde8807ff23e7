"""Class 11 of issue #10: ``--work-dir`` may never be a system directory, ``/``, or the configs folder, and
``~`` is never expanded by the daemon (its home is not the caller's).

Before: ``/etc``, ``/dev`` and the configs folder were accepted, and ``~`` expanded to the daemon's home.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actantd.instances.workdir_rules import refused_reason, unexpanded_problem
from tests.harness import RpcError, running_daemon


@pytest.mark.parametrize(
    "path", ["/", "/etc", "/etc/ssh", "/dev", "/dev/shm", "/proc/self", "/usr/bin", "/tmp", "/home"]
)
def test_system_and_shared_directories_are_refused(path: str) -> None:
    assert refused_reason(Path(path), configs=Path("/srv/cfg")) is not None


def test_project_folders_are_fine_and_configs_overlap_is_not(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    assert refused_reason(tmp_path / "proj", configs=configs) is None
    assert refused_reason(configs, configs=configs) is not None
    assert refused_reason(configs / "skills", configs=configs) is not None
    assert refused_reason(tmp_path, configs=configs) is not None  # contains the configs folder
    assert unexpanded_problem("~/proj") is not None and unexpanded_problem("rel/dir") is not None
    assert unexpanded_problem("/abs") is None


def test_the_daemon_refuses_them(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        for n, work_dir in enumerate(["/etc", "/dev", "/", str(daemon.configs), "~/proj", "/tmp/../etc"]):
            with pytest.raises(RpcError) as info:
                daemon.call("agent.create", {"name": f"w{n}", "template": "sleeper", "workDir": work_dir})
            assert info.value.error_code == "WORKSPACE_INIT", (work_dir, info.value.error)
        link = short_tmp / "to-etc"
        link.symlink_to("/etc")
        with pytest.raises(RpcError) as info:
            daemon.call("agent.create", {"name": "wl", "template": "sleeper", "workDir": str(link)})
        assert "system directory" in str(info.value)
