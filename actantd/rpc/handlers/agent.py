"""``agent.*``: thin adapters from params to one manager call, shaped by :mod:`actantd.rpc.results`."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Literal

import msgspec

from actantd.errors import InvalidParams
from actantd.rpc import results
from actantd.rpc.protocol import CallContext
from actantd.rpc.registry import MethodTable, Params
from actantd.rpc.services import Services
from actantd.supervisor import logs

METHODS = MethodTable()
_ids = itertools.count(1)


class NameP(Params):
    name: str


class CreateP(Params):
    name: str
    template: str
    work_dir: str | None = None
    overrides: dict[str, Any] | None = None
    repo: str | None = None
    branch: str | None = None
    base: str | None = None
    caller_env: dict[str, str] | None = None
    """The client's PATH and locale (actantctl/environment.py), used for this agent's launches."""


class ListP(Params):
    status: str | None = None
    template: str | None = None
    wide: bool = False
    live: bool = False
    """Add each agent's ``live`` figures (cpu, RSS, uptime) and ``backend``: what a table shows."""


class DiffP(Params):
    name: str
    stat: bool = False


class StartP(Params):
    name: str
    wait: bool = True
    caller_env: dict[str, str] | None = None


class RestartP(Params):
    name: str
    caller_env: dict[str, str] | None = None


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
    continue_session: bool = msgspec.field(default=False, name="continue")


class PromptP(Params):
    name: str
    text: str
    timeout_seconds: float | None = None
    permission_timeout_seconds: float | None = None
    answer_permissions: bool = False
    """The caller will answer permission requests itself (``agent.permission.respond``): offer them to it."""


class PermissionRespondP(Params):
    name: str
    permission: str
    option_id: str | None = None
    allow: bool | None = None


class LaunchSpecP(Params):
    name: str
    mode: Literal["service", "run", "open"] = "service"
    prompt: str | None = None
    reveal: bool = False


class AttachP(Params):
    name: str
    pid: int


@METHODS.method("agent.create", params=CreateP, mutating=True)
async def create(svc: Services, p: CreateP, ctx: CallContext) -> Any:
    warnings: list[str] = []
    m = svc.manager
    before = m.records.get(p.name)
    record = await m.create(p.name, p.template, p.work_dir, p.overrides, p.repo, p.branch, p.base, warnings)
    m.remember_caller_env(p.name, p.caller_env)
    # An identical repeat returns the existing record unchanged: say so, so the client can.
    return {"agent": results.agent(record), "warnings": warnings, "created": record is not before}


@METHODS.method("agent.list", params=ListP)
async def list_(svc: Services, p: ListP, ctx: CallContext) -> Any:
    m = svc.manager
    records = m.records
    if results.cache_size() > 2 * len(records):  # destroyed instances: drop their cached encodings
        results.prune_encoded(records)
    if not (p.live or p.wide):  # the common call: each record's JSON encoded once per change
        return {"agents": results.agent_list(records.values(), p.status, p.template)}
    agents = [results.agent(r) for r in results.select(records.values(), p.status, p.template)]
    if p.live:
        for item in agents:
            record = records.get(item["name"])
            if record is not None:
                item.update(live=results.live(m.live(record)), backend=m.backend_of(record))
    if p.wide:  # git runs per worktree agent: only when asked for (`agent list -o wide`), off the loop
        await asyncio.to_thread(_add_worktrees, svc, agents)
    return {"agents": agents}


def _add_worktrees(svc: Services, agents: list[dict[str, Any]]) -> None:
    for item in agents:
        record = svc.manager.records.get(item["name"])
        if record is not None and record.repo is not None:
            item["worktree"] = svc.manager.worktree_status(record)


@METHODS.method("agent.status", params=NameP)
async def status(svc: Services, p: NameP, ctx: CallContext) -> Any:
    m = svc.manager
    record = m.get(p.name)
    figures = m.live(record)
    out = results.agent_status(record, figures, svc.layout.log_dir(p.name), m.workspace(record))
    out["backend"] = m.backend_of(record)
    if record.repo is not None:  # a worktree's branch, ahead/behind and changes: git, so off the loop
        out["worktree"] = await asyncio.to_thread(m.worktree_status, record)
    out["acp"] = m.acp_status(p.name)  # the live ACP session of an agent that speaks ACP, else None
    return {"agent": out}


@METHODS.method("agent.diff", params=DiffP)
async def diff(svc: Services, p: DiffP, ctx: CallContext) -> Any:
    return await asyncio.to_thread(svc.manager.diff, p.name, p.stat)


@METHODS.method("agent.start", params=StartP, mutating=True)
async def start(svc: Services, p: StartP, ctx: CallContext) -> Any:
    record = await svc.manager.start(p.name, wait=p.wait, caller_env=p.caller_env)
    return {"agent": results.agent(record), "restartPending": svc.manager.process(p.name).restart_pending}


