"""``events.*``: live subscriptions (tied to the calling connection) and journal queries."""

from __future__ import annotations

from typing import Any

from actantd.errors import InvalidParams
from actantd.rpc.protocol import CallContext
from actantd.rpc.registry import MethodTable, Params
from actantd.rpc.services import Services

METHODS = MethodTable()

QUERY_LIMIT_MAX = 10_000


class SubscribeP(Params):
    agent: str | None = None
    types: list[str] | None = None


class UnsubscribeP(Params):
    subscription: str


class QueryP(Params):
    agent: str | None = None
    types: list[str] | None = None
    since: str | float | None = None
    limit: int = 100


@METHODS.method("events.subscribe", params=SubscribeP)
async def subscribe(svc: Services, p: SubscribeP, ctx: CallContext) -> Any:
    conn = ctx.connection
    if conn is None:
        raise InvalidParams("subscribe needs a connection")
    holder: dict[str, str] = {}

    def deliver(event: dict[str, Any]) -> None:
        conn.notify("event", {"subscription": holder["id"], **event})

    sub_id = svc.bus.subscribe(deliver, agent=p.agent, types=p.types or None, owner=id(conn))
    holder["id"] = sub_id

    def closed() -> None:
        svc.bus.unsubscribe_all(id(conn))

    conn.add_close_callback(closed)
    return {"subscription": sub_id}


async def unsubscribe(svc: Services, p: UnsubscribeP, ctx: CallContext) -> Any:
    """Ends an event subscription or a log follow (``agent.logs`` with ``follow``) of this connection."""
    owner = id(ctx.connection)
    if svc.streams.close(p.subscription, owner):
        return {"ok": True}
    return {"ok": svc.bus.unsubscribe(p.subscription, owner=owner)}


METHODS.add("events.unsubscribe", unsubscribe, params=UnsubscribeP)
METHODS.add("logs.unsubscribe", unsubscribe, params=UnsubscribeP)


@METHODS.method("events.query", params=QueryP)
async def query(svc: Services, p: QueryP, ctx: CallContext) -> Any:
    if not 0 < p.limit <= QUERY_LIMIT_MAX:
        raise InvalidParams("limit must be between 1 and 10000", limit=p.limit)
    if p.since is not None:  # "what happened since X": the first N after it
        events = await svc.journal.aquery(agent=p.agent, types=p.types, since=p.since, limit=p.limit)
    else:  # "what happened lately": the last N, still in time order
        events = await svc.journal.aquery(agent=p.agent, types=p.types, limit=p.limit, order="desc")
        events.reverse()
    return {"events": events}
