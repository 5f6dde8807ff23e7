"""``{kind}.list`` / ``{kind}.get`` for every config kind, plus validation and migration."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from actantd.config.schema import KINDS, to_jsonable
from actantd.rpc.protocol import CallContext
from actantd.rpc.registry import Handler, MethodTable, Params
from actantd.rpc.services import Services

METHODS = MethodTable()


class NameP(Params):
    name: str


class PathP(Params):
    path: str


class MigrateP(Params):
    dry_run: bool = False


def _kind_methods(kind: str) -> tuple[Handler, Handler]:
    async def list_(svc: Services, params: Any, ctx: CallContext) -> Any:
        return {"items": svc.configs.summaries(kind)}

    async def get(svc: Services, p: NameP, ctx: CallContext) -> Any:
        config, file = svc.configs.get(kind, p.name)
        return {"item": to_jsonable(config), "file": file}

    return list_, get


for _kind in KINDS:
    _list, _get = _kind_methods(_kind)
    METHODS.add(f"{_kind}.list", _list)
    METHODS.add(f"{_kind}.get", _get, params=NameP)


@METHODS.method("template.validate", params=PathP)
async def template_validate(svc: Services, p: PathP, ctx: CallContext) -> Any:
    issues = await asyncio.to_thread(svc.configs.validate_file, Path(p.path))
    errors = [str(i) for i in issues]
    return {"valid": not errors, "errors": errors, "warnings": []}


@METHODS.method("config.validate")
async def config_validate(svc: Services, params: Any, ctx: CallContext) -> Any:
    errors, warnings = await asyncio.to_thread(svc.configs.validate_all)  # reads files: off the loop
    return {"valid": not errors, "errors": [str(e) for e in errors], "warnings": [str(w) for w in warnings]}


@METHODS.method("config.migrate", params=MigrateP, mutating=True)
async def config_migrate(svc: Services, p: MigrateP, ctx: CallContext) -> Any:
    return await asyncio.to_thread(svc.configs.migrate, p.dry_run)
