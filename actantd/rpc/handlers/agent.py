"""``agent.*``: thin adapters from params to one manager call, shaped by :mod:`actantd.rpc.results`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from actantd.errors import InvalidParams, NotSupported
from actantd.rpc import results
from actantd.rpc.protocol import CallContext
from actantd.rpc.registry import MethodTable, Params
from actantd.rpc.services import Services
from actantd.supervisor import logs

METHODS = MethodTable()


class NameP(Params):
    name: str


class CreateP(Params):
    name: str
    template: str
    work_dir: str | None = None
    overrides: dict[str, Any] | None = None


class ListP(Params):
    status: str | None = None
    template: str | None = None


class StartP(Params):
    name: str
    wait: bool = True


class StopP(Params):
    name: str
    timeout_seconds: float | None = None


class DestroyP(Params):
    name: str
    force: bool = False


class LogsP(Params):
    name: str
    stream: Literal["stdout", "stderr"] = "stdout"
    lines: int = 50
    follow: bool = False


class RunP(Params):
    name: str
    prompt: str
    timeout_seconds: float | None = None


class AttachP(Params):
    name: str
    pid: int


@METHODS.method("agent.create", params=CreateP, mutating=True)
async def create(svc: Services, p: CreateP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.create(p.name, p.template, p.work_dir, p.overrides))}


@METHODS.method("agent.list", params=ListP)
async def list_(svc: Services, p: ListP, ctx: CallContext) -> Any:
    records = svc.manager.records
    if results.cache_size() > 2 * len(records):  # destroyed instances: drop their cached encodings
        results.prune_encoded(records)
    return {"agents": results.agent_list(records.values(), p.status, p.template)}


@METHODS.method("agent.status", params=NameP)
async def status(svc: Services, p: NameP, ctx: CallContext) -> Any:
    m = svc.manager
    record = m.get(p.name)
    figures = m.live(record)
    return {"agent": results.agent_status(record, figures, svc.layout.log_dir(p.name), m.workspace(record))}


@METHODS.method("agent.start", params=StartP, mutating=True)
async def start(svc: Services, p: StartP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.start(p.name, wait=p.wait))}


@METHODS.method("agent.stop", params=StopP, mutating=True)
async def stop(svc: Services, p: StopP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.stop(p.name, p.timeout_seconds))}


@METHODS.method("agent.restart", params=NameP, mutating=True)
async def restart(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.restart(p.name))}


@METHODS.method("agent.destroy", params=DestroyP, mutating=True)
async def destroy(svc: Services, p: DestroyP, ctx: CallContext) -> Any:
    return {"destroyed": await svc.manager.destroy(p.name, p.force), "name": p.name}


@METHODS.method("agent.sync", params=NameP, mutating=True)
async def sync(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.sync(p.name))}


@METHODS.method("agent.run", params=RunP, mutating=True)
async def run(svc: Services, p: RunP, ctx: CallContext) -> Any:
    raise NotSupported("agent run comes with the materialization work; not supported yet", agent=p.name)


@METHODS.method("agent.attach", params=AttachP, mutating=True)
async def attach(svc: Services, p: AttachP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.attach(p.name, p.pid))}


@METHODS.method("agent.detach", params=NameP, mutating=True)
async def detach(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.detach(p.name))}


@METHODS.method("agent.openInfo", params=NameP)
async def open_info(svc: Services, p: NameP, ctx: CallContext) -> Any:
    svc.manager.get(p.name)
    raise NotSupported("agent open comes with the materialization work; not supported yet", agent=p.name)


@METHODS.method("agent.logs", params=LogsP)
async def logs_(svc: Services, p: LogsP, ctx: CallContext) -> Any:
    if p.lines < 0:
        raise InvalidParams("lines must be >= 0", lines=p.lines)
    path = svc.manager.log_path(p.name, p.stream)
    if not p.follow:
        return {"lines": await asyncio.to_thread(logs.tail_lines, path, p.lines)}
    if ctx.connection is None:
        raise InvalidParams("follow needs a connection")
    lines, sub = await svc.streams.open(ctx.connection, path, agent=p.name, stream=p.stream, lines=p.lines)
    return {"lines": lines, "subscription": sub}
