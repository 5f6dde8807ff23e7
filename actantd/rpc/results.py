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


def agent_list(records: Iterable[InstanceRecord], status: str | None, template: str | None) -> list[msgspec.Raw]:
    """Records sorted by name, filtered by exact status and template when given, each already JSON.

    Each record is encoded once per change, not once per call (:class:`_EncodedRecords`): a record is
    immutable and replaced on every transition, so its identity says whether the cached bytes are current.
    With 1,000 agents that turns a list into a sort and a copy of bytes. The reply encoder embeds
    :class:`msgspec.Raw` as it is; in-process callers that want dicts use :func:`agent`.
    """
    return [_encoded.get(record) for record in select(records, status, template)]


def select(records: Iterable[InstanceRecord], status: str | None, template: str | None) -> list[InstanceRecord]:
    """Records sorted by name, filtered by exact status and template when given."""
    return [
        r
        for r in sorted(records, key=lambda r: r.name)
        if (status is None or r.status.value == status) and (template is None or r.template_ref == template)
    ]


class _EncodedRecords:
    """name → (the record last encoded, its JSON). The list handler prunes destroyed instances' entries
    once there are more than twice as many entries as instances."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[InstanceRecord, msgspec.Raw]] = {}
        self._encoder = msgspec.json.Encoder()

    def get(self, record: InstanceRecord) -> msgspec.Raw:
        hit = self._cache.get(record.name)
        if hit is not None and hit[0] is record:
            return hit[1]
        raw = msgspec.Raw(self._encoder.encode(record))
        self._cache[record.name] = (record, raw)
        return raw

    def prune(self, live: Iterable[str]) -> None:
        keep = set(live)
        for name in [n for n in self._cache if n not in keep]:
            del self._cache[name]


_encoded = _EncodedRecords()


def cache_size() -> int:
    return len(_encoded._cache)


def prune_encoded(names: Iterable[str]) -> None:
    """Forget cached encodings of instances that no longer exist (called with every current name)."""
    _encoded.prune(names)


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
