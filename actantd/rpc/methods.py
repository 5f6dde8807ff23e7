"""The method table (DESIGN §8): thin adapters from params to a manager or config call.

Each handler decodes its params into a Struct (so a wrong type is -32602 naming the field), calls one
thing, and shapes the result. Nothing here touches disk or processes directly; streams (``events.subscribe``,
``agent.logs`` with ``follow``) are tied to the calling connection and end when it closes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from actantd import __version__
from actantd.config.schema import KINDS, to_jsonable
from actantd.errors import InvalidParams, NotSupported
from actantd.instances.record import to_dict
from actantd.rpc.protocol import CallContext, Dispatcher, decode_params
from actantd.supervisor import logs

if TYPE_CHECKING:
    from actantd.daemon import Daemon


class _P(msgspec.Struct, rename="camel", kw_only=True):
    """Params base: unknown keys are ignored so newer clients keep working with this daemon."""


class NameP(_P):
    name: str


class CreateP(_P):
    name: str
    template: str
    work_dir: str | None = None
    overrides: dict[str, Any] | None = None


class ListP(_P):
    status: str | None = None
    template: str | None = None


class StartP(_P):
    name: str
    wait: bool = True


class StopP(_P):
    name: str
    timeout_seconds: float | None = None


class DestroyP(_P):
    name: str
    force: bool = False


class LogsP(_P):
    name: str
    stream: Literal["stdout", "stderr"] = "stdout"
    lines: int = 50
    follow: bool = False


class RunP(_P):
    name: str
    prompt: str
    timeout_seconds: float | None = None


class AttachP(_P):
    name: str
    pid: int


class SubscribeP(_P):
    agent: str | None = None
    types: list[str] | None = None


class UnsubscribeP(_P):
    subscription: str


class QueryP(_P):
    agent: str | None = None
    types: list[str] | None = None
    since: str | float | None = None
    limit: int = 100


class PathP(_P):
    path: str


class MigrateP(_P):
    dry_run: bool = False


class ShutdownP(_P):
    keep_agents: bool = False


_ids = itertools.count(1)

Handler = Callable[[dict[str, Any], CallContext], Awaitable[Any]]


def register_all(dispatcher: Dispatcher, daemon: Daemon) -> None:
    """Bind every method to ``daemon``'s manager, configs, journal and bus."""
    m = daemon.manager
    reg = dispatcher.register

    # -- daemon ------------------------------------------------------------------------------------
    async def ping(params: dict[str, Any], ctx: CallContext) -> Any:
        return {"version": __version__, "pid": os.getpid(), "uptimeSeconds": daemon.uptime()}

    async def status(params: dict[str, Any], ctx: CallContext) -> Any:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptimeSeconds": daemon.uptime(),
            "home": str(daemon.layout.home),
            "configs": str(daemon.layout.configs),
            "socket": str(daemon.layout.socket),
            "instances": {"total": len(m.records), "byStatus": m.counts()},
            "instancesTooNew": m.too_new,
            "configErrors": [str(e) for e in daemon.configs.errors],
            "configWarnings": [str(w) for w in daemon.configs.warnings],
            "connections": daemon.connection_count(),
            "journalDropped": daemon.journal.dropped,
        }

    async def shutdown(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, ShutdownP)
        daemon.request_shutdown(keep_agents=p.keep_agents)
        return {"ok": True}

    reg("daemon.ping", ping)
    reg("daemon.status", status)
    reg("daemon.shutdown", shutdown)

    # -- configs -----------------------------------------------------------------------------------
    for kind in KINDS:
        _register_kind(dispatcher, daemon, kind)

    async def template_validate(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, PathP)
        issues = await asyncio.to_thread(daemon.configs.validate_file, Path(p.path))
        errors = [str(i) for i in issues]
        return {"valid": not errors, "errors": errors, "warnings": []}

    async def config_validate(params: dict[str, Any], ctx: CallContext) -> Any:
        errors, warnings = daemon.configs.validate_all()
        return {"valid": not errors, "errors": [str(e) for e in errors], "warnings": [str(w) for w in warnings]}

    async def config_migrate(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, MigrateP)
        return await asyncio.to_thread(daemon.configs.migrate, p.dry_run)

    reg("template.validate", template_validate)
    reg("config.validate", config_validate)
    reg("config.migrate", config_migrate)

    # -- agents ------------------------------------------------------------------------------------
    async def create(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, CreateP)
        return {"agent": to_dict(await m.create(p.name, p.template, p.work_dir, p.overrides))}

    async def list_(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, ListP)
        return {"agents": m.list_records(p.status, p.template)}

    async def status_(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        return {"agent": m.status(p.name)}

    async def start(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, StartP)
        return {"agent": to_dict(await m.start(p.name, wait=p.wait))}

    async def stop(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, StopP)
        return {"agent": to_dict(await m.stop(p.name, p.timeout_seconds))}

    async def restart(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        return {"agent": to_dict(await m.restart(p.name))}

    async def destroy(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, DestroyP)
        return {"destroyed": await m.destroy(p.name, p.force), "name": p.name}

    async def sync(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        return {"agent": to_dict(await m.sync(p.name))}

    async def run(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, RunP)
        return await m.run_once(p.name, p.prompt, p.timeout_seconds)

    async def attach(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, AttachP)
        return {"agent": to_dict(await m.attach(p.name, p.pid))}

    async def detach(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        return {"agent": to_dict(await m.detach(p.name))}

    async def open_info(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        m.get(p.name)
        raise NotSupported("agent open comes with the materialization work; not supported yet", agent=p.name)

    async def logs_(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, LogsP)
        if p.lines < 0:
            raise InvalidParams("lines must be >= 0", lines=p.lines)
        path = m.log_path(p.name, p.stream)
        if not p.follow:
            return {"lines": await asyncio.to_thread(logs.tail_lines, path, p.lines)}
        if ctx.connection is None:
            raise InvalidParams("follow needs a connection")
        sub = f"log-{next(_ids)}"
        stop = asyncio.Event()
        conn = ctx.connection
        # One follower serves the tail and the stream, from the same offset, so no line falls in between.
        stream = logs.follow(path, start_lines=p.lines, stop=stop)
        lines = await anext(stream)

        async def pump() -> None:
            async for chunk in stream:
                if not conn.notify("log", {"subscription": sub, "agent": p.name, "stream": p.stream,
                                           "lines": chunk}):  # fmt: skip
                    break

        task = asyncio.get_running_loop().create_task(pump())
        daemon.streams[sub] = (stop, task, id(conn))

        def closed() -> None:
            stop.set()
            task.cancel()
            daemon.streams.pop(sub, None)

        conn.add_close_callback(closed)
        return {"lines": lines, "subscription": sub}

    for name, fn in {
        "agent.create": create,
        "agent.list": list_,
        "agent.status": status_,
        "agent.start": start,
        "agent.stop": stop,
        "agent.restart": restart,
        "agent.destroy": destroy,
        "agent.sync": sync,
        "agent.run": run,
        "agent.attach": attach,
        "agent.detach": detach,
        "agent.openInfo": open_info,
        "agent.logs": logs_,
    }.items():
        reg(name, fn)

    # -- events ------------------------------------------------------------------------------------
    async def subscribe(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, SubscribeP)
        conn = ctx.connection
        if conn is None:
            raise InvalidParams("subscribe needs a connection")
        holder: dict[str, str] = {}

        def deliver(event: dict[str, Any]) -> None:
            conn.notify("event", {"subscription": holder["id"], **event})

        sub_id = daemon.bus.subscribe(deliver, agent=p.agent, types=p.types or None, owner=id(conn))
        holder["id"] = sub_id

        def closed() -> None:
            daemon.bus.unsubscribe_all(id(conn))

        conn.add_close_callback(closed)
        return {"subscription": sub_id}

    async def unsubscribe(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, UnsubscribeP)
        owner = id(ctx.connection)
        stream = daemon.streams.get(p.subscription)
        if stream is not None and stream[2] == owner:
            del daemon.streams[p.subscription]
            stream[0].set()
            stream[1].cancel()
            return {"ok": True}
        return {"ok": daemon.bus.unsubscribe(p.subscription, owner=owner)}

    async def query(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, QueryP)
        if not 0 < p.limit <= 10_000:
            raise InvalidParams("limit must be between 1 and 10000", limit=p.limit)
        if p.since is not None:  # "what happened since X": the first N after it
            events = daemon.journal.query(agent=p.agent, types=p.types, since=p.since, limit=p.limit)
        else:  # "what happened lately": the last N, still in time order
            events = daemon.journal.query(agent=p.agent, types=p.types, limit=p.limit, order="desc")
            events.reverse()
        return {"events": events}

    reg("events.subscribe", subscribe)
    reg("events.unsubscribe", unsubscribe)
    reg("logs.unsubscribe", unsubscribe)
    reg("events.query", query)


def _register_kind(dispatcher: Dispatcher, daemon: Daemon, kind: str) -> None:
    async def list_(params: dict[str, Any], ctx: CallContext) -> Any:
        return {"items": daemon.configs.summaries(kind)}

    async def get(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameP)
        config, file = daemon.configs.get(kind, p.name)
        return {"item": to_jsonable(config), "file": file}

    dispatcher.register(f"{kind}.list", list_)
    dispatcher.register(f"{kind}.get", get)


MUTATING = frozenset(
    {
        "daemon.shutdown",
        "agent.create",
        "agent.start",
        "agent.stop",
        "agent.restart",
        "agent.destroy",
        "agent.sync",
        "agent.run",
        "agent.attach",
        "agent.detach",
        "config.migrate",
    }
)
"""Methods journaled as commands (DESIGN §10); reads are not history."""
