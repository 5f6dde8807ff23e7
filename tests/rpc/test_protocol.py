"""JSON-RPC envelope and dispatch rules, straight through ``Dispatcher.handle_payload`` (no socket)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec
import pytest

from actantd.errors import AgentNotFound, InvalidParams
from actantd.rpc.protocol import CallContext, CallOutcome, Dispatcher, decode_params


class NameParams(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: str
    timeout_seconds: float = 10.0


def make_dispatcher() -> Dispatcher:
    d = Dispatcher()

    @d.register("echo")
    async def echo(params: dict[str, Any], ctx: CallContext) -> Any:
        return params

    @d.register("fail")
    async def fail(params: dict[str, Any], ctx: CallContext) -> Any:
        raise AgentNotFound("no such agent: x", name="x")

    @d.register("boom")
    async def boom(params: dict[str, Any], ctx: CallContext) -> Any:
        raise RuntimeError("secret internal detail")

    @d.register("typed")
    async def typed(params: dict[str, Any], ctx: CallContext) -> Any:
        p = decode_params(params, NameParams)
        return {"name": p.name, "timeoutSeconds": p.timeout_seconds}

    @d.register("unencodable")
    async def unencodable(params: dict[str, Any], ctx: CallContext) -> Any:
        return object()

    return d


async def call(d: Dispatcher, message: Any) -> Any:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    reply = await d.handle_payload(raw, CallContext())
    return None if reply is None else json.loads(reply)


def req(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        msg["params"] = params
    return msg


async def test_success_echoes_id_and_result() -> None:
    d = make_dispatcher()
    assert await call(d, req("echo", {"a": [1, 2]}, id="x-1")) == {
        "jsonrpc": "2.0",
        "id": "x-1",
        "result": {"a": [1, 2]},
    }
    assert (await call(d, req("echo", id=None)))["id"] is None  # null id is a request, not a notification
    assert (await call(d, req("echo", [])))["result"] == {}  # empty positional params are tolerated


async def test_parse_error_has_null_id() -> None:
    for raw in (b'{"jsonrpc": "2.0", "method": "echo", "id": 1', b"\xff\xfe", b'{"\x80": 1}', b"[" * 100_000, b""):
        reply = await call(make_dispatcher(), raw)
        assert reply["id"] is None
        assert reply["error"]["code"] == -32700
        assert reply["error"]["data"]["errorCode"] == "PARSE_ERROR"


@pytest.mark.parametrize(
    ("message", "reply_id"),
    [
        ({"jsonrpc": "1.0", "method": "echo", "id": 5}, 5),
        ({"method": "echo", "id": 5}, 5),
        ({"jsonrpc": "2.0", "method": 7, "id": 5}, 5),
        ({"jsonrpc": "2.0", "id": 5}, 5),
        ({"jsonrpc": "2.0", "method": "echo", "params": "x", "id": 5}, 5),
        ({"jsonrpc": "2.0", "method": "echo", "params": 3}, None),
        ({"jsonrpc": "2.0", "method": "echo", "id": 1.5}, None),
        ({"jsonrpc": "2.0", "method": "echo", "id": True}, None),
        ({"jsonrpc": "2.0", "method": "echo", "id": {"a": 1}}, None),
        ({"jsonrpc": "2.0", "method": "echo", "id": [1]}, None),
        (1, None),
        ("x", None),
        (None, None),
    ],
)
async def test_invalid_envelopes(message: Any, reply_id: Any) -> None:
    reply = await call(make_dispatcher(), message)
    assert reply == {
        "jsonrpc": "2.0",
        "id": reply_id,
        "error": {
            "code": -32600,
            "message": reply["error"]["message"],
            "data": {"errorCode": "INVALID_REQUEST", "context": {}},
        },
    }


async def test_unknown_method() -> None:
    reply = await call(make_dispatcher(), req("nope.nothing"))
    assert reply["error"]["code"] == -32601
    assert reply["error"]["data"] == {"errorCode": "METHOD_NOT_FOUND", "context": {"method": "nope.nothing"}}


async def test_positional_params_are_invalid() -> None:
    reply = await call(make_dispatcher(), req("echo", [1, 2]))
    assert reply["error"]["code"] == -32602


async def test_actant_error_goes_out_verbatim() -> None:
    reply = await call(make_dispatcher(), req("fail"))
    assert reply["error"] == AgentNotFound("no such agent: x", name="x").to_rpc()


async def test_unexpected_exception_is_generic_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="actantd.rpc.protocol"):
        reply = await call(make_dispatcher(), req("boom"))
    assert reply["error"]["code"] == -32603
    assert "secret" not in json.dumps(reply)
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


async def test_unencodable_result_is_an_internal_error() -> None:
    reply = await call(make_dispatcher(), req("unencodable", id=9))
    assert reply["id"] == 9
    assert reply["error"]["code"] == -32603


async def test_decode_params_names_the_field() -> None:
    d = make_dispatcher()
    reply = await call(d, req("typed", {"name": 3}))
    err = reply["error"]
    assert err["code"] == -32602
    assert "Expected `str`, got `int` - at `$.name`" in err["message"]
    assert err["data"]["context"]["path"] == "$.name"
    reply = await call(d, req("typed", {"nme": "x"}))
    assert reply["error"]["code"] == -32602
    assert (await call(d, req("typed", {"name": "a", "timeoutSeconds": 2})))["result"] == {
        "name": "a",
        "timeoutSeconds": 2.0,
    }
    with pytest.raises(InvalidParams):
        decode_params({}, NameParams)


async def test_notifications_get_no_reply_even_when_failing() -> None:
    d = make_dispatcher()
    for method in ("echo", "fail", "boom", "missing"):
        assert await call(d, {"jsonrpc": "2.0", "method": method}) is None


async def test_batches() -> None:
    d = make_dispatcher()
    reply = await call(
        d,
        [
            req("echo", {"n": 1}, id=1),
            {"jsonrpc": "2.0", "method": "echo"},  # notification: no entry
            req("fail", id=2),
            {"foo": "boo"},
            1,
            req("missing", id="m"),
        ],
    )
    assert isinstance(reply, list) and len(reply) == 5
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    assert by_id[1]["result"] == {"n": 1}
    assert by_id[2]["error"]["code"] == -32003
    assert by_id["m"]["error"]["code"] == -32601
    assert [r["error"]["code"] for r in reply if r["id"] is None] == [-32600, -32600]


async def test_empty_batch_is_one_error_and_all_notification_batch_is_silent() -> None:
    d = make_dispatcher()
    reply = await call(d, [])
    assert reply["error"]["code"] == -32600 and reply["id"] is None
    assert await call(d, [{"jsonrpc": "2.0", "method": "echo"}] * 3) is None


async def test_batch_entries_run_concurrently() -> None:
    """Entry 1 waits for entry 2: a sequential batch would deadlock."""
    d = Dispatcher()
    gate = asyncio.Event()

    @d.register("wait")
    async def wait(params: dict[str, Any], ctx: CallContext) -> Any:
        await gate.wait()
        return "waited"

    @d.register("open")
    async def open_(params: dict[str, Any], ctx: CallContext) -> Any:
        gate.set()
        return "opened"

    reply = await asyncio.wait_for(call(d, [req("wait", id=1), req("open", id=2)]), 5)
    assert [r["result"] for r in reply] == ["waited", "opened"]  # input order is kept


async def test_big_batch_is_bounded_and_complete() -> None:
    d = Dispatcher(batch_concurrency=4)
    running = 0
    peak = 0

    @d.register("count")
    async def count(params: dict[str, Any], ctx: CallContext) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return params["i"]

    reply = await call(d, [req("count", {"i": i}, id=i) for i in range(500)])
    assert [r["result"] for r in reply] == list(range(500))
    assert peak == 4


async def test_on_call_hook_sees_every_well_formed_call() -> None:
    seen: list[tuple[str, str, float, int | None]] = []

    async def hook(method: str, params: dict[str, Any], ctx: CallContext, outcome: CallOutcome, took: float) -> None:
        seen.append((method, outcome.label, took, ctx.peer_uid))

    d = make_dispatcher()
    d.on_call = hook
    ctx = CallContext(peer_uid=1234, peer_pid=99)
    await d.handle_payload(json.dumps(req("echo")).encode(), ctx)
    await d.handle_payload(json.dumps([req("fail"), {"jsonrpc": "2.0", "method": "boom"}]).encode(), ctx)
    await d.handle_payload(json.dumps(req("nope")).encode(), ctx)
    await d.handle_payload(b'{"jsonrpc": "2.0"}', ctx)  # not a call: not reported
    assert sorted((m, label) for m, label, _, _ in seen) == [
        ("boom", "INTERNAL_ERROR"),
        ("echo", "ok"),
        ("fail", "AGENT_NOT_FOUND"),
        ("nope", "METHOD_NOT_FOUND"),
    ]
    assert all(took >= 0 and uid == 1234 for _, _, took, uid in seen)


async def test_failing_hook_does_not_change_the_reply(caplog: pytest.LogCaptureFixture) -> None:
    def hook(*args: Any) -> None:
        raise RuntimeError("journal is down")

    d = make_dispatcher()
    d.on_call = hook
    with caplog.at_level(logging.ERROR):
        reply = await call(d, req("echo", {"x": 1}))
    assert reply["result"] == {"x": 1}
    assert "on_call hook failed" in caplog.text


async def test_register_forms_and_duplicates() -> None:
    d = Dispatcher()

    async def h(params: dict[str, Any], ctx: CallContext) -> Any:
        return 1

    assert d.register("a.b", h) is h
    assert d.register("a.c")(h) is h
    assert d.methods == ["a.b", "a.c"]
    with pytest.raises(ValueError, match="already registered"):
        d.register("a.b", h)
    assert await d.call("a.b", {}, CallContext()) == 1
    with pytest.raises(AgentNotFound):
        await make_dispatcher().call("fail", {}, CallContext())
