"""Instance env values (``agent create -e KEY=VALUE``) kept out of the workspace.

The workspace is the agent's to read (and, with ``--work-dir``, the user's repository), so ``.actant.json``
records only the *names* of the instance's variables (each value shown as :data:`REDACTED`); the values live
in ``{home}/secrets/<name>.json``, mode 0600 in a 0700 directory, written atomically before the instance
appears and deleted after it is destroyed. The launch spec merges them back in. A record from before this
split still carries its values and keeps working (:func:`launch_env`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from actantd.fsutil import atomic_write
from actantd.instances.record import InstanceRecord, Overrides
from actantd.paths import Layout

REDACTED = "********"


def path(layout: Layout, name: str) -> Path:
    return layout.home / "secrets" / f"{name}.json"


def redacted(overrides: Overrides) -> Overrides:
    return msgspec.structs.replace(overrides, env=dict.fromkeys(overrides.env, REDACTED))


def save(layout: Layout, name: str, env: Mapping[str, str]) -> None:
    target = path(layout, name)
    if not env:
        remove(layout, name)
        return
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(target, msgspec.json.encode(dict(env)) + b"\n", mode=0o600)


def load(layout: Layout, name: str) -> dict[str, str]:
    try:
        raw = path(layout, name).read_bytes()
    except FileNotFoundError:
        return {}
    try:
        return msgspec.json.decode(raw, type=dict[str, str])
    except msgspec.DecodeError:
        return {}


def remove(layout: Layout, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path(layout, name))


def launch_env(record: InstanceRecord, layout: Layout) -> dict[str, str]:
    """The instance's env with real values: the secrets file over what the record holds (older records
    still carry values; :data:`REDACTED` placeholders are never passed on)."""
    env = {k: v for k, v in record.overrides.env.items() if v != REDACTED}
    env.update(load(layout, record.name))
    return env
