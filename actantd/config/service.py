"""The daemon's view of its configs folder: the current registry plus the queries the RPC layer answers.

A thin facade over :class:`~actantd.config.watch.ConfigWatcher` (which owns the registry and hot reload) so
the method table never reaches into loader internals, and the CLI's list/show/validate/migrate results have
one shape defined in one place.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from actantd.config import migrations
from actantd.config.issues import ConfigIssue
from actantd.config.registry import KIND_LABELS, Registry
from actantd.config.schema import KINDS, Backend, Config, Kind, McpServer, Template
from actantd.config.store import load_registry, validate_file
from actantd.config.watch import ConfigWatcher, ReloadCallback
from actantd.errors import ConfigNotFound, ConfigValidation, InvalidParams
from actantd.limits import MAX_CONFIG_BYTES


class ConfigService:
    def __init__(self, configs_dir: Path, *, on_reload: ReloadCallback | None = None, debounce_ms: int = 50) -> None:
        self.dir = Path(configs_dir).absolute()
        self.watcher = ConfigWatcher(self.dir, on_reload, debounce_ms=debounce_ms)

    @property
    def registry(self) -> Registry:
        return self.watcher.registry

    @property
    def errors(self) -> list[ConfigIssue]:
        return list(self.watcher.last.errors)

    @property
    def warnings(self) -> list[ConfigIssue]:
        return list(self.watcher.last.warnings)

    async def reload(self) -> None:
        await self.watcher.reload()

    async def run(self, stop: asyncio.Event) -> None:
        await self.watcher.run(stop)

    def summaries(self, kind: str) -> list[dict[str, Any]]:
        k = _kind(kind)
        registry = self.registry
        out = []
        for name, config in registry.of_kind(k).items():
            item: dict[str, Any] = {
                "name": name,
                "description": config.description,
                "file": registry.relative_source(k, name),
            }
            item.update(_extra(config))
            out.append(item)
        return out

    def get(self, kind: str, name: str) -> tuple[Config, str | None]:
        k = _kind(kind)
        if k == "template":
            config: Config = self.registry.template(name)  # raises the most helpful error
        else:
            found = self.registry.get(k, name)
            if found is None:
                invalid = self.registry.invalid.get((k, name))
                if invalid:
                    issues = [str(i) for i in invalid]
                    raise ConfigValidation(f"{KIND_LABELS[k]} '{name}' is invalid: {issues[0]}", issues=issues)
                available = sorted(self.registry.of_kind(k))
                raise ConfigNotFound(f"{KIND_LABELS[k]} '{name}' not found", kind=k, name=name, available=available)
            config = found
        return config, self.registry.relative_source(k, name)

    def validate_file(self, path: Path) -> list[ConfigIssue]:
        """Validate one file a client names. Only a regular file of sane size is read: the path comes from
        the socket, and ``/dev/zero`` or a FIFO must not eat the daemon's memory or wedge it."""
        if not path.is_absolute():
            raise InvalidParams(f"path must be absolute, got {str(path)!r}", path=str(path))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InvalidParams(f"{path}: {exc.strerror}", path=str(path)) from exc
        if not stat.S_ISREG(st.st_mode):
            raise InvalidParams(f"{path}: not a regular file", path=str(path))
        if st.st_size > MAX_CONFIG_BYTES:
            raise InvalidParams(
                f"{path}: {st.st_size} bytes; a config file may hold at most {MAX_CONFIG_BYTES}", path=str(path)
            )
        return validate_file(path, self.registry)

    def validate_all(self) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
        """A fresh load of the folder, independent of the last-good registry in force."""
        result = load_registry(self.dir)
        return list(result.errors), list(result.warnings)

    def migrate(self, dry_run: bool) -> dict[str, Any]:
        report = migrations.migrate(self.dir, dry_run=dry_run)
        out = report.to_dict()
        out["changes"] = [
            {
                "file": c["file"],
                "from": c["fromVersion"],
                "to": c["toVersion"],
                "kind": c["kind"],
                "problems": c["problems"],
            }
            for c in out["changed"]
        ]
        out["backup"] = out["backupDir"]
        return out


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise InvalidParams(f"unknown config kind {kind!r}", kind=kind)
    return kind


def _extra(config: Config) -> dict[str, Any]:
    if isinstance(config, Template):
        return {"backend": config.backend, "launchMode": config.launch_mode, "skills": list(config.skills)}
    if isinstance(config, Backend):
        return {"executable": config.executable, "materializer": config.materializer}
    if isinstance(config, McpServer):
        return {"transport": config.type or "stdio", "command": config.command, "url": config.url}
    return {}
