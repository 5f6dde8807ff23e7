"""The narrow set of services RPC handlers may use, handed to them instead of the daemon.

Handlers depend on this, and the daemon builds it, so the RPC layer never imports the daemon module (no
import cycle; layers import downward only, see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from actantd.config.service import ConfigService
from actantd.events import EventBus
from actantd.journal import Journal
from actantd.manager import Manager
from actantd.paths import Layout
from actantd.rpc.streams import LogStreams


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """The few facts about the running daemon that ``daemon.*`` methods report or act on."""

    uptime: Callable[[], float]
    connection_count: Callable[[], int]
    request_shutdown: Callable[[bool], None]
    """Called with ``keep_agents``."""


@dataclass(frozen=True, slots=True)
class Services:
    manager: Manager
    configs: ConfigService
    journal: Journal
    bus: EventBus
    layout: Layout
    streams: LogStreams
    daemon: DaemonInfo
