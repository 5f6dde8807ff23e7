"""Config migrations: the 0.9 → 1.0 step, the runner's backup/atomic/idempotent rules, on real fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from actantd.config.migrations import (
    CURRENT_VERSION,
    STEPS,
    migrate,
    migrate_document,
    plan,
)
from actantd.config.migrations import v0_9_to_1_0 as step
from actantd.config.store import load_registry
from actantd.errors import MigrationError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "configs-0.9"
BUNDLED = Path(__file__).resolve().parents[2] / "configs"
OLD_FILES = [
    "mcp/filesystem.json",
    "mcp/github.json",
    "prompts/system-prompts/code-reviewer.json",
    "skills/code-review.json",
    "skills/typescript-expert.json",
    "templates/ci-agent.json",
    "templates/code-reviewer.json",
    "workflows/trellis-standard.json",
]


@pytest.fixture
def old_configs(tmp_path: Path) -> Path:
    dest = tmp_path / "configs"
    shutil.copytree(FIXTURE, dest)
    return dest


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read(root: Path, rel: str) -> dict[str, Any]:
    data = json.loads((root / rel).read_text())
    assert isinstance(data, dict)
    return data


# --- the step registry ----------------------------------------------------------------------------------


def test_registry_chains_to_current() -> None:
    assert CURRENT_VERSION == "1.0"
    assert STEPS["0.9"] is step
    assert (step.FROM, step.TO) == ("0.9", "1.0")


def test_migrate_document_is_pure_and_reports_trail() -> None:
    doc = {"version": "0.9", "name": "x", "body": "hi"}
    out, trail = migrate_document("skill", doc)
    assert out == {"version": "1.0", "name": "x", "content": "hi"}
    assert trail == ["0.9", "1.0"]
    assert doc == {"version": "0.9", "name": "x", "body": "hi"}


def test_migrate_document_unknown_version() -> None:
    with pytest.raises(MigrationError):
        migrate_document("skill", {"version": "0.5", "name": "x"})


# --- the 0.9 → 1.0 step ---------------------------------------------------------------------------------


def test_step_template() -> None:
    out = step.migrate(
        "template",
        {
            "version": "0.9",
            "name": "t",
            "backend_type": "cursor",
            "launch_mode": "one-shot",
            "workspace_policy": "persistent",
            "permissions": "read-only",
            "skills": [{"name": "a"}, "b"],
            "mcp_servers": [{"name": "fs"}],
            "workflow": {"name": "wf"},
            "restart": "always",
            "max_restarts": 2,
            "env": {"snake_key": "v"},
            "stop_timeout": 3,
        },
    )
    assert out == {
        "version": "1.0",
        "name": "t",
        "backend": "cursor-agent",
        "launchMode": "OneShot",
        "workspacePolicy": "Persistent",
        "permissions": "ReadOnly",
        "skills": ["a", "b"],
        "mcpServers": ["fs"],
        "workflow": "wf",
        "restart": {"policy": "Always", "maxRestarts": 2},
        "env": {"snake_key": "v"},
        "stopTimeoutSeconds": 3,
    }


def test_step_mcp() -> None:
    assert step.migrate("mcp", {"version": "0.9", "name": "m", "cmd": "npx", "args": ["x"]}) == {
        "version": "1.0",
        "name": "m",
        "command": "npx",
        "args": ["x"],
    }
    remote = step.migrate("mcp", {"version": "0.9", "name": "r", "transport": "SSE", "url": "https://x"})
    assert remote == {"version": "1.0", "name": "r", "type": "sse", "url": "https://x"}


# --- plan and dry run change nothing --------------------------------------------------------------------


def test_plan_lists_old_files_and_writes_nothing(old_configs: Path) -> None:
    before = snapshot(old_configs)
    changes = plan(old_configs)
    assert [c.path.as_posix() for c in changes] == OLD_FILES
    assert {(c.from_version, c.to_version) for c in changes} == {("0.9", "1.0")}
    assert all(c.problems == () for c in changes)
    assert snapshot(old_configs) == before


def test_dry_run_reports_and_writes_nothing(old_configs: Path) -> None:
    before = snapshot(old_configs)
    report = migrate(old_configs, dry_run=True)
    assert report.dry_run and report.backup_dir is None
    assert [c["file"] for c in report.to_dict()["changed"]] == OLD_FILES
    assert snapshot(old_configs) == before
    assert not (old_configs / ".backup").exists()


# --- migrate --------------------------------------------------------------------------------------------


def test_migrate_backs_up_then_rewrites_and_the_folder_loads(old_configs: Path) -> None:
    before = snapshot(old_configs)
    assert not load_registry(old_configs).ok

    report = migrate(old_configs, dry_run=False)

    assert [c.path.as_posix() for c in report.changed] == OLD_FILES
    assert report.skipped == []
    backup = report.backup_dir
    assert backup is not None and backup.parent == old_configs / ".backup"
    assert backup.name.endswith("Z") and backup.name[:8].isdigit()
    assert snapshot(backup) == {rel: before[rel] for rel in OLD_FILES}  # byte-identical originals
    after = snapshot(old_configs)
    assert after["backends/claude-code.json"] == before["backends/claude-code.json"]  # current: untouched

    result = load_registry(old_configs)
    assert [str(e) for e in result.errors] == []
    # The one warning is true of the migrated file: its custom-backend template has explicit permission rules
    # that no file of an arbitrary program can carry (reported, never silently dropped).
    assert [str(w) for w in result.warnings] == [
        "templates/ci-agent.json: $.permissions: template 'ci-agent', backend 'custom' (custom): the custom "
        "backend has no permission file, so the rules are not applied"
    ]
    assert set(result.registry.templates) == {"code-reviewer", "ci-agent"}
    assert [s.name for s in result.registry.resolve("code-reviewer").skills] == ["typescript-expert", "code-review"]
    assert not list(old_configs.rglob("*.tmp"))


def test_migrated_output_is_canonical(old_configs: Path) -> None:
    migrate(old_configs)
    text = (old_configs / "templates/ci-agent.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "version": "1.0",\n  "name": "ci-agent",\n')
    doc = read(old_configs, "templates/ci-agent.json")
    assert list(doc) == [
        "version",
        "name",
        "backend",
        "launchMode",
        "command",
        "skills",
        "mcpServers",
        "permissions",
        "workspacePolicy",
        "env",
        "restart",
        "stopSignal",
        "stopTimeoutSeconds",
        "healthCheck",
    ]
    assert doc["command"] == ["python3", "agent.py", "--mode", "fix ci"]
    assert doc["env"] == {"LOG_LEVEL": "debug", "MY_SNAKE_VAR": "kept_as_is"}
    assert doc["healthCheck"] == {
        "command": ["test", "-f", "ready"],
        "intervalSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 4,
    }
    assert read(old_configs, "mcp/github.json")["headers"] == {"X_Custom_Header": "1"}
    assert read(old_configs, "skills/code-review.json") == {
        "version": "1.0",
        "name": "code-review",
        "description": "Review changes",
        "content": "# Code review\n\nCorrectness first.\n",
    }


def test_migrate_is_idempotent(old_configs: Path) -> None:
    migrate(old_configs)
    after_first = snapshot(old_configs)
    mtimes = {p: p.stat().st_mtime_ns for p in old_configs.rglob("*.json")}
    second = migrate(old_configs)
    assert second.changed == [] and second.skipped == [] and second.backup_dir is None
    assert snapshot(old_configs) == after_first
    assert {p: p.stat().st_mtime_ns for p in old_configs.rglob("*.json")} == mtimes
    assert len(list((old_configs / ".backup").iterdir())) == 1


def test_two_runs_get_distinct_backup_folders(old_configs: Path) -> None:
    first = migrate(old_configs)
    shutil.copy(FIXTURE / "skills/code-review.json", old_configs / "skills/code-review.json")
    second = migrate(old_configs)
    assert first.backup_dir != second.backup_dir
    assert [c.path.as_posix() for c in second.changed] == ["skills/code-review.json"]
    assert second.backup_dir is not None
    assert snapshot(second.backup_dir) == {
        "skills/code-review.json": (FIXTURE / "skills/code-review.json").read_bytes()
    }


def test_newer_unreadable_and_unversioned_files_are_reported_not_touched(old_configs: Path) -> None:
    (old_configs / "skills/future.json").write_text('{"version": "2.0", "name": "future", "content": "x"}')
    (old_configs / "skills/partial.json").write_text('{"version": "0.9", "na')
    (old_configs / "skills/unversioned.json").write_text('{"name": "unversioned", "body": "x"}')
    (old_configs / "skills/ancient.json").write_text('{"version": "0.1", "name": "ancient", "body": "x"}')
    extra = ["skills/ancient.json", "skills/future.json", "skills/partial.json", "skills/unversioned.json"]
    before = snapshot(old_configs)

    report = migrate(old_configs)

    reasons = {s.path.as_posix(): s.reason for s in report.skipped}
    assert sorted(reasons) == extra
    assert "newer than this Actant" in reasons["skills/future.json"]
    assert reasons["skills/partial.json"].startswith("cannot read")
    assert "no string `version`" in reasons["skills/unversioned.json"]
    assert "no migration from version '0.1'" in reasons["skills/ancient.json"]
    for rel in extra:
        assert (old_configs / rel).read_bytes() == before[rel]
    assert [c.path.as_posix() for c in report.changed] == OLD_FILES
    assert report.to_dict()["skipped"][1]["file"] == "skills/future.json"


def test_migrated_problems_are_reported(old_configs: Path) -> None:
    (old_configs / "skills/typo.json").write_text('{"version": "0.9", "name": "typo", "body": "x", "colour": 1}')
    change = next(c for c in plan(old_configs) if c.path.name == "typo.json")
    assert change.problems == ("skills/typo.json: $.colour: unknown field 'colour'",)


def test_backup_and_temp_files_are_invisible_to_the_loader(old_configs: Path) -> None:
    migrate(old_configs)
    # The backup holds 0.9 files; if the loader saw them they would be errors and duplicates.
    assert load_registry(old_configs).ok


def test_bundled_configs_need_no_migration() -> None:
    assert plan(BUNDLED) == []
