"""The results table: one row per benchmark figure, printed for people and written as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

PASS = "PASS"
FAIL = "FAIL"
ERROR = "ERROR"


@dataclass
class Row:
    key: str
    """The ``--only`` name of the benchmark that produced the row."""
    figure: str
    target: str
    actant: str = "n/a"
    peer: str = "—"
    """The peers' figures measured in the same run (supervisord, circus, PM2), named in the cell."""
    result: str = ERROR
    notes: list[str] = field(default_factory=list)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


HEADERS = ("#", "Figure", "Target", "Actant", "Peer (same run)", "Result")


def _cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [(str(i), r.figure, r.target, r.actant, r.peer, r.result) for i, r in enumerate(rows, 1)]


def render_text(rows: list[Row], machine: str, header: str) -> str:
    cells = _cells(rows)
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(HEADERS)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [header, machine, "", line(HEADERS), line(tuple("-" * w for w in widths))]
    out.extend(line(c) for c in cells)
    out.append("")
    out.append("Notes:")
    for i, row in enumerate(rows, 1):
        for j, note in enumerate(row.notes):
            prefix = f"  [{i}] " if j == 0 else " " * (len(str(i)) + 5)
            out.append(prefix + note)
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(rows: list[Row], machine: str, header: str) -> str:
    out = ["# Actant benchmarks", "", header.replace("\n", "  \n"), "", f"**Machine:** {machine}", ""]
    out.append("| " + " | ".join(HEADERS) + " |")
    out.append("|" + "|".join("---" for _ in HEADERS) + "|")
    for c in _cells(rows):
        out.append("| " + " | ".join(_md(v) for v in c) + " |")
    out.append("")
    out.append("Notes:")
    out.append("")
    for i, row in enumerate(rows, 1):
        if not row.notes:
            continue
        out.append(f"{i}. {_md(row.notes[0])}")
        out.extend(f"   - {_md(note)}" for note in row.notes[1:])
    return "\n".join(out) + "\n"
