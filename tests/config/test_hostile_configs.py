"""Class 1 of issue #10: whatever one config file holds, it is that file's error, never the daemon's.

A JSON document nested deeper than the recursion limit, or an integer literal too long to convert, used to
raise out of the loader: ``actantd`` exited at start-up with a traceback, and hot reload aborted silently.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from actantd.config.parse import parse_bytes
from actantd.config.store import bundled_configs_dir, load_registry
from actantd.config.watch import ConfigWatcher, Reload
from tests.harness import Daemon

DEEP = b'{"version": "1.0", "name": "deep", "content": "x", "extra": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
HUGE_INT = b'{"version": "1.0", "name": "huge", "content": "x", "extra": ' + b"9" * 5000 + b"}"
HUGE_NEG = b"-" + b"9" * 5000
HOSTILE = {"deep": DEEP, "huge": HUGE_INT, "neg": HUGE_NEG}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parse_bytes_turns_any_document_into_issues(name: str) -> None:
    parsed, issues = parse_bytes(HOSTILE[name], f"skills/{name}.json", name, "skill")
    assert parsed is None
    assert len(issues) == 1 and issues[0].file == f"skills/{name}.json", issues


def test_folder_with_hostile_files_loads_everything_else(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    for name, data in HOSTILE.items():
        (configs / "skills" / f"{name}.json").write_bytes(data)
    result = load_registry(configs)
    bad = {i.file for i in result.errors}
    assert bad == {f"skills/{n}.json" for n in HOSTILE}, [str(i) for i in result.errors]
    assert "code-reviewer" in result.registry.templates
    assert any("nested too deeply" in i.message for i in result.errors)


async def test_hot_reload_reports_the_bad_file_and_keeps_reloading(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    reloads: list[Reload] = []

    async def on_reload(reload: Reload) -> None:
        reloads.append(reload)

    watcher = ConfigWatcher(configs, on_reload)
    (configs / "skills" / "deep.json").write_bytes(DEEP)
    first = await watcher.reload()
    assert [i.file for i in first.result.errors] == ["skills/deep.json"]
    skill = configs / "skills" / "code-review.json"
    doc = json.loads(skill.read_text())
    doc["description"] = "edited after a bad file"
    skill.write_text(json.dumps(doc))
    second = await watcher.reload()
    assert ("skill", "code-review") in second.changed
    assert watcher.registry.skills["code-review"].description == "edited after a bad file"
    assert len(reloads) == 2


async def test_a_failing_folder_load_is_a_reported_error_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    watcher = ConfigWatcher(configs)
    before = watcher.registry

    def boom(*_a: object) -> None:
        raise RecursionError("simulated")

    monkeypatch.setattr("actantd.config.watch.load_registry", boom)
    reload = await asyncio.wait_for(watcher.reload(), 10)
    assert reload.registry is before
    assert reload.result.errors and "cannot load the configs folder" in reload.result.errors[0].message


def test_daemon_starts_with_hostile_config_files(short_tmp: Path) -> None:
    configs = short_tmp / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    for name, data in HOSTILE.items():
        (configs / "skills" / f"{name}.json").write_bytes(data)
    daemon = Daemon(short_tmp, configs)
    daemon.start()
    try:
        result = daemon.call("config.validate")
        for name in HOSTILE:
            assert any(e.startswith(f"skills/{name}.json: ") for e in result["errors"]), result["errors"]
        assert daemon.call("daemon.ping") is not None
    finally:
        assert daemon.stop() == 0
