"""JSON-RPC 2.0 envelope, dispatch and error mapping, independent of any socket.

The server hands each framed payload to :meth:`Dispatcher.handle_payload` and writes back whatever bytes it
returns; everything about the JSON-RPC spec lives here, so it can be tested (and fuzzed) without a socket and
the method modules only ever see a params dict and a :class:`CallContext`.

Error policy: a handler raises an :class:`~actantd.errors.ActantError` on purpose and the client receives its
``to_rpc()`` verbatim; anything else is a bug, logged with its traceback and answered with a generic -32603 so
internals (paths, reprs) never leak to clients.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, overload

import msgspec

from actantd.errors import (
    ActantError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MessageTooLarge,
    MethodNotFound,
    ParseError,
)

logger = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

DEFAULT_BATCH_CONCURRENCY = 32
"""Batch entries run concurrently, but through a bounded pool: an 8 MiB batch of tiny requests would
otherwise become hundreds of thousands of tasks at once."""
MAX_REPLY_BYTES = 8 * 1024 * 1024
"""No reply (a single one, or a whole batch's) is built past this: the same bound as a request. A result
that would be larger is answered with MESSAGE_TOO_LARGE, so a client asking for a billion log lines gets
an error, not a 300 MiB buffer in the daemon."""
BATCH_SLICE_SECONDS = 0.002
"""Most handlers finish without awaiting anything (an unknown agent, a status read), so a batch of 100,000
of them would otherwise run in one piece and hold the event loop for seconds: other clients and crash
detection would wait. A batch gives the loop back whenever it has run this long."""


class Channel(Protocol):
    """What a handler may do with the connection it was called on (push events, learn when it goes away)."""

    def notify(self, method: str, params: Any = None) -> bool: ...

    def add_close_callback(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and since when; one per call (batch entries get their own ``started``)."""

    connection: Channel | None = None
    peer_pid: int | None = None
    peer_uid: int | None = None
    peer_gid: int | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ended, for the journal: ``error`` is None on success."""

    error: ActantError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        return "ok" if self.error is None else self.error.error_code


Handler = Callable[[dict[str, Any], CallContext], Awaitable[Any]]
OnCall = Callable[[str, dict[str, Any], CallContext, CallOutcome, float], Awaitable[None] | None]
"""``on_call(method, params, ctx, outcome, duration_seconds)``: run after every well-formed call (requests and
notifications, including unknown methods) so the daemon can journal mutating ones. Its failures are logged and
never change the reply."""

H = TypeVar("H", bound=Handler)
T = TypeVar("T")

_PATH_RE = re.compile(r"at `(\$[^`]*)`")


def decode_params(params: Any, typ: type[T]) -> T:
    """Convert a params dict into a msgspec Struct, turning a validation error into -32602 naming the field.

    The message keeps msgspec's wording (``Expected `str`, got `int` - at `$.name```) because it already names
    the JSON path, which is what a client author needs to fix the call.
    """
    try:
        return msgspec.convert(params, typ)
    except msgspec.ValidationError as exc:
        raise _invalid_params(exc) from None


def _invalid_params(exc: msgspec.ValidationError) -> InvalidParams:
    reason = str(exc)
    context: dict[str, Any] = {"reason": reason}
    if match := _PATH_RE.search(reason):
        context["path"] = match.group(1)
    return InvalidParams(f"invalid params: {reason}", **context)


def encode_error(error: ActantError, id: str | int | None = None) -> bytes:
    """A complete error response, for callers outside dispatch (framing errors, refused peers)."""
    return _encoder.encode({"jsonrpc": "2.0", "id": id, "error": error.to_rpc()})


def encode_notification(method: str, params: Any = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return _encoder.encode(msg)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    params: dict[str, Any] | list[Any]
    id: str | int | None
    notification: bool


@dataclass(frozen=True, slots=True)
class _Invalid:
    id: str | int | None
    error: ActantError


def _parse_envelope(msg: Any) -> _Request | _Invalid:
    if not isinstance(msg, dict):
        return _Invalid(None, InvalidRequest("a request must be a JSON object"))
    has_id = "id" in msg
    rid = msg.get("id")
    # bool is an int subclass in Python but not a valid JSON-RPC id; floats are "SHOULD NOT" and break equality.
    id_ok = rid is None or (isinstance(rid, str | int) and not isinstance(rid, bool))
    reply_id = rid if id_ok else None
    if msg.get("jsonrpc") != "2.0":
        return _Invalid(reply_id, InvalidRequest('"jsonrpc" must be "2.0"'))
    if not id_ok:
        return _Invalid(None, InvalidRequest('"id" must be a string, an integer or null'))
    method = msg.get("method")
    if not isinstance(method, str):
        return _Invalid(reply_id, InvalidRequest('"method" must be a string'))
    params = msg.get("params", {})
    if not isinstance(params, dict | list):
        return _Invalid(reply_id, InvalidRequest('"params" must be an object or an array'))
    return _Request(method, params, reply_id, notification=not has_id)


def _reply_too_large(msg: Any, size: int) -> bytes:
    rid = msg.get("id") if isinstance(msg, dict) else None
    rid = rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None
    error = MessageTooLarge(f"the batch's replies passed the {MAX_REPLY_BYTES}-byte limit", limit=MAX_REPLY_BYTES)
    return encode_error(error, rid)


class Dispatcher:
    """Method table plus the JSON-RPC rules around it; one per daemon, shared by every connection."""

    def __init__(self, *, on_call: OnCall | None = None, batch_concurrency: int = DEFAULT_BATCH_CONCURRENCY) -> None:
        self._handlers: dict[str, Handler] = {}
        self.on_call = on_call
        self._batch_concurrency = max(1, batch_concurrency)

    @overload
    def register(self, method: str) -> Callable[[H], H]: ...

    @overload
    def register(self, method: str, handler: H) -> H: ...

    def register(self, method: str, handler: H | None = None) -> H | Callable[[H], H]:
        """``d.register("agent.start", fn)`` or ``@d.register("agent.start")``; a name registers once."""

        def add(fn: H) -> H:
            if method in self._handlers:
                raise ValueError(f"RPC method {method!r} is already registered")
            self._handlers[method] = fn
            return fn

        return add if handler is None else add(handler)

    @property
    def methods(self) -> list[str]:
        return sorted(self._handlers)

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> Any:
        """Run one method in-process (no envelope); raises the typed error the client would have received."""
        result, error = await self._invoke(method, params, ctx)
        if error is not None:
            raise error
        return result

    async def handle_payload(self, payload: bytes, ctx: CallContext) -> bytes | None:
        """One framed message in, the encoded response out (None when nothing is owed: notifications)."""
        try:
            msg = _decoder.decode(payload)
        except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # ValueError: invalid UTF-8 in a string
            return encode_error(ParseError(f"invalid JSON: {exc}"))
        if isinstance(msg, list):
            if not msg:
                return encode_error(InvalidRequest("empty batch"))
            parts = await self._batch(msg, ctx)
            return b"[" + b",".join(parts) + b"]" if parts else None
        return await self._one(msg, ctx)

    async def _batch(self, items: list[Any], ctx: CallContext) -> list[bytes]:
        replies: list[bytes | None] = [None] * len(items)
        indices: Iterator[int] = iter(range(len(items)))
        slice_started = [time.monotonic()]
        total = [0]

        async def worker() -> None:
            for i in indices:  # shared iterator: each worker takes the next unclaimed entry
                reply = await self._one(items[i], ctx)
                if reply is not None:
                    total[0] += len(reply)
                    if total[0] > MAX_REPLY_BYTES:
                        reply = _reply_too_large(items[i], total[0])
                        total[0] += len(reply)
                replies[i] = reply
                now = time.monotonic()
                if now - slice_started[0] >= BATCH_SLICE_SECONDS:
                    await asyncio.sleep(0)  # let the rest of the daemon run between slices
                    slice_started[0] = time.monotonic()

        workers = min(len(items), self._batch_concurrency)
        if workers == 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))
        return [r for r in replies if r is not None]

    async def _one(self, msg: Any, base: CallContext) -> bytes | None:
        req = _parse_envelope(msg)
        if isinstance(req, _Invalid):
            return encode_error(req.error, req.id)
        ctx = replace(base, started=time.monotonic())
        params: dict[str, Any] = {}
        if isinstance(req.params, dict):
            params = req.params
        result: Any = None
        error: ActantError | None
        if isinstance(req.params, list) and req.params:
            error = InvalidParams("positional params are not supported; pass an object", method=req.method)
        else:
            result, error = await self._invoke(req.method, params, ctx)
        reply: bytes | None = None
        if not req.notification:
            if error is None:
                try:
                    reply = _encoder.encode({"jsonrpc": "2.0", "id": req.id, "result": result})
                except Exception:
                    logger.exception("result of RPC method %s could not be encoded", req.method)
                    error = InternalError("internal error: the result could not be encoded", method=req.method)
                else:
                    if len(reply) > MAX_REPLY_BYTES:
                        error = MessageTooLarge(
                            f"the result of {req.method} is {len(reply)} bytes, over the {MAX_REPLY_BYTES}-byte "
                            "reply limit; ask for less",
                            size=len(reply),
                            limit=MAX_REPLY_BYTES,
                        )
                        reply = None
            if error is not None:
                reply = encode_error(error, req.id)
        await self._report(req.method, params, ctx, CallOutcome(error))
        return reply

    async def _invoke(self, method: str, params: dict[str, Any], ctx: CallContext) -> tuple[Any, ActantError | None]:
        handler = self._handlers.get(method)
        if handler is None:
            return None, MethodNotFound(f"method not found: {method}", method=method)
        try:
            return await handler(params, ctx), None
        except ActantError as exc:
            return None, exc
        except msgspec.ValidationError as exc:  # a handler converting params itself
            return None, _invalid_params(exc)
        except Exception:
            logger.exception("RPC method %s failed", method)
            return None, InternalError("internal error; see the daemon log", method=method)

    async def _report(self, method: str, params: dict[str, Any], ctx: CallContext, outcome: CallOutcome) -> None:
        if self.on_call is None:
            return
        try:
            pending = self.on_call(method, params, ctx, outcome, time.monotonic() - ctx.started)
            if inspect.isawaitable(pending):
                await pending
        except Exception:
            logger.exception("on_call hook failed for %s", method)
