"""The RPC method table, one module per namespace; :data:`METHODS` is all of them together."""

from __future__ import annotations

from actantd.rpc.handlers import agent, configs, daemon, events
from actantd.rpc.registry import MethodTable

METHODS = MethodTable(daemon.METHODS, configs.METHODS, agent.METHODS, events.METHODS)
