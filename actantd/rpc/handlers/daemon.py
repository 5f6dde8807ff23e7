"""``daemon.*``: liveness, status, shutdown."""

from __future__ import annotations

import os
from typing import Any

from actantd import __version__
from actantd.rpc.protocol import CallContext
from actantd.rpc.registry import MethodTable, Params
from actantd.rpc.services import Services

METHODS = MethodTable()


class ShutdownP(Params):
    keep_agents: bool = False


@METHODS.method("daemon.ping")
async def ping(svc: Services, params: Any, ctx: CallContext) -> Any:
    return {"version": __version__, "pid": os.getpid(), "uptimeSeconds": svc.daemon.uptime()}


@METHODS.method("daemon.status")
async def status(svc: Services, params: Any, ctx: CallContext) -> Any:
    m = svc.manager
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptimeSeconds": svc.daemon.uptime(),
        "home": str(svc.layout.home),
        "configs": str(svc.layout.configs),
        "socket": str(svc.layout.socket),
        "instances": {"total": len(m.records), "byStatus": m.counts()},
        "instancesTooNew": m.too_new,
        "configErrors": [str(e) for e in svc.configs.errors],
        "configWarnings": [str(w) for w in svc.configs.warnings],
        "connections": svc.daemon.connection_count(),
        "journalDropped": svc.journal.dropped,
    }


@METHODS.method("daemon.shutdown", params=ShutdownP, mutating=True)
async def shutdown(svc: Services, p: ShutdownP, ctx: CallContext) -> Any:
    svc.daemon.request_shutdown(p.keep_agents)
    return {"ok": True}
