"""``actantd``: wiring of lock, paths, configs, manager, RPC server, watchers, signals and sd_notify.

Start-up order matters and is the contract systemd and clients rely on: take the home's lock (one daemon per
home), seed and load configs, claim the socket (bind and listen, so a daemon that loses the socket race stops
before touching its home), recover instances (re-adopting live agents), *then* accept connections and send
``READY=1`` — so a client that can connect sees a fully recovered state (early ones wait in the backlog).
Shutdown runs the other way round: agents are stopped while the socket still answers status queries, then the
socket goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from actantd import __version__, eventloop, sdnotify
from actantd.config.service import ConfigService
from actantd.config.store import seed_configs
from actantd.config.watch import Reload
from actantd.errors import ActantError
from actantd.events import Event, EventBus
from actantd.identity import write_identity
from actantd.instances.state import ACTIVE, Status
from actantd.journal import Journal
from actantd.libc import libc
from actantd.limits import LOG_BACKUPS, LOG_MAX_BYTES, SOCKET_PATH_MAX
from actantd.manager import Manager
from actantd.paths import LOG_STREAMS, Layout, default_configs, default_home, resolve_socket
from actantd.rpc.handlers import METHODS
from actantd.rpc.protocol import CallContext, CallOutcome, Dispatcher
from actantd.rpc.server import RpcServer, inherited_listen_socket
from actantd.rpc.services import DaemonInfo, Services
from actantd.rpc.streams import LogStreams
from actantd.supervisor import exits
from actantd.supervisor.log_guard import LogGuard
from actantd.supervisor.spawn import default_ignored_signals, set_child_subreaper

log = logging.getLogger("actantd")

HOUSEKEEPING_SECONDS = 1.0
"""How often records kept in memory after a failed write are tried again, while there are any."""
TRIM_AFTER_SECONDS = 10.0
"""The heap is trimmed this long after the first call or transition since the last trim (never while idle)."""
CONFIG_DEBOUNCE_MS = 50
M_ARENA_MAX = -8  # glibc mallopt parameter
_ACTIVE_VALUES = frozenset(status.value for status in ACTIVE)
_GUARD_ON = frozenset({Status.STARTING.value, Status.RUNNING.value})


class AlreadyRunning(Exception):
    pass


def acquire_lock(layout: Layout) -> IO[str]:
    """flock on ``{home}/actantd.lock`` for the daemon's lifetime; the kernel drops it if we die."""
    secure_home(layout.home)
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    handle = open(fd, "a+")  # noqa: SIM115 - held open for the whole process lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"actantd: another daemon (pid {holder}) is already running for home {layout.home}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def secure_home(home: Path) -> None:
    """Create the home 0700, and tighten one that others can read (hardening #10, class 10).

    The home holds every instance's ``.actant.json`` (with ``--env`` values), the journal and the logs: a
    home made by hand, or by an older version, with mode 0755 would let every local user read them.
    Only a directory we own is changed; any other is reported and left alone.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.stat(home)
    if st.st_mode & 0o077:
        if st.st_uid == os.getuid():
            os.chmod(home, 0o700)
            log.warning("home %s had mode %o, readable by others; tightened to 0700", home, st.st_mode & 0o777)
        else:
            log.warning("home %s has mode %o and is not ours: others may read agent state", home, st.st_mode & 0o777)


class Daemon:
    def __init__(self, layout: Layout, *, signal_handlers: bool = True) -> None:
        self.layout = layout
        self._signal_handlers = signal_handlers
        """False when embedded (the tests' in-process daemon): handlers can only be set from the main thread."""
        self.ready = asyncio.Event()
        """Set once the socket listens and READY=1 is sent: the in-process readiness event."""
        self.started = time.monotonic()
        self.journal = Journal(layout.journal)
        self.journal.start_writer()  # inserts in batches off the event loop (hardening #10, class 5)
        self.bus = EventBus()
        self.configs = ConfigService(layout.configs, on_reload=self._on_reload, debounce_ms=CONFIG_DEBOUNCE_MS)
        self.manager = Manager(layout, lambda: self.configs.registry, self.journal, self.bus)
        self.dispatcher = Dispatcher(on_call=self._on_call)
        self.streams = LogStreams()
        self.methods = METHODS
        info = DaemonInfo(
            uptime=self.uptime,
            connection_count=self.connection_count,
            request_shutdown=lambda keep_agents: self.request_shutdown(keep_agents=keep_agents),
        )
        services = Services(self.manager, self.configs, self.journal, self.bus, layout, self.streams, info)
        self.methods.bind(self.dispatcher, services)
        self.server: RpcServer | None = None
        self.log_guard = LogGuard(LOG_MAX_BYTES, LOG_BACKUPS)
        self._stop = asyncio.Event()
        self._keep_agents = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._hup_tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping_due = asyncio.Event()
        """Set when there may be housekeeping to do (a failed write, activity to trim after): no timer idles."""
        self._active_since_trim = False
        self.bus.subscribe(self._on_event, types=["transition", "instance"])

    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def connection_count(self) -> int:
        return len(self.server.connections) if self.server is not None else 0

    def request_shutdown(self, keep_agents: bool = False) -> None:
        self._keep_agents = self._keep_agents or keep_agents
        self._stop.set()

    async def _on_call(
        self, method: str, params: dict[str, Any], ctx: CallContext, outcome: CallOutcome, duration: float
    ) -> None:
        self._note_activity()
        if self.methods.is_mutating(method):
            entry = self.journal.command(
                method,
                params,
                peer_uid=ctx.peer_uid,
                peer_pid=ctx.peer_pid,
                outcome=outcome.label,
                duration_ms=round(duration * 1000, 3),
                error=outcome.error.message if outcome.error else None,
            )
            self.bus.publish(entry)

    async def _on_reload(self, reload: Reload) -> None:
        """Journal and announce what changed; re-materialize every instance of an affected template."""
        for issue in reload.result.errors:
            log.warning("config: %s", issue)  # the terminal running the daemon hears of it too, not only events
            self.bus.publish(self.journal.record("config.error", None, file=issue.file, message=str(issue)))
        if reload.changed:
            changed = sorted(f"{kind}/{name}" for kind, name in reload.changed)
            log.info("config reloaded: %s changed; %d agent(s) to re-materialize", ", ".join(changed),
                     sum(1 for r in self.manager.records.values() if r.template_ref in reload.affected))  # fmt: skip
            self.bus.publish(
                self.journal.record("config.changed", None, changed=changed, affected=sorted(reload.affected))
            )
        targets = [r.name for r in self.manager.records.values() if r.template_ref in reload.affected]
        results = await asyncio.gather(*(self.manager.sync(n) for n in targets), return_exceptions=True)
        for name, res in zip(targets, results, strict=True):
            if isinstance(res, BaseException):
                message = res.message if isinstance(res, ActantError) else repr(res)
                log.warning("%s: re-materialize failed: %s", name, message)
                entry = self.journal.record("config.error", name, message=f"re-materialize failed: {message}")
                self.bus.publish(entry)

    def _reload_on_hup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.configs.reload())
        self._hup_tasks.add(task)
        task.add_done_callback(self._hup_tasks.discard)

    def _active_log_paths(self) -> list[Path]:
        """The log files :class:`LogGuard` keeps bounded: those of every active agent (built once, at start-up;
        from then on each transition adds or removes its agent's files, see :meth:`_on_event`)."""
        return [
            self.layout.log_file(record.name, stream)
            for record in self.manager.records.values()
            if record.status in ACTIVE
            for stream in LOG_STREAMS
        ]

    def _on_event(self, event: Event) -> None:
        """Keep the log guard's set in step with the agents' states, and wake housekeeping when needed.

        A start (into ``Starting``, and into ``Running``, when the spawn has created the files) (re)guards the
        agent's two log files, so a fresh log that replaced the old one is picked up; a transition out of the
        active states releases them; ``Stopping`` touches nothing (it was once half the loop's work of a
        stop). O(1) per transition, nothing per second."""
        if event["type"] == "transition":
            name, to, src = event.get("agent"), event.get("to"), event.get("from")
            if isinstance(name, str):
                if to in _GUARD_ON:
                    self.log_guard.watch(self.layout.log_file(name, stream) for stream in LOG_STREAMS)
                elif to not in _ACTIVE_VALUES and src in _ACTIVE_VALUES:
                    self.log_guard.unwatch(self.layout.log_file(name, stream) for stream in LOG_STREAMS)
            self._note_activity()
        elif event.get("event") == "stateWriteFailed":
            self._housekeeping_due.set()

    def _note_activity(self) -> None:
        if not self._active_since_trim:
            self._active_since_trim = True
            self._housekeeping_due.set()

    async def _housekeeping(self) -> None:
        """Retry records kept in memory after a failed write (every second while there are any) and return
        freed heap memory to the system some seconds after activity. Sleeps without a timer while there is
        neither, so an idle daemon is never woken by it. (Orphaned grandchildren, of which we are the
        subreaper, are reaped on SIGCHLD by :class:`exits.OrphanReaper`; log files are the guard's thread's.)"""
        loop = asyncio.get_running_loop()
        trim_at: float | None = None
        while not self._stop.is_set():
            timeout: float | None = None
            if self.manager.unwritten:
                timeout = HOUSEKEEPING_SECONDS
            if trim_at is not None:
                timeout = min(timeout or TRIM_AFTER_SECONDS, max(0.0, trim_at - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._housekeeping_due.wait(), timeout)
            self._housekeeping_due.clear()
            try:
                if self._active_since_trim and trim_at is None:
                    trim_at = loop.time() + TRIM_AFTER_SECONDS
                if self.manager.unwritten:
                    await self.manager.retry_unwritten()
                if trim_at is not None and loop.time() >= trim_at:
                    self._active_since_trim = False
                    trim_at = None
                    trim_heap()
            except Exception:  # a failed round must not end housekeeping for the daemon's lifetime
                log.exception("housekeeping round failed")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self._signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_shutdown)
            loop.add_signal_handler(signal.SIGHUP, self._reload_on_hup)
        self.journal.daemon_event("started", pid=os.getpid(), version=__version__)
        for issue in self.configs.errors:
            log.warning("config: %s", issue)
        # Orphans (we are their subreaper) are reaped on SIGCHLD, not by a periodic scan. An embedded daemon
        # (the tests' in-process one) leaves that to its host process, whose children it must not reap.
        reaper = exits.OrphanReaper(loop) if self._signal_handlers else None
        if reaper is not None:
            reaper.start()
        inherited = inherited_listen_socket()
        self.server = RpcServer(self.dispatcher, None if inherited else self.layout.socket, inherited)
        self.server.bind()  # the socket is ours before recovery touches the home (clients wait in the backlog)
        try:
            await self.manager.initialize()
        except BaseException:
            await self.server.close()
            raise
        self.log_guard.sync(self._active_log_paths())  # once; transitions keep it in step from here on
        await self.server.start()
        self._tasks = [
            loop.create_task(self.configs.run(self._stop)),
            loop.create_task(self._housekeeping()),
        ]
        record_socket_owner(self.server.path, self.layout)
        sdnotify.notify(f"READY=1\nSTATUS=listening on {self.server.path}\nMAINPID={os.getpid()}")
        log.info("actantd %s listening on %s (home %s)", __version__, self.server.path, self.layout.home)
        self.ready.set()
        await self._stop.wait()
        sdnotify.notify("STOPPING=1")
        log.info("shutting down%s", " (agents keep running)" if self._keep_agents else "")
        await self.manager.shutdown(stop_agents=not self._keep_agents)
        self.streams.close_all()
        await self.server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if reaper is not None:
            reaper.close()
        self.journal.daemon_event("stopped", pid=os.getpid(), keepAgents=self._keep_agents)
        self.log_guard.close()
        self.journal.close()
        return 0


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any worker thread exists.

    State writes and spawns run in worker threads; glibc gives each thread its own arena (up to 8 per core),
    and freed memory in those arenas is rarely returned, so the RSS creeps up under churn. Two arenas keep
    the daemon's memory flat at no measurable cost to throughput (the threads mostly wait on fsync).
    Same effect as ``MALLOC_ARENA_MAX=2``; a no-op on other C libraries.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc().mallopt(M_ARENA_MAX, arenas)


