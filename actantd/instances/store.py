"""Workspace-as-storage: an instance *is* ``{home}/instances/<name>/`` holding ``.actant.json``.

Crash atomicity comes from three rules, so a SIGKILL at any instant leaves an instance whole or absent:

* state writes go to a temp file in the same directory, are fsynced, ``os.replace``d over the record and the
  directory is fsynced, so a reader sees the old record or the new one, never half of one;
* create builds the instance in ``.staging/`` and renames it into place as the last step (for a ``--work-dir``
  instance the last step is renaming a prepared symlink into place);
* destroy first renames the instance into ``.trash/`` and only then deletes it.

``scan`` finishes what a crash interrupted: it deletes staging leftovers and empties the trash. An instance
whose workspace is a git worktree follows the same rules, with git's registration kept in step
(:mod:`actantd.instances.worktree` explains the order).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from actantd import fsutil
from actantd.errors import DestroyRefused, InstanceCorrupted, InvalidName, SchemaTooNew, StateWrite, WorkspaceInit
from actantd.instances import worktree
from actantd.instances.group_commit import GroupCommit, state_write_error
from actantd.instances.record import InstanceRecord, decode, encode
from actantd.instances.worktree import WorktreeMaker
from actantd.paths import INSTANCE_FILE, Layout, is_valid_name

log = logging.getLogger(__name__)


STATE_FILE_MODE = 0o600
"""``.actant.json`` holds the instance's ``--env`` overrides (API keys among them): owner only."""
STATE_DIR_MODE = 0o700


def atomic_write(path: Path, data: bytes, *, mode: int = STATE_FILE_MODE) -> None:
    """:func:`actantd.fsutil.atomic_write`, with a failure (ENOSPC, EIO, EROFS...) as a typed STATE_WRITE.

    The previous file is untouched and the temp file removed, so the error can say so.
    """
    try:
        fsutil.atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise state_write_error(path, exc) from exc


def validate_name(name: object) -> str:
    if not is_valid_name(name):
        raise InvalidName(
            f"invalid instance name {name!r}: must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{{0,127}}$",
            name=str(name)[:200],
        )
    assert isinstance(name, str)
    return name


