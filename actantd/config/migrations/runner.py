"""Apply the version steps to a configs folder: survey, back up, rewrite atomically.

Order matters for the user's files: every file that will change is copied to
``{configs}/.backup/<UTC timestamp>/<relpath>`` before the first one is rewritten, and each rewrite is a
temp file + fsync + ``os.replace``, so a crash leaves every file either old or new, with the old one saved.
The backup folder is hidden, so the loader and the watcher ignore it. Output is canonical (indent 2, keys in
schema order, trailing newline) so a second run finds nothing to do and diffs under git stay readable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from actantd.config.files import UnreadableConfig, iter_config_files, read_config_bytes
from actantd.config.issues import from_validation_error
from actantd.config.migrations.steps import CURRENT_VERSION, is_newer, migrate_document
from actantd.config.schema import FOLDER_TO_KIND, KIND_TYPES, Kind
from actantd.errors import MigrationError
from actantd.fsutil import atomic_write, fsync_dir

BACKUP_DIR = ".backup"


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file the migration rewrites (or would, in a dry run)."""

    path: Path  # relative to the configs folder
    kind: Kind
    from_version: str
    to_version: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    problems: tuple[str, ...] = ()  # schema problems left in the migrated document, for the user to fix

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.path.as_posix(),
            "kind": self.kind,
            "fromVersion": self.from_version,
            "toVersion": self.to_version,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file the migration leaves alone, and why (newer version, unreadable, no path to current)."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.path.as_posix(), "reason": self.reason}


@dataclass(slots=True)
class MigrationReport:
    configs_dir: Path
    dry_run: bool
    changed: list[FileChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    backup_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "configsDir": str(self.configs_dir),
            "dryRun": self.dry_run,
            "currentVersion": CURRENT_VERSION,
            "changed": [c.to_dict() for c in self.changed],
            "skipped": [s.to_dict() for s in self.skipped],
            "backupDir": str(self.backup_dir) if self.backup_dir else None,
        }


# --- canonical output -----------------------------------------------------------------------------------


def _ordered(value: Any, t: mi.Type | None) -> Any:
    """Keys in schema field order (then unknown keys, sorted), recursively through nested Structs."""
    if isinstance(t, mi.UnionType):
        structs = [x for x in t.types if isinstance(x, mi.StructType)]
        t = structs[0] if len(structs) == 1 and isinstance(value, dict) else None
    if isinstance(value, dict) and isinstance(t, mi.StructType):
        fields = {f.encode_name: f.type for f in t.fields}
        out = {k: _ordered(value[k], fields[k]) for k in fields if k in value}
        out.update({k: value[k] for k in sorted(value) if k not in fields})
        return out
    return value


def render(kind: Kind, doc: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a config document."""
    ordered = _ordered(dict(doc), mi.type_info(KIND_TYPES[kind]))
    return msgspec.json.format(msgspec.json.encode(ordered), indent=2) + b"\n"


# --- survey ---------------------------------------------------------------------------------------------


def _problems(kind: Kind, rel: Path, doc: Mapping[str, Any]) -> tuple[str, ...]:
    try:
        msgspec.convert(doc, KIND_TYPES[kind])
    except msgspec.ValidationError as exc:
        return (str(from_validation_error(rel.as_posix(), exc, KIND_TYPES[kind])),)
    return ()


def _survey(configs_dir: Path) -> tuple[list[FileChange], list[Skipped]]:
    changes: list[FileChange] = []
    skipped: list[Skipped] = []
    for path in iter_config_files(configs_dir):
        rel = path.relative_to(configs_dir)
        kind = FOLDER_TO_KIND.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if kind is None:
            continue  # not a config (the loader warns about it)
        try:
            doc = msgspec.json.decode(read_config_bytes(path))  # regular files of bounded size only
        except UnreadableConfig as exc:
            skipped.append(Skipped(rel, str(exc)))
            continue
        except RecursionError:
            skipped.append(Skipped(rel, "cannot read: JSON nested too deeply"))
            continue
        except (msgspec.DecodeError, ValueError) as exc:
            skipped.append(Skipped(rel, f"cannot read: {exc}"))
            continue
        if not isinstance(doc, dict):
            skipped.append(Skipped(rel, "not a JSON object"))
            continue
        version = doc.get("version")
        if version == CURRENT_VERSION:
            continue
        if not isinstance(version, str):
            skipped.append(Skipped(rel, "no string `version` field; cannot tell which format it is"))
            continue
        if is_newer(version):
            skipped.append(Skipped(rel, f"version {version} is newer than this Actant ({CURRENT_VERSION}); untouched"))
            continue
        try:
            after, _trail = migrate_document(kind, doc)
        except MigrationError as exc:
            skipped.append(Skipped(rel, exc.message))
            continue
        except Exception as exc:  # a step choking on a malformed old file must not stop the others
            skipped.append(Skipped(rel, f"migration failed: {type(exc).__name__}: {exc}"))
            continue
        changes.append(FileChange(rel, kind, version, CURRENT_VERSION, doc, after, _problems(kind, rel, after)))
    return changes, skipped


def plan(configs_dir: Path) -> list[FileChange]:
    """The files :func:`migrate` would rewrite, without touching anything."""
    return _survey(Path(configs_dir).absolute())[0]


# --- writing --------------------------------------------------------------------------------------------


def _new_backup_dir(configs_dir: Path) -> Path:
    root = configs_dir / BACKUP_DIR
    root.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        candidate = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise MigrationError("cannot create a backup folder", backupRoot=str(root))


def _backup(configs_dir: Path, changes: Iterable[FileChange]) -> Path:
    dest = _new_backup_dir(configs_dir)
    for change in changes:
        target = dest / change.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(configs_dir / change.path, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(dest)
    return dest


def migrate(configs_dir: Path, dry_run: bool = False) -> MigrationReport:
    """Bring every config file under ``configs_dir`` to :data:`CURRENT_VERSION`.

    Idempotent: files already current are not touched, and when nothing changes no backup is made.
    Raises :class:`~actantd.errors.MigrationError` if backing up or writing fails (files not yet rewritten
    are still the originals; rewritten ones have their originals in the backup).
    """
    configs_dir = Path(configs_dir).absolute()
    changes, skipped = _survey(configs_dir)
    report = MigrationReport(configs_dir=configs_dir, dry_run=dry_run, changed=changes, skipped=skipped)
    if dry_run or not changes:
        return report
    try:
        report.backup_dir = _backup(configs_dir, changes)
        for change in changes:
            # Through a symlink to its target: a config kept elsewhere (a dotfiles repo) and linked into the
            # folder stays a link, and the file it points to is the one migrated.
            atomic_write(Path(os.path.realpath(configs_dir / change.path)), render(change.kind, change.after))
    except OSError as exc:
        raise MigrationError(
            f"migration stopped: {exc}",
            configsDir=str(configs_dir),
            backupDir=str(report.backup_dir) if report.backup_dir else None,
        ) from exc
    return report