def trim_heap() -> None:
    """``malloc_trim(0)``: hand freed heap pages back to the kernel.

    Under start/stop churn the heap is freed in small scattered pieces that glibc keeps; trimming every few
    seconds keeps the daemon's RSS flat (``make bench`` checks it over a 10-minute churn). It takes well
    under a millisecond. A no-op on other C libraries.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc().malloc_trim(0)


def build_layout(home: str | None, configs: str | None, socket: str | None) -> Layout:
    home_path = Path(home).expanduser().absolute() if home else default_home()
    configs_path = Path(configs).expanduser().absolute() if configs else default_configs()
    return Layout(home=home_path, configs=configs_path, socket=resolve_socket(socket, home))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="actantd", description="Actant daemon: supervises AI coding agents.")
    parser.add_argument("--home", help="state directory (default $ACTANT_HOME or $XDG_STATE_HOME/actant)")
    parser.add_argument("--configs", help="configs directory (default $ACTANT_CONFIGS or $XDG_CONFIG_HOME/actant)")
    parser.add_argument("--socket", help="socket path (default $ACTANT_SOCKET or $XDG_RUNTIME_DIR/actant/...)")
    parser.add_argument("--log-level", default=os.environ.get("ACTANT_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"actantd {__version__}")
    return parser.parse_args(argv)


SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (Python's default is 5 ms). The daemon's
worker threads (state writes, spawns, ``/proc`` reads) make short system calls, each giving the GIL back
and waiting for it again; behind a busy event loop (a burst of 500 stops) each wait took up to the whole
interval, which made a stop of 500 agents up to twice as slow on a loaded 2-core machine (issue #13)."""


