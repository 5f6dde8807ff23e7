"""Every file each backend's materializer writes, byte for byte against ``tests/fixtures/materialize/<backend>/``.

To regenerate after an intended change: ``ACTANT_REGEN_FIXTURES=1 pytest tests/materialize/test_fixtures.py``,
then read the diff: the fixtures are the contract of what each CLI is given.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from actantd import materialize
from tests.materialize.helpers import BACKENDS, FIXTURES, SECRET, fixture_registry, tree


@pytest.mark.parametrize("backend", BACKENDS)
def test_files_match_fixture(tmp_path: Path, backend: str) -> None:
    registry = fixture_registry(tmp_path)
    resolved = registry.resolve(f"kit-{backend}")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = materialize.materialize(workspace, resolved)
    assert result.files == sorted(materialize.plan(resolved))
    expected_dir = FIXTURES / backend
    if os.environ.get("ACTANT_REGEN_FIXTURES"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(workspace, expected_dir)
    assert tree(workspace) == tree(expected_dir)
    for rel, data in tree(workspace).items():
        assert SECRET.encode() not in data, f"{rel} holds the template's env value"
        if rel.endswith(".json"):
            import json

            json.loads(data)
        elif rel.endswith(".toml"):
            tomllib.loads(data.decode())


def test_second_write_changes_nothing(tmp_path: Path) -> None:
    resolved = fixture_registry(tmp_path).resolve("kit-claude-code")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    first = materialize.materialize(workspace, resolved)
    again = materialize.materialize(workspace, resolved, first.files)
    assert again.written == [] and again.removed == [] and again.files == first.files
