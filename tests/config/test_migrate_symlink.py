"""Class 11 of issue #10: ``config migrate`` writes through a symlinked config to its target.

Before: the symlink was replaced by a regular file (the atomic rename landed on the link), so a config kept
in a dotfiles repository and linked into the folder silently stopped being that file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from actantd.config.migrations.runner import migrate

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "configs-0.9"


def test_a_symlinked_config_stays_a_symlink_and_its_target_is_migrated(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(FIXTURES, configs)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    skill = configs / "skills" / "code-review.json"
    target = dotfiles / "code-review.json"
    shutil.move(skill, target)
    skill.symlink_to(target)
    report = migrate(configs)
    assert any(c.path.as_posix() == "skills/code-review.json" for c in report.changed)
    assert skill.is_symlink() and skill.resolve() == target.resolve()
    assert json.loads(target.read_text())["version"] == "1.0"
