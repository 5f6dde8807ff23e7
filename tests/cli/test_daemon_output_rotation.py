"""``actantd.out`` (the output of a daemon started by ``actantctl daemon start``) is rotated at each start once
it is over its size, keeping a few old copies (issue #11)."""

from __future__ import annotations

from pathlib import Path

from actantctl.commands.daemon import OUTPUT_FILE, rotate_output


def test_rotates_when_over_the_limit_and_keeps_the_last_copies(tmp_path: Path) -> None:
    out = tmp_path / OUTPUT_FILE
    out.write_text("small\n")
    assert rotate_output(tmp_path, max_bytes=100, backups=2) is False
    assert out.read_text() == "small\n"
    for generation in ("first", "second", "third"):
        out.write_text(generation * 50)
        assert rotate_output(tmp_path, max_bytes=100, backups=2) is True
        assert not out.exists()
    assert (tmp_path / f"{OUTPUT_FILE}.1").read_text() == "third" * 50
    assert (tmp_path / f"{OUTPUT_FILE}.2").read_text() == "second" * 50
    assert not (tmp_path / f"{OUTPUT_FILE}.3").exists(), "only `backups` copies are kept"


def test_no_file_no_rotation(tmp_path: Path) -> None:
    assert rotate_output(tmp_path) is False
