"""Hot reload on real file writes: filtering, debouncing into batches, last good kept, clean stop.

The watch gives no "watching now" signal, so each test first writes probe files until one is reported
(an awaited event with a short timeout per attempt, not a fixed sleep); everything after that is awaited
through a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from actantd.config.store import load_registry
from actantd.config.watch import ConfigFilter, ConfigWatcher, Reload, watch_configs
from tests.helpers import cfg, write_doc

TIMEOUT = 10.0
DEBOUNCE_MS, STEP_MS = 1000, 30


def minimal(root: Path) -> Path:
    write_doc(root, "backends/custom.json", cfg("custom"))
    write_doc(root, "skills/code-review.json", cfg("code-review", content="# Review"))
    write_doc(root, "templates/reviewer.json", cfg("reviewer", command=["x"], skills=["code-review"]))
    write_doc(root, "templates/other.json", cfg("other", command=["x"]))
    return root


async def until_ready(root: Path, batches: asyncio.Queue[set[Path]]) -> None:
    """Write probe files until the watcher reports one, then drain what it reported."""
    for attempt in range(50):
        probe = write_doc(root, f"probe/ready-{attempt}.json", "{}")
        try:
            while True:
                batch = await asyncio.wait_for(batches.get(), 0.2)
                if probe in batch:
                    break
        except TimeoutError:
            continue
        while not batches.empty():
            batches.get_nowait()
        return
    raise AssertionError("watcher never became ready")


async def next_batch_with(batches: asyncio.Queue[set[Path]], path: Path) -> list[set[Path]]:
    """Every batch up to and including the first that contains ``path``."""
    seen: list[set[Path]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            batch = await batches.get()
            seen.append(batch)
            if path in batch:
                return seen


@contextlib.asynccontextmanager
async def running(coro_factory: Callable[[asyncio.Event], Awaitable[None]]) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.ensure_future(coro_factory(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


# --- the filter -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "kept"),
    [
        ("skills/a.json", True),
        ("prompts/system-prompts/a.json", True),
        ("prompts/system-prompts", True),  # a folder (maybe deleted): may hide removed configs
        ("skills/.a.json.swp", False),
        ("skills/.a.json.swx", False),
        ("skills/a.json~", False),
        ("skills/4913", False),
        ("skills/.#a.json", False),
        ("skills/#a.json#", False),
        ("skills/a.json.tmp", False),
        (".backup/20250101T000000Z/skills/a.json", False),
        ("skills/.hidden/a.json", False),
        ("skills/README.md", False),
    ],
)
def test_filter(tmp_path: Path, rel: str, kept: bool) -> None:
    configs = tmp_path / ".config" / "actant"  # the configs folder itself usually sits under a hidden one
    assert ConfigFilter(configs)(str(configs / rel)) is kept
    assert ConfigFilter(configs)(tmp_path / "elsewhere.json") is False
    assert ConfigFilter(configs)(configs) is True  # the folder itself: reload everything


# --- watch_configs --------------------------------------------------------------------------------------


async def test_batches_exclude_swap_and_hidden_files(tmp_path: Path) -> None:
    batches: asyncio.Queue[set[Path]] = asyncio.Queue()

    async def on_change(paths: set[Path]) -> None:
        await batches.put(paths)

    # Folders exist before watching: a file written into a brand-new folder can beat the kernel watch on it
    # (the loader rescans everything on the folder's own event, but this test looks at exact paths).
    (tmp_path / "skills").mkdir()
    (tmp_path / ".backup" / "x" / "skills").mkdir(parents=True)
    async with running(lambda stop: watch_configs(tmp_path, on_change, stop, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS)):
        await until_ready(tmp_path, batches)
        write_doc(tmp_path, "skills/.code-review.json.swp", "swap")
        write_doc(tmp_path, "skills/code-review.json~", "backup")
        write_doc(tmp_path, "skills/4913", "probe")
        write_doc(tmp_path, ".backup/x/skills/a.json", "{}")
        real = write_doc(tmp_path, "skills/code-review.json", cfg("code-review", content="x"))
        seen = await next_batch_with(batches, real)
    reported = set().union(*seen)
    assert all(p.suffix in (".json", "") for p in reported)
    assert not any(".backup" in p.parts or p.name.startswith(".") or p.name.endswith("~") for p in reported)


async def test_callback_errors_do_not_stop_the_watch(tmp_path: Path) -> None:
    batches: asyncio.Queue[set[Path]] = asyncio.Queue()
    calls = 0

    async def on_change(paths: set[Path]) -> None:
        nonlocal calls
        calls += 1
        await batches.put(paths)
        raise RuntimeError("handler bug")

    (tmp_path / "skills").mkdir()
    async with running(
        lambda stop: watch_configs(tmp_path, on_change, stop, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS)
    ) as task:
        await until_ready(tmp_path, batches)
        after = write_doc(tmp_path, "skills/after.json", "{}")
        await next_batch_with(batches, after)
        assert not task.done()
    assert calls >= 2


async def test_stop_event_ends_the_watch_promptly(tmp_path: Path) -> None:
    async def on_change(paths: set[Path]) -> None:
        return None

    stop = asyncio.Event()
    task = asyncio.ensure_future(watch_configs(tmp_path, on_change, stop, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS))
    await asyncio.sleep(0)  # let it start
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)


# --- ConfigWatcher: reload, last good, affected templates -----------------------------------------------


async def test_watcher_reloads_keeps_last_good_and_reports_affected(tmp_path: Path) -> None:
    minimal(tmp_path)
    reloads: asyncio.Queue[Reload] = asyncio.Queue()
    batches: asyncio.Queue[set[Path]] = asyncio.Queue()

    async def on_reload(reload: Reload) -> None:
        await batches.put(set(reload.paths))
        await reloads.put(reload)

    watcher = ConfigWatcher(tmp_path, on_reload, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS)
    assert watcher.last.ok and "reviewer" in watcher.registry.templates

    async def next_reload_with(path: Path) -> Reload:
        async with asyncio.timeout(TIMEOUT):
            while True:
                reload = await reloads.get()
                if path in reload.paths:
                    return reload

    async with running(watcher.run):
        await until_ready(tmp_path, batches)
        while not reloads.empty():
            reloads.get_nowait()

        # 1. a real edit: swapped in, dependents reported
        skill = write_doc(tmp_path, "skills/code-review.json", cfg("code-review", content="# Edited"))
        reload = await next_reload_with(skill)
        assert reload.result.ok
        assert reload.changed == {("skill", "code-review")}
        assert reload.affected == {"reviewer"}
        assert watcher.registry.skills["code-review"].content == "# Edited"

        # 2. a partial write: an error report, the last good version stays in force
        skill.write_text('{"version": "1.0", "name": "code-')
        reload = await next_reload_with(skill)
        assert [e.file for e in reload.result.errors] == ["skills/code-review.json"]
        assert reload.result.kept == {("skill", "code-review")}
        assert watcher.registry.skills["code-review"].content == "# Edited"
        assert "reviewer" in watcher.registry.templates
        assert reload.affected == set()

        # 3. an editor-style save (write temp, rename over): one clean reload
        tmp = write_doc(tmp_path, "skills/.code-review.json.tmp", cfg("code-review", content="# Saved"))
        os.replace(tmp, skill)
        reload = await next_reload_with(skill)
        assert reload.result.ok and watcher.registry.skills["code-review"].content == "# Saved"

        # 4. a backend change affects every template on it
        backend = write_doc(tmp_path, "backends/custom.json", cfg("custom", description="now described"))
        reload = await next_reload_with(backend)
        assert reload.affected == {"reviewer", "other"}


async def test_removing_a_nested_folder_reloads(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "prompts/system-prompts/p.json", cfg("p", content="x"))
    write_doc(tmp_path, "templates/uses-p.json", cfg("uses-p", command=["x"], prompts=["p"]))
    reloads: asyncio.Queue[Reload] = asyncio.Queue()
    batches: asyncio.Queue[set[Path]] = asyncio.Queue()

    async def on_reload(reload: Reload) -> None:
        await batches.put(set(reload.paths))
        await reloads.put(reload)

    watcher = ConfigWatcher(tmp_path, on_reload, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS)
    async with running(watcher.run):
        await until_ready(tmp_path, batches)
        os.rename(tmp_path / "prompts" / "system-prompts", tmp_path / "prompts" / ".trashed")
        async with asyncio.timeout(TIMEOUT):
            while "p" in watcher.registry.prompts:
                await reloads.get()
    assert "uses-p" not in watcher.registry.templates
    assert "templates/uses-p.json: $.prompts[0]: unknown prompt 'p'" in [str(e) for e in watcher.last.errors]


async def test_manual_reload_without_watching(tmp_path: Path) -> None:
    minimal(tmp_path)
    watcher = ConfigWatcher(tmp_path, initial=load_registry(tmp_path))
    write_doc(tmp_path, "templates/new-one.json", cfg("new-one", command=["x"]))
    reload = await watcher.reload()
    assert reload.changed == {("template", "new-one")}
    assert reload.affected == {"new-one"}
    assert watcher.registry is reload.registry


async def test_file_in_a_brand_new_folder_is_loaded(tmp_path: Path) -> None:
    minimal(tmp_path)
    reloads: asyncio.Queue[Reload] = asyncio.Queue()
    batches: asyncio.Queue[set[Path]] = asyncio.Queue()

    async def on_reload(reload: Reload) -> None:
        await batches.put(set(reload.paths))
        await reloads.put(reload)

    watcher = ConfigWatcher(tmp_path, on_reload, debounce_ms=DEBOUNCE_MS, step_ms=STEP_MS)
    async with running(watcher.run):
        await until_ready(tmp_path, batches)
        write_doc(tmp_path, "skills/brand/new/fresh.json", cfg("fresh", content="x"))
        async with asyncio.timeout(TIMEOUT):
            while "fresh" not in watcher.registry.skills:
                await reloads.get()
