"""Declarative method tables: each RPC handler is a plain function registered with its name, its params
Struct and whether it is *mutating* (journaled as a command; reads are not history).

A handler is ``async def handler(svc: Services, params, ctx) -> result``: ``params`` is the decoded Struct
(a wrong type is -32602 naming the field) or, for a method registered without one, the raw params. Handlers
get the narrow :class:`~actantd.rpc.services.Services`, never the daemon. docs/architecture.md, "Adding an
RPC method", walks through one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from actantd.rpc.protocol import CallContext, Dispatcher, decode_params
from actantd.rpc.services import Services

Handler = Callable[[Services, Any, CallContext], Awaitable[Any]]
F = TypeVar("F", bound=Handler)


class Params(msgspec.Struct, rename="camel", kw_only=True):
    """Params base: unknown keys are ignored so newer clients keep working with this daemon."""


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Handler
    params: type[Params] | None
    mutating: bool


class MethodTable:
    """An ordered set of :class:`Method`; one per handler module, merged into one for the daemon."""

    def __init__(self, *parts: MethodTable) -> None:
        self._methods: dict[str, Method] = {}
        for part in parts:
            for method in part:
                self._add(method)

    def _add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"RPC method {method.name!r} is registered twice")
        self._methods[method.name] = method

    def method(self, name: str, *, params: type[Params] | None = None, mutating: bool = False) -> Callable[[F], F]:
        """Decorator: ``@METHODS.method("agent.start", params=StartP, mutating=True)``."""

        def register(fn: F) -> F:
            self._add(Method(name, fn, params, mutating))
            return fn

        return register

    def add(self, name: str, handler: Handler, *, params: type[Params] | None = None, mutating: bool = False) -> None:
        self._add(Method(name, handler, params, mutating))

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def is_mutating(self, name: str) -> bool:
        method = self._methods.get(name)
        return method is not None and method.mutating

    def bind(self, dispatcher: Dispatcher, svc: Services) -> None:
        """Register every method on ``dispatcher``, each bound to ``svc`` and decoding its params."""
        for method in self:
            dispatcher.register(method.name, _bound(method, svc))


def _bound(method: Method, svc: Services) -> Callable[[dict[str, Any], CallContext], Awaitable[Any]]:
    handler, typ = method.handler, method.params

    async def call(params: dict[str, Any], ctx: CallContext) -> Any:
        return await handler(svc, params if typ is None else decode_params(params, typ), ctx)

    call.__name__ = call.__qualname__ = method.name
    return call
