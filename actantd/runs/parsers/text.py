"""Plain output (custom backends): the whole stdout is the result; nothing else is known."""

from __future__ import annotations

from actantd.runs.parsers.base import Report


def parse(stdout: str) -> Report:
    return Report(result=stdout)