@dataclass
class ScanResult:
    records: dict[str, InstanceRecord] = field(default_factory=dict)
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, reason, new path) for every directory moved to ``.corrupted/``."""
    too_new: list[tuple[str, int]] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    """Staging and trash leftovers of interrupted creates and destroys, now removed."""


class InstanceStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.commits = GroupCommit()
        for d in (layout.instances, layout.staging, layout.trash, layout.corrupted):
            d.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)

    # -- reading -------------------------------------------------------------------------------------

    def record_path(self, name: str) -> Path:
        return self.layout.instance_dir(name) / INSTANCE_FILE

    def read(self, name: str) -> tuple[InstanceRecord, bool]:
        return self._read_file(name, os.fspath(self.record_path(name)))

    def _read_file(self, name: str, path: str) -> tuple[InstanceRecord, bool]:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError as exc:
            raise InstanceCorrupted(f"instances/{name}: {INSTANCE_FILE} is missing", agent=name) from exc
        except OSError as exc:
            raise InstanceCorrupted(f"instances/{name}/{INSTANCE_FILE}: unreadable: {exc}", agent=name) from exc
        record, migrated = decode(raw, where=f"instances/{name}/{INSTANCE_FILE}")
        if record.name != name:
            raise InstanceCorrupted(
                f"instances/{name}/{INSTANCE_FILE}: $.name is {record.name!r}, expected the directory name",
                agent=name,
            )
        return record, migrated

    def scan(self) -> ScanResult:
        """Read every instance; quarantine the unreadable, migrate the old, leave the too-new alone."""
        result = ScanResult()
        result.cleaned.extend(self._finish_interrupted())
        # Plain strings, not Paths, in this loop: it runs once per instance at every start (10,000 of them
        # in the startup benchmark), and building Paths was a third of it.
        base = os.fspath(self.layout.instances)
        with os.scandir(base) as entries:
            found = sorted((e.name, e.is_dir()) for e in entries if not e.name.startswith("."))
        for name, is_dir in found:
            if not is_valid_name(name) or not is_dir:
                self._quarantine_logged(result, name, "not an instance directory (bad name or not a directory)")
                continue
            directory = os.path.join(base, name)
            with contextlib.suppress(OSError):
                self._remove_stale_temps(directory)
            try:
                record, migrated = self._read_file(name, os.path.join(directory, INSTANCE_FILE))
            except SchemaTooNew as exc:
                result.too_new.append((name, int(exc.context.get("schemaVersion", 0))))
                continue
            except InstanceCorrupted as exc:
                self._quarantine_logged(result, name, exc.message)
                continue
            if migrated:
                try:
                    self.write(record)
                except StateWrite as exc:  # keep the migrated record in memory; retry on the next write
                    log.error("instances/%s: migrated, but could not persist: %s", name, exc.message)
                result.migrated.append(name)
            result.records[name] = record
        return result

    @staticmethod
    def _remove_stale_temps(directory: str | Path) -> None:
        """Temp files of a write the daemon was killed in the middle of; the record itself is intact."""
        with os.scandir(directory) as entries:
            stale = [e.path for e in entries if fsutil.is_temp_of(e.name, INSTANCE_FILE)]
        for path in stale:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _quarantine_logged(self, result: ScanResult, name: str, reason: str) -> None:
        try:
            dest = self.quarantine(name)
        except OSError as exc:
            log.error("could not quarantine instances/%s: %s", name, exc)
            return
        result.quarantined.append((name, reason, str(dest)))

    def quarantine(self, name: str) -> Path:
        """Move an instance away to ``.corrupted/<name>-<ts>``; a symlinked one moves as the link only."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = self.layout.corrupted / f"{name}-{stamp}"
        os.rename(self.layout.instance_dir(name), dest)
        fsutil.fsync_dir(self.layout.instances)
        return dest

    # -- writing -------------------------------------------------------------------------------------

    def write(self, record: InstanceRecord) -> None:
        """Write the record now, in this thread (start-up, migrations); the daemon's transitions use :meth:`commit`."""
        atomic_write(self.record_path(record.name), encode(record))

    async def commit(self, record: InstanceRecord) -> None:
        """Write the record crash-safely, sharing the durability steps with the writes in flight
        (:mod:`.group_commit`); returns once it is durable, else raises :class:`StateWrite`."""
        await self.commits.write(self.record_path(record.name), encode(record), STATE_FILE_MODE)

    def exists(self, name: str) -> bool:
        return os.path.lexists(self.layout.instance_dir(name))

    def create(
        self,
        record: InstanceRecord,
        populate: Callable[[Path], InstanceRecord],
        worktree: WorktreeMaker | None = None,
    ) -> InstanceRecord:
        """Build the instance out of sight, then make it appear with one rename.

        ``populate(workspace)`` materializes files and returns the record to persist. For a ``--work-dir``
        instance the workspace is the user's directory and what appears atomically is the symlink. With
        ``worktree`` the staging directory is a new git worktree (the order is in :mod:`.worktree`).
        """
        name = validate_name(record.name)
        target = self.layout.instance_dir(name)
        stage = self.layout.staging / f"{name}-{uuid.uuid4().hex[:8]}"
        try:
            if worktree is not None:
                worktree.make(stage)
                self.write_at(stage, record)
                worktree.prepare(stage)
                final = _with_identity(populate(stage), stage)
                self.write_at(stage, final)
                fsutil.fsync_dir(stage)
            elif record.work_dir is None:
                stage.mkdir(mode=STATE_DIR_MODE)
                self.write_at(stage, record)
                final = _with_identity(populate(stage), stage)
                self.write_at(stage, final)
                fsutil.fsync_dir(stage)
            else:
                workspace = Path(record.work_dir)
                if not workspace.is_dir():
                    raise WorkspaceInit(f"--work-dir {workspace}: not an existing directory", workDir=str(workspace))
                # The staging link comes first: from here on, cleanup (now or after a crash) can find the
                # workspace and remove exactly the files the record lists.
                os.symlink(workspace, stage)
                final = _with_identity(populate(workspace), workspace)
                self.write_at(workspace, final)
            os.rename(stage, target)
            fsutil.fsync_dir(self.layout.instances)
        except BaseException:
            if worktree is not None:
                with contextlib.suppress(Exception):
                    worktree.abort(stage)
            self._purge(stage)
            raise
        if worktree is not None:
            try:
                worktree.commit(target, stage)
            except Exception as exc:  # committed already: the next start finishes it from the intent file
                log.error("instances/%s: worktree created, registration not yet updated: %s", name, exc)
        return final

    def write_at(self, directory: Path, record: InstanceRecord) -> None:
        """Write a record into a workspace that is not (yet) at its final place: staging or a --work-dir."""
        atomic_write(directory / INSTANCE_FILE, encode(record))

    def check_owned(self, record: InstanceRecord) -> None:
        """Raise :class:`DestroyRefused` unless ``instances/<name>`` is provably this instance's.

        Proof is: the same kind of entry as at create (a real directory, or for ``--work-dir`` a symlink to
        exactly the recorded path, itself not a symlink), the same directory identity as recorded at create
        (``st_dev``/``st_ino``), and a record in it, if any, with the same ``instanceId``. A missing entry
        proves nothing is there to remove and passes.
        """
        name = record.name
        src = self.layout.instance_dir(name)
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            return
        if record.work_dir is None:
            if not stat.S_ISDIR(st.st_mode):
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise _refused(record, f"instances/{name} is {kind} now; it was a directory at create")
            workspace, ident = src, (st.st_dev, st.st_ino)
        else:
            if not stat.S_ISLNK(st.st_mode):
                raise _refused(record, f"instances/{name} is no longer the link to its --work-dir")
            target = os.readlink(src)
            if os.path.normpath(target) != os.path.normpath(record.work_dir):
                raise _refused(record, f"instances/{name} now points to {target}, not to {record.work_dir}")
            try:
                wst = os.lstat(record.work_dir)
            except FileNotFoundError:
                return  # the work dir is gone: nothing of it to remove
            if stat.S_ISLNK(wst.st_mode) or not stat.S_ISDIR(wst.st_mode):
                raise _refused(record, f"--work-dir {record.work_dir} was replaced (now a symlink or not a directory)")
            workspace, ident = Path(record.work_dir), (wst.st_dev, wst.st_ino)
        if record.workspace_ino is not None and ident != (record.workspace_dev, record.workspace_ino):
            raise _refused(record, f"{workspace} is not the directory created for this instance (another inode)")
        try:
            fd = os.open(workspace / INSTANCE_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _refused(record, f"cannot read {workspace / INSTANCE_FILE}: {exc.strerror or exc}") from exc
        try:
            data = os.read(fd, 4 * 1024 * 1024)
        finally:
            os.close(fd)
        try:
            found, _ = decode(data, where=str(workspace))
        except (InstanceCorrupted, SchemaTooNew) as exc:
            raise _refused(record, f"{workspace / INSTANCE_FILE} is not this instance's record: {exc}") from exc
        if found.instance_id != record.instance_id:
            raise _refused(record, f"{workspace} holds instance {found.instance_id}, not {record.instance_id}")

    def destroy(self, name: str, record: InstanceRecord | None = None) -> bool:
        """Rename into the trash (the atomic step), then delete; False when there was nothing to destroy.

        With ``record``, nothing is touched unless :meth:`check_owned` proves the directory is its own.
        """
        src = self.layout.instance_dir(name)
        if not os.path.lexists(src):
            return False
        if record is not None:
            self.check_owned(record)
        dest = self.layout.trash / f"{name}-{uuid.uuid4().hex[:8]}"
        os.rename(src, dest)
        fsutil.fsync_dir(self.layout.instances)
        self._discard_worktree(dest)
        self._purge(dest)
        return True

    def _discard_worktree(self, path: Path) -> None:
        """A trashed or staged git-worktree instance: its registration goes with it (the branch stays)."""
        if path.is_symlink() or not path.is_dir():
            return  # a --work-dir instance's workspace is the user's, never removed
        try:
            record, _ = decode((path / INSTANCE_FILE).read_bytes(), where=str(path))
        except (OSError, InstanceCorrupted, SchemaTooNew):
            return
        if record.repo is not None:
            worktree.discard(path, record.repo)

    def _recorded_id(self, name: str) -> str | None:
        try:
            return self.read(name)[0].instance_id
        except (InstanceCorrupted, SchemaTooNew):
            return None

    def _purge(self, path: Path) -> None:
        """Delete a staged or trashed instance; for a symlink, only what Actant wrote in the target."""
        if path.is_symlink():
            target = Path(os.readlink(path))
            with contextlib.suppress(OSError, InstanceCorrupted, SchemaTooNew):
                record, _ = decode((target / INSTANCE_FILE).read_bytes(), where=str(target))
                for rel in record.materialized:
                    fsutil.remove_inside(target, rel)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target / INSTANCE_FILE)
            os.unlink(path)
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def _finish_interrupted(self) -> list[str]:
        cleaned = worktree.recover_intents(self.layout.staging, self._recorded_id)
        for holder in (self.layout.staging, self.layout.trash):
            with os.scandir(holder) as entries:
                leftovers = [holder / e.name for e in entries]
            for path in leftovers:
                self._discard_worktree(path)
                self._purge(path)
                cleaned.append(str(path))
        return cleaned


def _with_identity(record: InstanceRecord, workspace: Path) -> InstanceRecord:
    """``record`` with the workspace directory's identity, which destroy checks (hardening #10, class 8)."""
    st = os.stat(workspace)
    return msgspec.structs.replace(record, workspace_dev=st.st_dev, workspace_ino=st.st_ino)


def _refused(record: InstanceRecord, why: str) -> DestroyRefused:
    return DestroyRefused(
        f"refusing to destroy {record.name!r}: {why}; nothing was removed", agent=record.name, reason=why
    )
