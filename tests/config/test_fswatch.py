"""The tree watch under hot reload: inotify with new, moved and deleted folders, the root going away, the
kernel queue overflowing, and the polling fallback where inotify is unavailable.

Every wait is for a reported batch (with a timeout), never a fixed sleep: the inotify watch is in place when
``watch_tree`` first awaits, and the poller's first snapshot is taken before that too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from actantd.config import fswatch
from actantd.config.fswatch import IN_Q_OVERFLOW, Inotify, InotifyUnavailable, Poller, RootGone, watch_tree

TIMEOUT = 10.0
STEP_MS, DEBOUNCE_MS = 20, 500
POLL = 0.05


class Batches:
    """A running ``watch_tree`` whose batches land in a queue; its end (or error) is kept."""

    def __init__(self, root: Path, **kwargs: object) -> None:
        self.queue: asyncio.Queue[set[Path]] = asyncio.Queue()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self._gen = watch_tree(root, self.stop, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS, **kwargs)  # type: ignore[arg-type]
        self.started = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for batch in self._gen:
                await self.queue.put(batch)
        except OSError as exc:
            self.error = exc
        finally:
            await self._gen.aclose()

    async def until(self, path: Path) -> set[Path]:
        """Everything reported up to and including the first batch naming ``path``."""
        seen: set[Path] = set()
        async with asyncio.timeout(TIMEOUT):
            while path not in seen:
                seen |= await self.queue.get()
        return seen


@asynccontextmanager
async def watching(root: Path, **kwargs: object) -> AsyncIterator[Batches]:
    batches = Batches(root, **kwargs)
    await asyncio.sleep(0)  # the generator sets its watch up before its first wait
    await asyncio.sleep(0)
    try:
        yield batches
    finally:
        batches.stop.set()
        await asyncio.wait_for(batches.task, TIMEOUT)


async def settle(batches: Batches, root: Path) -> None:
    """Probe until a write is reported: the watch (or the poller's first snapshot) is certainly in place."""
    for attempt in range(100):
        probe = root / f"probe-{attempt}.json"
        probe.write_text("{}")
        try:
            await asyncio.wait_for(batches.until(probe), 0.5)
            return
        except TimeoutError:
            continue
    raise AssertionError("the watch never reported a probe")


@pytest.fixture(params=["inotify", "polling"])
def mode(request: pytest.FixtureRequest) -> dict[str, object]:
    return {"force_polling": request.param == "polling", "poll_seconds": POLL}


async def test_edits_renames_and_deletions(tmp_path: Path, mode: dict[str, object]) -> None:
    (tmp_path / "skills").mkdir()
    skill = tmp_path / "skills" / "a.json"
    skill.write_text("{}")
    async with watching(tmp_path, **mode) as batches:
        await settle(batches, tmp_path)
        skill.write_text('{"x": 1}')
        await batches.until(skill)
        tmp = tmp_path / "skills" / ".a.json.tmp"  # an editor's save: write a temp file, rename it over
        tmp.write_text('{"x": 2}')
        os.replace(tmp, skill)
        await batches.until(skill)
        skill.unlink()
        await batches.until(skill)


async def test_new_nested_folders_are_watched(tmp_path: Path, mode: dict[str, object]) -> None:
    async with watching(tmp_path, **mode) as batches:
        await settle(batches, tmp_path)
        deep = tmp_path / "skills" / "brand" / "new"
        deep.mkdir(parents=True)
        first = deep / "fresh.json"
        first.write_text("{}")  # may be written before the new folder's watch exists: reported by the walk
        await batches.until(first)
        later = deep / "later.json"
        later.write_text("{}")  # after: reported by the new folder's own watch
        await batches.until(later)


async def test_folder_moved_away_and_back(tmp_path: Path, mode: dict[str, object]) -> None:
    folder = tmp_path / "prompts" / "system"
    folder.mkdir(parents=True)
    (folder / "p.json").write_text("{}")
    async with watching(tmp_path, **mode) as batches:
        await settle(batches, tmp_path)
        hidden = tmp_path / "prompts" / ".trashed"
        os.rename(folder, hidden)
        await batches.until(folder)  # one event for the folder hides every config it held
        os.rename(hidden, folder)
        await batches.until(folder / "p.json")  # moved back in: its contents are reported
        edited = folder / "p.json"
        edited.write_text('{"y": 1}')
        await batches.until(edited)  # and watched again, under its name
        shutil.rmtree(folder)
        await batches.until(folder)


async def test_root_going_away_ends_the_watch(tmp_path: Path, mode: dict[str, object]) -> None:
    root = tmp_path / "configs"
    root.mkdir()
    async with watching(root, **mode) as batches:
        await settle(batches, root)
        shutil.rmtree(root)
        async with asyncio.timeout(TIMEOUT):
            await batches.task
    assert isinstance(batches.error, RootGone)


async def test_missing_root_raises(tmp_path: Path, mode: dict[str, object]) -> None:
    with pytest.raises(OSError):
        async for _ in watch_tree(tmp_path / "missing", asyncio.Event(), **mode):  # type: ignore[arg-type]
            pass


async def test_stop_ends_the_watch_promptly(tmp_path: Path, mode: dict[str, object]) -> None:
    async with watching(tmp_path, **mode) as batches:
        await asyncio.sleep(0)
    assert batches.error is None and batches.task.done()


def test_hidden_folders_get_no_watch(tmp_path: Path) -> None:
    (tmp_path / "skills").mkdir()
    (tmp_path / ".backup" / "2026" / "skills").mkdir(parents=True)
    watch = Inotify(tmp_path)
    try:
        assert watch.watched == 2  # the root and skills/
    finally:
        watch.close()


def test_queue_overflow_reports_the_root(tmp_path: Path) -> None:
    watch = Inotify(tmp_path)
    try:
        (tmp_path / "skills").mkdir()  # appeared while the (lost) events were dropped
        changed: set[Path] = set()
        assert watch._event(-1, IN_Q_OVERFLOW, "", changed) is False
        assert changed == {tmp_path}
        assert watch.watched == 2  # re-walked: the new folder is watched now
    finally:
        watch.close()


def test_poller_reports_differences(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    poller = Poller(tmp_path)
    assert poller.read() == set()
    (tmp_path / "a.json").write_text('{"longer": true}')
    (tmp_path / "b.json").write_text("{}")
    assert {tmp_path / "a.json", tmp_path / "b.json"} <= poller.read()
    assert poller.read() == set()


async def test_falls_back_to_polling_without_inotify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(root: Path) -> Inotify:
        raise InotifyUnavailable(24, "inotify_init1: Too many open files")

    monkeypatch.setattr(fswatch, "Inotify", unavailable)
    async with watching(tmp_path, poll_seconds=POLL) as batches:
        await settle(batches, tmp_path)
        later = tmp_path / "later.json"
        later.write_text("{}")
        await batches.until(later)
