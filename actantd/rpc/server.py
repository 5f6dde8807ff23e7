"""The Unix-socket JSON-RPC server: socket creation, peer checks, per-connection flow control.

Built on ``asyncio.Protocol`` rather than streams so that reads, writes and pausing are explicit and cheap,
and it runs the same on uvloop. What it guarantees, and how:

* **Only our user gets in.** The socket is bound under ``umask 0o177`` (0600 from the moment it exists) in a
  0700 directory, *then* listened on; each connection's ``SO_PEERCRED`` uid must be ours or root, else it gets
  one PERMISSION_DENIED error and is closed.
* **Nobody blocks anybody.** Every request runs as its own task, so replies go out as they finish (out of
  order). A connection may have at most ``max_in_flight`` requests running; beyond that we stop reading from
  it (backpressure on the sender, not on the dispatcher). Writes never wait: a client that doesn't read piles
  up unsent bytes in its own transport buffer, and once that passes ``max_outbound`` it is dropped.
* **Memory is bounded across connections, and returned.** Besides each connection's own bounds, the input
  all connections hold (``input_budget``) and the output they have not read (``output_budget``) are
  budgeted together; past a budget the connection holding the most is told ``OVERLOADED`` and dropped, so
  the heaviest, slowest clients go first. A closed connection releases its buffers at once and holds no
  reference cycle (transport and context references are cut), so its memory is freed by reference counting,
  not at some later garbage collection.
* **Bad input costs one reply.** Malformed JSON and invalid envelopes are answered by the protocol layer and
  the connection carries on; framing failures (oversize message, unknown framing) are answered, then the
  connection is half-closed and dropped, since the byte stream can't be resynchronised.

Reading is deliberately *not* paused when the client is slow to read replies: a simple client that writes a
long pipeline before reading anything would otherwise deadlock with us; the outbound bound keeps that safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import stat
import struct
from collections import deque
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

from actantd.errors import ActantError, DaemonBusy, InternalError, Overloaded, PermissionDenied
from actantd.limits import MAX_OUTBOUND_BYTES, SOCKET_PATH_MAX
from actantd.rpc.framing import DEFAULT_MAX_MESSAGE, FrameDecoder, FrameError, Framing
from actantd.rpc.protocol import CallContext, Dispatcher, encode_error, encode_notification

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 128
DEFAULT_MAX_OUTBOUND = MAX_OUTBOUND_BYTES
DEFAULT_INPUT_BUDGET = 64 * 1024 * 1024
"""All connections together may hold this many bytes of input (partial messages, queued and running
requests' payloads). Past it the connection holding the most is dropped: 100 clients each sending an almost
complete 8 MiB message must not take the daemon to 800 MiB."""
DEFAULT_OUTPUT_BUDGET = 64 * 1024 * 1024
"""All connections together may hold this many unsent bytes; past it the connection with the largest backlog
(the slowest reader: subscribers that never read) is dropped first."""
CLOSE_GRACE_SECONDS = 2.0
"""After a fatal error reply we half-close and keep discarding input for this long, so a client still busy
sending its oversize message gets to read the error instead of a reset; then the connection is aborted."""

SD_LISTEN_FDS_START = 3
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SHARED_DIRS = ("/", "/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm")


# --------------------------------------------------------------------------------------------- socket setup


def _is_shared_dir(directory: Path) -> bool:
    """Directories other things live in: never chmod them to 0700 just because our socket is placed there."""
    real = os.path.realpath(directory)
    shared = {os.path.realpath(p) for p in _SHARED_DIRS}
    with contextlib.suppress(RuntimeError, KeyError):
        shared.add(os.path.realpath(Path.home()))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        shared.add(os.path.realpath(runtime))
    return real in shared


def prepare_socket_dir(directory: Path) -> None:
    """Create the socket's directory 0700; never change the mode of a directory we did not create.

    ``mkdir``'s mode is filtered through the umask, hence the explicit chmod of the directory we just made.
    An existing directory is someone's choice (a shared runtime dir, a project folder, ``/tmp``): it is left
    exactly as it is, with a warning when others can reach into it; the socket's own 0600 mode and the
    peer-uid checks on both ends still protect the connection.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        st = os.stat(directory)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"socket directory {directory} is not a directory") from None
        if st.st_mode & 0o077 and not _is_shared_dir(directory):
            logger.warning(
                "socket directory %s has mode %o (not created by actantd; left as is)", directory, st.st_mode & 0o7777
            )
        return
    os.chmod(directory, 0o700)


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a dead daemon; refuse if a live one answers on it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a live daemon with a full backlog gives EAGAIN instead of blocking us
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        logger.info("removed stale socket %s", path)
        return
    except FileNotFoundError:
        return
    except BlockingIOError:
        pass
    finally:
        probe.close()
    raise DaemonBusy(f"another actantd is listening on {path}", path=str(path))


