"""Watch the configs folder and swap registries on change (hot reload).

Two layers, so each can be tested on its own:

- :func:`watch_configs` turns filesystem events into debounced batches of changed paths, dropping what
  :mod:`actantd.config.files` says is not a config (swap files, ``.backup/``, temp files);
- :class:`ConfigWatcher` reloads the folder on each batch, keeps the last good version of anything that
  fails, swaps its registry reference in one assignment, and tells the daemon which templates are affected.

Nothing a user writes into the folder can raise out of either: a partial write is an error report, and the
next write (usually milliseconds later) is another reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from actantd.config.files import CONFIG_SUFFIX, is_ignored_relpath
from actantd.config.fswatch import watch_tree
from actantd.config.issues import ConfigIssue
from actantd.config.registry import Registry, affected_templates
from actantd.config.schema import Kind
from actantd.config.store import LoadResult, load_registry

log = logging.getLogger(__name__)

WATCH_RETRY_SECONDS = 5.0

ChangeCallback = Callable[[set[Path]], Awaitable[None]]


class ConfigFilter:
    """Which changed paths matter: ``.json`` files, (possibly deleted) folders and the configs folder itself;
    not hidden and temp files."""

    def __init__(self, configs_dir: Path) -> None:
        self.configs_dir = Path(configs_dir).absolute()

    def __call__(self, path: str | Path) -> bool:
        try:
            rel = Path(path).relative_to(self.configs_dir)
        except ValueError:
            return False
        if not rel.parts:
            return True  # the whole folder: a kernel queue overflow, or the folder itself went away
        if is_ignored_relpath(rel):
            return False
        # Folder events pass (no suffix): a moved-away folder is one event hiding many removed configs, and a
        # file written into a brand-new folder can beat the kernel watch on it, leaving only the folder's
        # event. Reloads rescan the whole tree, so passing the folder event is enough to catch both.
        return rel.suffix in (CONFIG_SUFFIX, "")


async def watch_configs(
    configs_dir: Path,
    on_change: ChangeCallback,
    stop: asyncio.Event,
    *,
    debounce_ms: int = 1600,
    step_ms: int = 50,
    force_polling: bool = False,
) -> None:
    """Call ``on_change(paths)`` for each batch of config changes until ``stop`` is set.

    :func:`actantd.config.fswatch.watch_tree` yields a batch once nothing changed for ``step_ms`` (or after
    ``debounce_ms`` at most), so an editor's write-temp-then-rename arrives as one batch. A callback that
    raises is logged and the watch goes on: a bug in a reaction must not end hot reload for the daemon's
    lifetime.
    """
    watch_filter = ConfigFilter(configs_dir)
    warned = False
    while not stop.is_set():
        try:
            batches = watch_tree(
                watch_filter.configs_dir, stop, debounce_ms=debounce_ms, step_ms=step_ms, force_polling=force_polling
            )
            async with contextlib.aclosing(batches):  # its watch is released also when we are cancelled
                async for changes in batches:
                    warned = False
                    paths = {p for p in changes if watch_filter(p)}
                    if not paths:
                        continue
                    try:
                        await on_change(paths)
                    except Exception:
                        log.exception("config change handler failed for %s", sorted(map(str, paths)))
            return
        except OSError as exc:
            # The folder is missing, a symlink loop, unreadable, or it went away while watched: no watch can
            # be set up. Try again now and then, so fixing the folder brings hot reload back without a restart
            # (SIGHUP reloads at once).
            if not warned:
                log.warning("cannot watch configs folder %s: %s; retrying", configs_dir, exc)
                warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_RETRY_SECONDS)


@dataclass(frozen=True, slots=True)
class Reload:
    """What one reload did, for the daemon to journal, publish and act on."""

    result: LoadResult
    previous: Registry
    paths: frozenset[Path]
    changed: frozenset[tuple[Kind, str]]
    affected: frozenset[str]
    """Templates whose instances need re-materializing (old and new dependents of every changed config)."""

    @property
    def registry(self) -> Registry:
        return self.result.registry


ReloadCallback = Callable[[Reload], Awaitable[None]]


def safe_load(configs_dir: Path, previous: Registry | None) -> LoadResult:
    """:func:`load_registry` that cannot raise: a failure of the load itself (not of one file, which the
    loader already reports per file) keeps the previous registry in force and becomes a reported error, so
    the reload is announced as ``config.error`` and the next edit is still processed."""
    try:
        return load_registry(configs_dir, previous)
    except Exception as exc:  # see the docstring
        log.exception("loading configs from %s failed", configs_dir)
        registry = previous if previous is not None else Registry.empty(Path(configs_dir).absolute())
        issue = ConfigIssue(str(configs_dir), "$", f"cannot load the configs folder: {type(exc).__name__}: {exc}")
        return LoadResult(registry, [issue], [])


class ConfigWatcher:
    """Owns the current registry of one configs folder and keeps it in step with the disk."""

    def __init__(
        self,
        configs_dir: Path,
        on_reload: ReloadCallback | None = None,
        *,
        initial: LoadResult | None = None,
        debounce_ms: int = 1600,
        step_ms: int = 50,
    ) -> None:
        self.configs_dir = Path(configs_dir).absolute()
        self._on_reload = on_reload
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._lock = asyncio.Lock()
        self.last: LoadResult = initial if initial is not None else safe_load(self.configs_dir, None)

    @property
    def registry(self) -> Registry:
        return self.last.registry

    async def reload(self, paths: set[Path] | None = None) -> Reload:
        """Re-read the folder now (also for SIGHUP or an RPC), swap the registry, report what changed."""
        async with self._lock:  # reloads in order: a slow one can never overwrite a newer one
            previous = self.registry
            result = await asyncio.to_thread(safe_load, self.configs_dir, previous)
            self.last = result
            reload = Reload(
                result=result,
                previous=previous,
                paths=frozenset(paths or ()),
                changed=frozenset(result.registry.changed_since(previous)),
                affected=frozenset(affected_templates(previous, result.registry)),
            )
        if self._on_reload is not None:
            await self._on_reload(reload)
        return reload

    async def _on_paths(self, paths: set[Path]) -> None:
        await self.reload(paths)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        await watch_configs(
            self.configs_dir, self._on_paths, stop, debounce_ms=self._debounce_ms, step_ms=self._step_ms
        )
