"""Record → wire dict shaping: what ``agent.*`` results look like (docs/protocol.md is the contract).

Field names are the record's camelCase names; ``agent.status`` adds ``live`` figures, ``logDir`` and
``workspace``. The instance layer returns records; only the RPC layer knows how they travel.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from actantd.instances import secret_env
from actantd.instances.record import InstanceRecord
from actantd.launch import LaunchSpec
from actantd.supervisor.metrics import Figures


def agent(record: InstanceRecord) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(record)
    return out


def agent_list(records: Iterable[InstanceRecord], status: str | None, template: str | None) -> list[dict[str, Any]]:
    """Records sorted by name, filtered by exact status and template when given."""
    out = []
    for record in sorted(records, key=lambda r: r.name):
        if status is not None and record.status.value != status:
            continue
        if template is not None and record.template_ref != template:
            continue
        out.append(agent(record))
    return out


def live(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "cpuPercent": figures.cpu_percent,
        "rssBytes": figures.rss_bytes,
        "uptimeSeconds": figures.uptime_seconds,
        "children": figures.children,
    }


def agent_status(record: InstanceRecord, figures: Figures | None, log_dir: Path, workspace: Path) -> dict[str, Any]:
    out = agent(record)
    out["live"] = live(figures)
    out["logDir"] = str(log_dir)
    out["workspace"] = str(workspace)
    return out


MASK = secret_env.REDACTED
"""One placeholder for a hidden value, in a launch spec and in ``.actant.json`` alike."""


def launch_spec(spec: LaunchSpec, mode: str, secret: Iterable[str], *, reveal: bool) -> dict[str, Any]:
    """``agent.launchSpec``: argv, cwd and the env Actant adds, with ``secret`` values masked unless
    ``reveal`` (``masked`` lists the names, so a client can say which ones to supply itself)."""
    hidden = set() if reveal else set(secret)
    env = {k: (MASK if k in hidden else v) for k, v in sorted(spec.env.items())}
    return {"argv": list(spec.argv), "env": env, "cwd": str(spec.cwd), "mode": mode, "masked": sorted(hidden),
            "installHint": spec.install_hint}  # fmt: skip