def main(argv: list[str] | None = None, loop: str | None = None) -> None:
    args = parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    layout = build_layout(args.home, args.configs, args.socket)
    if len(os.fsencode(layout.socket)) > SOCKET_PATH_MAX:
        print(
            f"actantd: socket path is {len(os.fsencode(layout.socket))} bytes, over the {SOCKET_PATH_MAX}-byte limit "
            f"of Unix sockets: {layout.socket}; pass a shorter --socket",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        lock = acquire_lock(layout)
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(1) from None
    if seed_configs(layout.configs):
        log.info("seeded configs at %s from the bundled examples", layout.configs)
    set_child_subreaper()
    default_ignored_signals()  # agents start with default dispositions, even when we are a background job
    limit_malloc_arenas()
    try:
        code = eventloop.run(_run(layout), loop or eventloop.chosen_loop())
    except ActantError as exc:
        print(f"actantd: {exc.message}", file=sys.stderr)
        code = 1
    finally:
        lock.close()
    raise SystemExit(code)


async def _run(layout: Layout) -> int:
    daemon = Daemon(layout)
    return await daemon.run()


def record_socket_owner(socket: Path | str | None, layout: Layout) -> None:
    """``{socket}.home`` (actantd/identity.py): lets ``actantctl daemon start`` restart *this* home later."""
    if socket is None:
        return
    try:
        write_identity(Path(socket), layout.home, layout.configs)
    except OSError as exc:
        log.warning("could not record the home of %s: %s", socket, exc.strerror or exc)