def listen_backlog() -> int:
    """The system's maximum accept backlog (``net.core.somaxconn``): a burst of clients (a script starting
    50 agents in parallel) queues instead of being refused. asyncio would otherwise listen again with 100."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(socket.SOMAXCONN, int(f.read().strip()))
    except (OSError, ValueError):
        return socket.SOMAXCONN


def bind_unix_socket(path: Path, backlog: int | None = None) -> socket.socket:
    """A listening, non-blocking AF_UNIX socket at ``path`` that is 0600 from the moment it exists."""
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise ValueError(f"socket path is longer than {SOCKET_PATH_MAX} bytes: {path}")
    prepare_socket_dir(path.parent)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(os.fspath(path))
        finally:
            os.umask(old)
        # A default ACL on the directory overrides the umask; this closes that gap before anyone can connect
        # (connecting to a bound socket that isn't listening yet is refused).
        os.chmod(path, 0o600)
        sock.listen(backlog if backlog is not None else listen_backlog())
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def inherited_listen_socket(env: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed us (``LISTEN_FDS``, socket activation), or None.

    Like ``sd_listen_fds(1)``: the variables are removed from ``env`` whether or not they were for us, so the
    agents we spawn never believe they were socket-activated; the fds are made close-on-exec for the same
    reason. Only fd 3 is used; a unit passing more than one socket gets a warning.
    """
    env = os.environ if env is None else env
    fds_text = env.get("LISTEN_FDS")
    pid_text = env.get("LISTEN_PID")
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if fds_text is None:
        return None
    try:
        count, pid = int(fds_text), int(pid_text or "")
    except ValueError:
        logger.warning("ignoring malformed LISTEN_FDS=%r LISTEN_PID=%r", fds_text, pid_text)
        return None
    if pid != os.getpid() or count < 1:
        return None
    if count > 1:
        logger.warning("LISTEN_FDS=%d: using fd %d only", count, SD_LISTEN_FDS_START)
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise ValueError(f"LISTEN_FDS: fd {SD_LISTEN_FDS_START} is not a socket ({exc})") from exc
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ValueError(f"LISTEN_FDS: fd {SD_LISTEN_FDS_START} is not an AF_UNIX stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ValueError(f"LISTEN_FDS: fd {SD_LISTEN_FDS_START} is not listening")
    sock.setblocking(False)
    return sock


def _peer_cred(transport: asyncio.BaseTransport) -> tuple[int, int, int] | None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None
    return pid, uid, gid


# ---------------------------------------------------------------------------------------------- connection


class Connection(asyncio.Protocol):
    """One client: framing detection, request tasks, replies and pushed notifications."""

    def __init__(self, server: RpcServer) -> None:
        self._server = server
        self._decoder = FrameDecoder(server.max_message)
        self._transport: asyncio.Transport | None = None
        self._ctx = CallContext(connection=self)
        self._pending: deque[bytes] = deque()
        self._in_flight = 0
        self._read_paused = False
        self._closing = False  # no more requests are taken and no more replies are sent
        self._draining = False  # server shutdown: no more requests are taken, running ones still answer
        self._eof = False  # the client half-closed; close once its requests are answered
        self._closed = False  # the transport is gone
        self._close_callbacks: list[Callable[[], None]] = []
        self._abort_timer: asyncio.TimerHandle | None = None
        self._queued_bytes = 0  # payloads in _pending
        self._running_bytes = 0  # payloads of requests in flight
        self._counted_input = 0  # what this connection adds to the server's input total
        self.peer_pid: int | None = None
        self.peer_uid: int | None = None
        self.peer_gid: int | None = None

    # -- public API for the daemon

    @property
    def closed(self) -> bool:
        """True once the connection takes no more requests (closing, dropped or gone)."""
        return self._closing

    @property
    def framing(self) -> Framing | None:
        return self._decoder.framing

    def notify(self, method: str, params: Any = None) -> bool:
        """Queue a notification without waiting (event-loop thread only).

        Returns False if the connection is gone, or was just dropped because its unsent backlog passed the
        bound: a publisher can then forget the subscriber instead of feeding a dead end.
        """
        if self._closing:
            return False
        return self._send(encode_notification(method, params))

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the connection goes away (at once, soon, if it already has)."""
        if self._closed:
            asyncio.get_running_loop().call_soon(self._run_callback, callback)
        else:
            self._close_callbacks.append(callback)

    def close(self) -> None:
        """Stop taking requests and close after unsent replies are flushed."""
        self._closing = True
        self._clear_pending()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self._closing = True
        self._clear_pending()
        if self._transport is not None:
            self._transport.abort()

    @property
    def input_bytes(self) -> int:
        """Input this connection holds: its partial message, queued requests, running requests' payloads."""
        return self._decoder.buffered + self._queued_bytes + self._running_bytes

    @property
    def output_bytes(self) -> int:
        """Bytes written to the transport that the client has not read yet."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None and not self._closed else 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server._connections.add(self)
        cred = _peer_cred(transport)
        if cred is not None:
            self.peer_pid, self.peer_uid, self.peer_gid = cred
        self._ctx = CallContext(connection=self, peer_pid=self.peer_pid, peer_uid=self.peer_uid, peer_gid=self.peer_gid)
        if self.peer_uid is None or self.peer_uid not in self._server.allowed_uids:
            logger.warning("refused connection from pid=%s uid=%s", self.peer_pid, self.peer_uid)
            self._fail(PermissionDenied("connection refused: peer uid is not the daemon's", uid=self.peer_uid))

    def data_received(self, data: bytes) -> None:
        if self._closing or self._draining:
            return  # after a fatal error or during shutdown: discard
        for frame in self._decoder.feed(data):
            if isinstance(frame, FrameError):
                self._fail(frame.error)
                self._account_input()
                return
            self._pending.append(frame)
            self._queued_bytes += len(frame)
        self._pump()
        self._account_input()
        self._server._enforce_input_budget()

    def eof_received(self) -> bool | None:
        # The client finished sending; keep the write side open until replies to what it sent are out.
        if self._closing or (self._in_flight == 0 and not self._pending):
            return None  # let the transport close
        self._eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._closed = True
        self._clear_pending()
        self._decoder.release()
        self._account_input()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._server._forget(self)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for cb in callbacks:
            self._run_callback(cb)
        # Cut the cycles (transport <-> protocol, self -> context -> self) so the memory goes back now, by
        # reference counting, not whenever the cyclic collector next runs.
        self._transport = None
        self._ctx = CallContext(peer_pid=self.peer_pid, peer_uid=self.peer_uid, peer_gid=self.peer_gid)

    # -- internals

    def _run_callback(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("connection close callback failed")

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._queued_bytes = 0

    def _account_input(self) -> None:
        now = self.input_bytes if not self._closed else 0
        self._server._input_total += now - self._counted_input
        self._counted_input = now

    def _drain(self) -> None:
        self._draining = True
        self._clear_pending()
        self._account_input()
        self._set_reading(False)

    def _pump(self) -> None:
        if self._draining:
            return
        limit = self._server.max_in_flight
        while self._pending and self._in_flight < limit:
            payload = self._pending.popleft()
            self._queued_bytes -= len(payload)
            self._running_bytes += len(payload)
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._serve(payload))
            self._server._track(task)
            task.add_done_callback(functools.partial(self._request_done, size=len(payload)))
        self._set_reading(not self._pending and self._in_flight < limit)

    def _set_reading(self, on: bool) -> None:
        if self._transport is None or self._closed or on is not self._read_paused:
            return  # no transport, or already in the wanted state
        if on:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()
        self._read_paused = not on

    async def _serve(self, payload: bytes) -> None:
        try:
            reply = await self._server.dispatcher.handle_payload(payload, self._ctx)
        except Exception:
            # The dispatcher converts every handler error itself; reaching this is a bug in it. Still answer,
            # so a client waiting on this request isn't left hanging.
            logger.exception("RPC dispatch failed")
            reply = encode_error(InternalError("internal error; see the daemon log"))
        if reply is not None:
            self._send(reply)

    def _request_done(self, task: asyncio.Task[None], *, size: int = 0) -> None:
        self._in_flight -= 1
        self._running_bytes -= size
        self._account_input()
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("RPC request task failed", exc_info=exc)
        if self._closing:
            return
        self._pump()
        if self._eof and self._in_flight == 0 and not self._pending and self._transport is not None:
            self._transport.close()

    def _send(self, payload: bytes) -> bool:
        transport = self._transport
        if self._closing or transport is None or transport.is_closing():
            return False
        data = self._decoder.encode(payload)
        backlog = transport.get_write_buffer_size()
        if backlog and backlog + len(data) > self._server.max_outbound:
            logger.warning(
                "dropping client pid=%s uid=%s: %d bytes unsent (it is not reading)",
                self.peer_pid,
                self.peer_uid,
                backlog,
            )
            self.abort()
            return False
        if backlog and not self._server._make_output_room(self, len(data)):
            return False
        transport.write(data)
        if transport.get_write_buffer_size():
            self._server._backlogged.add(self)
        return True

    def _shed(self, error: ActantError) -> None:
        """Drop this connection to free the memory it holds: its input at once, one error reply, then close."""
        self._clear_pending()
        self._decoder.release()
        self._account_input()
        self._fail(error)
        if not self._closed and self._transport is not None:
            self._transport.close()

    def _fail(self, error: ActantError) -> None:
        """Answer a fatal error (id null), half-close, discard input for a grace period, then drop."""
        transport = self._transport
        if transport is None or self._closing:
            return
        transport.write(self._decoder.encode(encode_error(error)))
        self._closing = True
        self._clear_pending()
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._set_reading(True)  # let a client blocked mid-send finish, so it reaches our reply
        self._abort_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, transport.abort)


# ------------------------------------------------------------------------------------------------- server


class RpcServer:
    """Listens on a path we bind (``path``) or on a socket systemd handed us (``inherited_sock``)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        path: Path | None = None,
        inherited_sock: socket.socket | None = None,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_outbound: int = DEFAULT_MAX_OUTBOUND,
        input_budget: int = DEFAULT_INPUT_BUDGET,
        output_budget: int = DEFAULT_OUTPUT_BUDGET,
    ) -> None:
        if path is None and inherited_sock is None:
            raise ValueError("RpcServer needs a socket path or an inherited socket")
        self.dispatcher = dispatcher
        self.max_message = max_message
        self.max_in_flight = max_in_flight
        self.max_outbound = max_outbound
        self.allowed_uids = frozenset({os.getuid(), 0})
        self._path = Path(path) if path is not None else None
        self._inherited = inherited_sock
        self._server: asyncio.AbstractServer | None = None
        self._sock: socket.socket | None = None  # bound and listening, not yet served
        self._created: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file we bound
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self.input_budget = input_budget
        self.output_budget = output_budget
        self._input_total = 0
        self._backlogged: set[Connection] = set()
        """Connections that had unsent output at their last write: where the output budget is spent."""

    @property
    def path(self) -> Path | None:
        if self._inherited is not None:
            name = self._inherited.getsockname()
            return Path(name) if isinstance(name, str) and name else self._path
        return self._path

    @property
    def connections(self) -> frozenset[Connection]:
        return frozenset(self._connections)

    def bind(self) -> None:
        """Claim the socket (bind and listen) without accepting yet; raises DaemonBusy if another daemon
        listens there. Clients that connect now wait in the backlog until :meth:`start`, so the daemon can
        bind first and recover its instances after: a daemon that loses the race never touches its home."""
        if self._sock is not None or self._server is not None:
            return
        if self._inherited is not None:
            self._sock = self._inherited
            return
        assert self._path is not None
        self._sock = bind_unix_socket(self._path)
        st = os.stat(self._path)
        self._created = (st.st_dev, st.st_ino)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("RpcServer already started")
        loop = asyncio.get_running_loop()
        self.bind()
        sock, self._sock = self._sock, None
        assert sock is not None
        try:
            self._server = await loop.create_unix_server(lambda: Connection(self), sock=sock, backlog=listen_backlog())
        except BaseException:
            sock.close()
            self._unlink_own()
            raise

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, let running requests answer (up to ``grace`` seconds), close every connection.

        The socket file is removed only if it is still the one we bound (a successor may have replaced it).
        Requests still running at the deadline are cancelled, connections that won't flush are aborted.
        """
        if self._server is None:
            if self._sock is not None:  # bound, never served
                sock, self._sock = self._sock, None
                sock.close()
                self._unlink_own()
            return
        server, self._server = self._server, None
        server.close()
        self._unlink_own()
        for conn in list(self._connections):
            conn._drain()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for conn in list(self._connections):
            conn.close()
        if self._connections:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - loop.time()))
        for conn in list(self._connections):
            conn.abort()
        leftovers = [t for t in self._tasks if t is not current and not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
        await server.wait_closed()

    def _unlink_own(self) -> None:
        if self._created is None or self._path is None:
            return
        created, self._created = self._created, None
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self._path)
            if (st.st_dev, st.st_ino) == created:
                os.unlink(self._path)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._backlogged.discard(conn)
        if not self._connections:
            self._idle.set()

    @property
    def input_total(self) -> int:
        """Input bytes held across all connections (what ``input_budget`` bounds)."""
        return self._input_total

    def output_total(self) -> int:
        """Unsent bytes across all connections (what ``output_budget`` bounds)."""
        return sum(conn.output_bytes for conn in self._backlogged)

    def _enforce_input_budget(self) -> None:
        """Drop the connections holding the most input until the total is within the budget."""
        while self._input_total > self.input_budget:
            victim = max(self._connections, key=lambda c: c.input_bytes, default=None)
            if victim is None or victim.input_bytes == 0:
                return
            logger.warning(
                "dropping client pid=%s uid=%s: it holds %d bytes of input, the daemon's input budget (%d) is spent",
                victim.peer_pid,
                victim.peer_uid,
                victim.input_bytes,
                self.input_budget,
            )
            victim._shed(Overloaded("the daemon is overloaded: too much unprocessed input; try again"))

    def _make_output_room(self, sender: Connection, size: int) -> bool:
        """Keep unsent output of all connections within the budget, dropping the largest backlogs first.
        False when ``sender`` itself was dropped."""
        for conn in [c for c in self._backlogged if not c.output_bytes]:
            self._backlogged.discard(conn)
        total = self.output_total()
        while total + size > self.output_budget and self._backlogged:
            victim = max(self._backlogged, key=lambda c: c.output_bytes)
            total -= victim.output_bytes
            self._backlogged.discard(victim)
            logger.warning(
                "dropping client pid=%s uid=%s: %d bytes unsent, the daemon's output budget (%d) is spent",
                victim.peer_pid,
                victim.peer_uid,
                victim.output_bytes,
                self.output_budget,
            )
            victim.abort()
            if victim is sender:
                return False
        return True