@METHODS.method("agent.stop", params=StopP, mutating=True)
async def stop(svc: Services, p: StopP, ctx: CallContext) -> Any:
    record = await svc.manager.stop(p.name, p.timeout_seconds)
    return {"agent": results.agent(record), **_unwritten(svc, p.name)}


def _unwritten(svc: Services, name: str) -> dict[str, Any]:
    """``stateWriteError`` when the instance's record could not be written (kept in memory, retried)."""
    why = svc.manager.unwritten.get(name)
    return {"stateWriteError": why} if why is not None else {}


@METHODS.method("agent.restart", params=RestartP, mutating=True)
async def restart(svc: Services, p: RestartP, ctx: CallContext) -> Any:
    record = await svc.manager.restart(p.name, p.caller_env)
    return {"agent": results.agent(record), "restartPending": svc.manager.process(p.name).restart_pending}


@METHODS.method("agent.destroy", params=DestroyP, mutating=True)
async def destroy(svc: Services, p: DestroyP, ctx: CallContext) -> Any:
    return {"destroyed": await svc.manager.destroy(p.name, p.force), "name": p.name}


@METHODS.method("agent.sync", params=NameP, mutating=True)
async def sync(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.sync(p.name))}


@METHODS.method("agent.run", params=RunP, mutating=True)
async def run(svc: Services, p: RunP, ctx: CallContext) -> Any:
    """One-shot run; the agent's output streams to the caller as ``log`` notifications while it runs."""
    conn = ctx.connection
    run_id = f"run-{next(_ids)}"

    def on_line(stream: str, line: str) -> None:
        if conn is not None:
            conn.notify("log", {"subscription": run_id, "agent": p.name, "stream": stream, "lines": [line]})

    result = await svc.manager.run_once(p.name, p.prompt, p.timeout_seconds, continue_session=p.continue_session,
                                        on_line=on_line)  # fmt: skip
    return {"run": run_id, **result}


@METHODS.method("agent.prompt", params=PromptP, mutating=True)
async def prompt(svc: Services, p: PromptP, ctx: CallContext) -> Any:
    """One turn of the live ACP session; its updates stream as ``prompt.update`` notifications."""
    for key, value in (("timeoutSeconds", p.timeout_seconds), ("permissionTimeoutSeconds",
                                                                p.permission_timeout_seconds)):  # fmt: skip
        if value is not None and value <= 0:
            raise InvalidParams(f"{key} must be > 0", **{key: value})
    conn = ctx.connection
    prompt_id = f"prompt-{next(_ids)}"

    def on_update(update: dict[str, Any]) -> None:
        if conn is not None:
            conn.notify("prompt.update", {"subscription": prompt_id, "agent": p.name, "update": update})

    def on_permission(request: dict[str, Any]) -> bool:
        if conn is None or not p.answer_permissions:
            return False
        return conn.notify("prompt.permission", {"subscription": prompt_id, "agent": p.name, **request})

    result = await svc.manager.prompt(p.name, p.text, timeout=p.timeout_seconds,
                                      permission_timeout=p.permission_timeout_seconds, on_update=on_update,
                                      on_permission=on_permission)  # fmt: skip
    return {"prompt": prompt_id, **result}


@METHODS.method("agent.prompt.cancel", params=NameP, mutating=True)
async def prompt_cancel(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"cancelled": await svc.manager.acp_session(p.name).cancel()}


@METHODS.method("agent.permission.respond", params=PermissionRespondP, mutating=True)
async def permission_respond(svc: Services, p: PermissionRespondP, ctx: CallContext) -> Any:
    return svc.manager.acp_session(p.name).respond(p.permission, option_id=p.option_id, allow=p.allow)


@METHODS.method("agent.attach", params=AttachP, mutating=True)
async def attach(svc: Services, p: AttachP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.attach(p.name, p.pid))}


@METHODS.method("agent.detach", params=NameP, mutating=True)
async def detach(svc: Services, p: NameP, ctx: CallContext) -> Any:
    return {"agent": results.agent(await svc.manager.detach(p.name))}


@METHODS.method("agent.launchSpec", params=LaunchSpecP)
async def launch_spec(svc: Services, p: LaunchSpecP, ctx: CallContext) -> Any:
    """How Actant would start the agent in ``mode``: argv, cwd and only the env Actant adds to its own; the
    template's and instance's env values (where secrets go) are masked unless ``reveal``."""
    spec, secret = svc.manager.launch_spec(p.name, p.mode, p.prompt)
    return results.launch_spec(spec, p.mode, secret, reveal=p.reveal)


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
