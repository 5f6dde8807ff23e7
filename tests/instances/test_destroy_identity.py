"""Class 8 of issue #10: destroy removes only what it can prove is this instance's.

Before: if an instance's directory (or its ``--work-dir``) was replaced by a symlink to another workspace
between create and destroy, destroy deleted the other instance's files. Now destroy checks the entry kind,
the directory identity recorded at create (``st_dev``/``st_ino``) and the ``instanceId`` in the record,
and refuses (DESTROY_REFUSED, nothing removed) when any differs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.harness import RpcError, running_daemon


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _refused(call: object) -> RpcError:
    with pytest.raises(RpcError) as info:
        call()  # type: ignore[operator]
    assert info.value.error_code == "DESTROY_REFUSED", info.value.error
    return info.value


def test_an_instance_dir_swapped_for_a_symlink_to_another_is_refused(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        daemon.call("agent.create", {"name": "a", "template": "code-reviewer"})
        daemon.call("agent.create", {"name": "b", "template": "code-reviewer"})
        instances = daemon.home / "instances"
        before = _files(instances / "b")
        os.rename(instances / "a", short_tmp / "a-moved")
        (instances / "a").symlink_to(instances / "b")
        _refused(lambda: daemon.call("agent.destroy", {"name": "a", "force": True}))
        assert _files(instances / "b") == before
        # A copy of b's directory in a's place: another inode, another instanceId.
        (instances / "a").unlink()
        shutil.copytree(instances / "b", instances / "a", symlinks=True)
        _refused(lambda: daemon.call("agent.destroy", {"name": "a"}))
        assert _files(instances / "b") == before
        # Put the real one back: destroy proceeds.
        shutil.rmtree(instances / "a")
        os.rename(short_tmp / "a-moved", instances / "a")
        assert daemon.call("agent.destroy", {"name": "a"})["destroyed"] is True
        assert _files(instances / "b") == before


def test_a_work_dir_swapped_for_a_symlink_to_another_workspace_is_refused(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        w1, w2 = short_tmp / "w1", short_tmp / "w2"
        w1.mkdir()
        w2.mkdir()
        (w2 / "mine.txt").write_text("user file")
        daemon.call("agent.create", {"name": "one", "template": "code-reviewer", "workDir": str(w1)})
        daemon.call("agent.create", {"name": "two", "template": "code-reviewer", "workDir": str(w2)})
        before = _files(w2)
        os.rename(w1, short_tmp / "w1-moved")
        w1.symlink_to(w2)
        error = _refused(lambda: daemon.call("agent.destroy", {"name": "one"}))
        assert "replaced" in str(error)
        assert _files(w2) == before
        w1.unlink()
        os.rename(short_tmp / "w1-moved", w1)
        assert daemon.call("agent.destroy", {"name": "one"})["destroyed"] is True
        assert _files(w2) == before
        assert not (w1 / ".actant.json").exists()
