"""Reliability against the real daemon process (DESIGN §12, "Reliability").

Six scenarios, each twice: a short variant in the default suite (a few seconds) and a long one marked
``soak`` (``make soak``; ``ACTANT_SOAK_SCALE`` multiplies its sizes, ``ACTANT_SOAK_SEED`` replays a run):

1. SIGKILL of the daemon at random moments of a create/start/stop/destroy loop run by several clients, then
   a restart: no unreadable ``.actant.json``, no lost or resurrected instance, no orphan process.
2. 16 clients mutating 8 instances at once: no INVALID_TRANSITION/INTERNAL_ERROR, disk equals the daemon's
   view, every recorded pid is the live process of its instance.
3. Agents that fork grandchildren and double-forked, setsid'd escapees: none alive after each stop.
4. A crash-loop storm of 20 instances: the daemon stays responsive and the journal has every transition.
5. Hypothesis-fuzzed frames against the daemon process: it never dies, replies are valid JSON-RPC 2.0, and
   nothing is written outside its home.
6. ENOSPC during a state write (a small tmpfs filled up): a start reports STATE_WRITE, a stop still stops
   and says the record could not be written (issue #10), the previous ``.actant.json`` stays intact until
   there is space again, and the daemon keeps serving.

Three sharper tests came out of these runs: ``template.validate`` on a FIFO must not wedge the daemon (5),
ENOSPC landing between the spawn and the ``Running`` write must not leave an unsupervised agent (6), and an
escapee that also scrubs its environment (3, caught by the per-agent cgroup; a strict ``xfail`` without cgroups).

Waits are for events: transition notifications, ``READY=1``, datagrams the test agents send, process exits
(``psutil.wait_procs``). Sleeps appear only where the timing is what is under test (where a SIGKILL lands,
how long a churn runs). Any agent process is recognised by the ``ACTANT_INSTANCE_ID`` the daemon puts in its
environment, restricted to workspaces under the test's own temp dir (other daemons may run on this machine).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actantd.instances.record import decode, encode
from actantd.instances.secret_env import REDACTED
from actantd.instances.state import Status
from actantd.supervisor import cgroup
from tests.harness import Daemon, RpcError, make_configs
from tests.helpers import alive, write_json
from tests.rpc.test_fuzz import assert_valid_reply, exchange, split_replies

SCALE = float(os.environ.get("ACTANT_SOAK_SCALE", "1"))
SEED = int(os.environ.get("ACTANT_SOAK_SEED", str(random.randrange(2**32))))
"""One seed per session, named in every failure message so a run can be replayed."""

CONNECTION_LOST = (OSError, ConnectionError, ValueError)
"""What a call sees when the daemon dies under it: a reset, EOF, or half a line (json's ValueError)."""


def scaled(n: float) -> int:
    return max(1, round(n * SCALE))


# --------------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class AgentProc:
    pid: int
    instance_id: str
    name: str


def agent_processes(under: Path) -> dict[int, AgentProc]:
    """Live processes that carry ``ACTANT_INSTANCE_ID`` and whose ``ACTANT_WORKSPACE`` is under ``under``.

    Read straight from ``/proc`` (zombies excluded: they have exited, only their status is left).
    """
    prefix = str(under).rstrip("/") + "/"
    out: dict[int, AgentProc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                raw = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
        if state in (b"Z", b"X"):
            continue
        env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        iid = env.get(b"ACTANT_INSTANCE_ID")
        workspace = env.get(b"ACTANT_WORKSPACE", b"").decode(errors="replace") + "/"
        if iid and workspace.startswith(prefix):
            out[pid] = AgentProc(pid, iid.decode(), env.get(b"ACTANT_INSTANCE", b"").decode(errors="replace"))
    return out


def describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        return f"{pid} [{proc.status()}, ppid {proc.ppid()}] {' '.join(proc.cmdline())[:100]}"
    except psutil.Error:
        return f"{pid} (gone)"


def reap_zombies(keep: Collection[int] = ()) -> None:
    """Collect zombie children of pytest (a subreaper: a killed daemon's agents are reparented here), as init
    would, so they do not pin pids; never the status of a process in ``keep`` (the daemon's)."""
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def wait_gone(pids: Collection[int], timeout: float) -> list[int]:
    """Wait (on their exits) for ``pids`` to go; returns those still alive."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    _gone, still = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in still if alive(p.pid)]


def assert_process_is(agent: dict[str, Any]) -> None:
    """The recorded pid is alive, is the process that was started (create time), and runs that instance."""
    pid = agent["pid"]
    assert isinstance(pid, int), agent
    proc = psutil.Process(pid)
    assert proc.status() != psutil.STATUS_ZOMBIE, (agent["name"], describe(pid))
    assert abs(proc.create_time() - agent["pidCreateTime"]) < 1.0, (agent["name"], describe(pid))
    assert proc.environ().get("ACTANT_INSTANCE_ID") == agent["instanceId"], (agent["name"], describe(pid))


def assert_no_orphans(d: Daemon, under: Path, *, timeout: float = 20.0, trees: bool = False) -> None:
    """Every agent process belongs to an instance the daemon reports Running with that pid, or goes away.

    With ``trees`` a process may also be a descendant of such an instance's live leader (an agent that forks);
    a tree whose leader is gone must go. Leftovers are given ``timeout`` to exit (recovery and restart
    policies may still be at work), waited for as process exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        agents = {a["instanceId"]: a for a in d.call("agent.list")["agents"]}
        strays = []
        for pid, proc in agent_processes(under).items():
            agent = agents.get(proc.instance_id)
            owned = agent is not None and agent["status"] == "Running" and agent["pid"] is not None
            if owned and pid != agent["pid"]:
                owned = trees and alive(agent["pid"], agent["pidCreateTime"])
            if not owned:
                strays.append(pid)
        if not strays:
            return
        if time.monotonic() > deadline:
            lines = []
            for pid in strays:
                iid = agent_processes(under).get(pid)
                agent = agents.get(iid.instance_id) if iid else None
                state = f"{agent['name']} {agent['status']} pid={agent['pid']}" if agent else "no such instance"
                lines.append(f"{describe(pid)}  <- {state}")
            for pid in strays:  # reported below; killed so that the failure is this one, not a leak
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            wait_gone(strays, timeout=5)
            pytest.fail(f"orphan agent processes (seed {SEED}):\n  " + "\n  ".join(lines))
        wait_gone(strays, timeout=0.5)


# ------------------------------------------------------------------------------------------------- disk


def read_instances(home: Path) -> dict[str, dict[str, Any]]:
    """Every instance directory, each of which must hold a readable, valid record naming it."""
    out: dict[str, dict[str, Any]] = {}
    instances = home / "instances"
    for entry in sorted(os.listdir(instances)):
        if entry.startswith("."):
            continue
        path = instances / entry / ".actant.json"
        raw = path.read_bytes()  # FileNotFoundError here is a half-created or half-destroyed instance
        record, migrated = decode(raw, where=str(path))
        assert not migrated and record.name == entry, (path, record)
        out[entry] = json.loads(raw)
    return out


def assert_whole(home: Path, docs: dict[str, dict[str, Any]]) -> None:
    """A visible instance has every file its create wrote (create is all or nothing)."""
    for name, doc in docs.items():
        workspace = Path(doc["workDir"]) if doc.get("workDir") else home / "instances" / name
        missing = [rel for rel in doc.get("materialized", []) if not (workspace / rel).exists()]
        assert not missing, f"instance {name} is not whole: missing {missing} (seed {SEED})"


def listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------------------------- daemons

SERVICE = {"version": "1.0", "backend": "custom", "launchMode": "Service"}


@contextlib.contextmanager
def soak_daemon(root: Path, templates: Collection[dict[str, Any]] = ()) -> Iterator[Daemon]:
    """A real ``actantd`` (harness test templates plus ``templates``), stopped at the end if still running.

    Leftover agent processes are not killed here when the test passed its own checks (conftest then reports
    any leak); after a failure they are, so the report is the failure, not a leak.
    """
    d = Daemon(root, make_configs(root))
    for template in templates:
        write_json(d.configs / "templates" / f"{template['name']}.json", {**SERVICE, **template})
    d.start()
    failed = False
    try:
        yield d
    except BaseException:
        failed = True
        raise
    finally:
        if d.proc is not None:
            with contextlib.suppress(Exception):
                d.stop()
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
                d.proc = None
        if failed:  # the test failed already; don't let orphans it may not have reached add a leak error
            left = list(agent_processes(root))
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            wait_gone(left, timeout=5)


def daemon_errors(d: Daemon) -> list[str]:
    """Tracebacks and ERROR lines the daemon logged: each is a bug even when every reply looked fine."""
    text = d.read_stderr() if d.stderr_path.exists() else ""
    return [line for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback")]


def final_clean_stop(d: Daemon, under: Path) -> None:
    """SIGTERM: exit 0, no agent process left, no record left claiming a process."""
    assert d.stop() == 0, d.read_stderr()
    left = agent_processes(under)
    assert not left, "left after the daemon's clean stop:\n  " + "\n  ".join(describe(p) for p in left)
    for name, doc in read_instances(d.home).items():
        assert doc["status"] not in ("Starting", "Running", "Stopping") and doc["pid"] is None, (name, doc)


# ======================================================================================= 1. SIGKILL loop

FAMILY = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if os.fork() == 0:              # a child in the agent's process group
    time.sleep(3600)
    os._exit(0)
if os.fork() == 0:              # a double-forked, setsid'd grandchild that ignores SIGTERM
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
    os._exit(0)
print("up", flush=True)
time.sleep(3600)
"""

FAMILY_TEMPLATE = {
    "name": "family",
    "command": ["{python}", "-c", FAMILY],
    "stopTimeoutSeconds": 0.5,
    "restart": {"policy": "OnFailure", "maxRestarts": 50, "windowSeconds": 60, "initialDelayMs": 20,
                "maxDelayMs": 100, "minUptimeSeconds": 0},
}  # fmt: skip

PRESENT, ABSENT = "present", "absent"


@dataclass
class Ledger:
    """What each client knows about its own instances: present, absent, or ``inflight <method>`` when the
    daemon died before answering (then either outcome is allowed, but never half an instance)."""

    state: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    answered: int = 0
    interrupted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, answered: bool) -> None:
        with self.lock:
            if answered:
                self.answered += 1
            else:
                self.interrupted += 1


def _template_for(name: str) -> str:
    return "family" if name.endswith("-n0") else "sleeper"


def kill_loop_client(d: Daemon, names: list[str], ledger: Ledger, rnd: random.Random) -> None:
    """Mutate this client's own instances (so the outcome of each call is known) until the daemon dies."""
    try:
        conn = d.conn(timeout=60)
    except OSError:
        return
    try:
        while True:
            name = rnd.choice(names)
            before = ledger.state[name]
            if before == ABSENT:
                method, params = "agent.create", {"name": name, "template": _template_for(name)}
            else:
                method = rnd.choice(["agent.start"] * 3 + ["agent.stop"] * 2 + ["agent.restart", "agent.destroy"])
                params = {"name": name, "force": True} if method == "agent.destroy" else {"name": name}
            ledger.state[name] = f"inflight {method}"
            try:
                conn.call(method, params)
            except RpcError as exc:
                if exc.error_code == "AGENT_NOT_FOUND":
                    ledger.state[name] = ABSENT
                else:
                    ledger.state[name] = before
                    ledger.unexpected.append(f"{method} {name} (was {before}): {exc.error}")
            except CONNECTION_LOST:
                ledger.count(answered=False)
                return  # the SIGKILL: this call stays in flight
            else:
                ledger.state[name] = ABSENT if method == "agent.destroy" else PRESENT
                ledger.count(answered=True)
    finally:
        conn.close()


def verify_after_recovery(d: Daemon, root: Path, ledger: Ledger, corrupted_before: list[str]) -> None:
    home = d.home
    docs = read_instances(home)
    listed = {a["name"]: a for a in d.call("agent.list")["agents"]}
    assert set(listed) == set(docs), (sorted(listed), sorted(docs))
    for name, state in ledger.state.items():
        if state == PRESENT:
            assert name in listed, f"lost instance {name} (seed {SEED})"
        elif state == ABSENT:
            assert name not in listed, f"destroyed instance {name} came back (seed {SEED})"
    assert listdir(home / "instances/.corrupted") == corrupted_before, f"quarantined (seed {SEED})"
    assert listdir(home / "instances/.staging") == [] and listdir(home / "instances/.trash") == []
    assert_whole(home, docs)
    assert_no_orphans(d, root, trees=True)
    for agent in d.call("agent.list")["agents"]:
        if agent["status"] == "Running":
            with contextlib.suppress(psutil.NoSuchProcess):  # a family leader may be mid-crash; rechecked above
                assert_process_is(agent)


def run_kill_loop(root: Path, *, rounds: int, clients: int, per_client: int, max_delay: float) -> None:
    rng = random.Random(SEED)
    names = {c: [f"k{c}-n{i}" for i in range(per_client)] for c in range(clients)}
    ledger = Ledger(state={n: ABSENT for group in names.values() for n in group})
    with soak_daemon(root, [FAMILY_TEMPLATE]) as d:
        corrupted = listdir(d.home / "instances/.corrupted")
        for rnd_no in range(rounds):
            threads = [
                threading.Thread(target=kill_loop_client, args=(d, names[c], ledger, random.Random(rng.random())))
                for c in range(clients)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.02, max_delay))  # where the SIGKILL lands is the thing under test
            daemon_pid = d.proc.pid if d.proc else -1
            d.kill()
            for t in threads:
                t.join(60)
                assert not t.is_alive(), "a client hung after the daemon died"
            assert not ledger.unexpected, f"round {rnd_no} (seed {SEED}): {ledger.unexpected}"
            # Before any recovery: what the crash left on disk is already readable and whole.
            assert_whole(d.home, read_instances(d.home))
            reap_zombies(keep={daemon_pid})
            d.start()
            verify_after_recovery(d, root, ledger, corrupted)
            listed = {a["name"] for a in d.call("agent.list")["agents"]}
            ledger.state = {n: PRESENT if n in listed else ABSENT for n in ledger.state}
            reap_zombies()
        errors = daemon_errors(d)
        final_clean_stop(d, root)
    print(f"kill loop: {rounds} rounds, {ledger.answered} calls answered, {ledger.interrupted} cut by the kill")
    assert ledger.answered > rounds and ledger.interrupted > 0, "the kills did not land in a churn"
    assert not errors, f"the daemon logged errors (seed {SEED}):\n" + "\n".join(errors[:40])


def test_sigkill_during_churn_short(short_tmp: Path) -> None:
    run_kill_loop(short_tmp, rounds=2, clients=3, per_client=3, max_delay=0.8)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_sigkill_during_churn_soak(short_tmp: Path) -> None:
    run_kill_loop(short_tmp, rounds=scaled(30), clients=4, per_client=4, max_delay=2.0)


# ================================================================================ 2. concurrent clients

CONCURRENT_OK = {"AGENT_NOT_FOUND", "AGENT_ALREADY_RUNNING"}
"""Answers a racing client may legitimately get: another client destroyed the instance, or is stopping it."""


def run_concurrent(root: Path, *, seconds: float, clients: int = 16, instances: int = 8) -> None:
    rng = random.Random(SEED)
    names = [f"c{i}" for i in range(instances)]
    with soak_daemon(root) as d:
        for n in names:
            d.call("agent.create", {"name": n, "template": "sleeper"})
        errors: list[str] = []
        counts: collections.Counter[str] = collections.Counter()
        counts_lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def client(seed: float) -> None:
            rnd = random.Random(seed)
            conn = d.conn(timeout=60)
            try:
                while time.monotonic() < stop_at:
                    name = rnd.choice(names)
                    op = rnd.choice(["start", "start", "stop", "restart", "recreate", "status"])
                    calls: list[tuple[str, dict[str, Any]]]
                    if op == "recreate":
                        calls = [("agent.destroy", {"name": name, "force": True}),
                                 ("agent.create", {"name": name, "template": "sleeper"})]  # fmt: skip
                    else:
                        calls = [(f"agent.{op}", {"name": name})]
                    for method, params in calls:
                        try:
                            conn.call(method, params)
                            with counts_lock:
                                counts[method] += 1
                        except RpcError as exc:
                            if exc.error_code not in CONCURRENT_OK:
                                errors.append(f"{method} {name}: {exc.error}")
                        except CONNECTION_LOST as exc:
                            errors.append(f"{method} {name}: connection lost: {exc!r}")
                            return
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(rng.random(),)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
            assert not t.is_alive(), "a client hung"
        assert errors == [], f"(seed {SEED}, {counts})\n" + "\n".join(errors[:30])
        assert counts["agent.start"] > clients, counts  # the churn really happened

        # Quiescent now: the daemon's view, the disk and the processes must agree exactly.
        for n in names:
            d.call("agent.create", {"name": n, "template": "sleeper"})  # idempotent for the survivors
        listed = {a["name"]: a for a in d.call("agent.list")["agents"]}
        docs = read_instances(d.home)
        assert set(listed) == set(docs) == set(names), (sorted(listed), sorted(docs))
        for n in names:
            assert docs[n] == listed[n], f"disk != daemon for {n}:\n disk   {docs[n]}\n daemon {listed[n]}"
            assert listed[n]["status"] in ("Ready", "Running", "Stopped"), listed[n]
            if listed[n]["status"] == "Running":
                assert_process_is(listed[n])
            else:
                assert listed[n]["pid"] is None, listed[n]
        assert_no_orphans(d, root, timeout=5.0)
        errors_logged = daemon_errors(d)
        final_clean_stop(d, root)
    assert not errors_logged, f"the daemon logged errors (seed {SEED}):\n" + "\n".join(errors_logged[:40])


def test_concurrent_clients_short(short_tmp: Path) -> None:
    run_concurrent(short_tmp, seconds=3.0)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_concurrent_clients_soak(short_tmp: Path) -> None:
    run_concurrent(short_tmp, seconds=60.0 * SCALE)


# ============================================================================ 3. grandchildren and escapees

TELL = r"""
import os, signal, socket, sys, time
NOTIFY = sys.argv[1]
def tell(tag):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(f"{os.environ['ACTANT_INSTANCE']} {tag} {os.getpid()}".encode(), NOTIFY)
    s.close()
"""


def agent_program(body: str) -> str:
    """``body`` after the ``tell`` helper; ``TELL_SRC`` in it stands for the helper's source (for re-execs)."""
    return TELL + body.replace("TELL_SRC", repr(TELL))


FORKER = agent_program(r"""
# Two children in the agent's group, each with a long-lived grandchild, and each forking short-lived
# grandchildren all the time, so the stop races against forks. Only the leader obeys SIGTERM.
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
for i in range(2):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            tell(f"grandchild{i}")
            time.sleep(3600)
            os._exit(0)
        tell(f"child{i}")
        live = set()
        while True:
            pid = os.fork()
            if pid == 0:
                time.sleep(0.02)
                os._exit(0)
            live.add(pid)
            while len(live) > 4:
                done, _ = os.waitpid(-1, 0)
                live.discard(done)
tell("leader")
time.sleep(3600)
""")

ESCAPER = agent_program(r"""
# Escapees: a double-forked setsid'd one, one in its own process group, and one that setsid's, double-forks
# and re-execs (a new command line, same environment). Nobody obeys SIGTERM, so stop must escalate.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        tell("setsid")
        time.sleep(3600)
    os._exit(0)
if os.fork() == 0:
    os.setpgid(0, 0)
    tell("pgrp")
    time.sleep(3600)
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", TELL_SRC + "tell('exec'); time.sleep(3600)", NOTIFY])
    os._exit(0)
tell("leader")
time.sleep(3600)
""")

SCRUBBED = agent_program(r"""
# An escapee that also drops its environment: setsid, double fork, exec with an empty env.
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        src = TELL_SRC.replace("os.environ['ACTANT_INSTANCE']", repr(os.environ["ACTANT_INSTANCE"]))
        os.execve(sys.executable, [sys.executable, "-c", src + "tell('scrubbed'); time.sleep(3600)", NOTIFY], {})
    os._exit(0)
tell("leader")
time.sleep(3600)
""")

TREES = {"forker": (FORKER, 5), "escaper": (ESCAPER, 4)}
"""Template name → (program, how many processes report in per launch)."""


def tree_templates(notify: Path, programs: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "command": ["{python}", "-c", program, str(notify)], "stopTimeoutSeconds": 0.3,
         "restart": {"policy": "Never", "minUptimeSeconds": 0}}
        for name, (program, _count) in programs.items()
    ]  # fmt: skip


class Reports:
    """The datagram socket the tree agents report their pids to."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)

    def collect(self, expected: dict[str, int]) -> dict[str, dict[str, tuple[int, float]]]:
        """Wait for ``expected[name]`` reports per instance; returns name → tag → (pid, create time)."""
        got: dict[str, dict[str, tuple[int, float]]] = {name: {} for name in expected}
        while any(len(got[n]) < k for n, k in expected.items()):
            name, tag, pid_text = self.sock.recv(256).decode().split()
            pid = int(pid_text)
            got[name][tag] = (pid, psutil.Process(pid).create_time())
        return got

    def close(self) -> None:
        self.sock.close()


def run_trees(root: Path, *, iterations: int) -> None:
    notify = root / "trees.sock"
    reports = Reports(notify)
    try:
        with soak_daemon(root, tree_templates(notify, TREES)) as d:
            for name in TREES:
                d.call("agent.create", {"name": name, "template": name})
            ids = {a["name"]: a["instanceId"] for a in d.call("agent.list")["agents"]}
            for it in range(iterations):
                for name in TREES:
                    assert d.call("agent.start", {"name": name})["agent"]["status"] == "Running"
                procs = reports.collect({name: count for name, (_p, count) in TREES.items()})
                for name in alternate(it, list(TREES)):
                    stopped = d.call("agent.stop", {"name": name})["agent"]
                    assert stopped["status"] == "Stopped" and stopped["pid"] is None
                    # "After stop returns, no process of the agent is left": checked at once, no grace.
                    survivors = [f"{tag}: {describe(pid)}" for tag, (pid, ct) in procs[name].items() if alive(pid, ct)]
                    marked = [describe(p.pid) for p in agent_processes(root).values() if p.instance_id == ids[name]]
                    assert not survivors and not marked, f"iteration {it}, {name}: {survivors} {marked}"
            final_clean_stop(d, root)
    finally:
        reports.close()


def alternate(it: int, names: list[str]) -> list[str]:
    """Stop order flips every iteration, so neither tree is always stopped while the other still runs."""
    return names if it % 2 == 0 else names[::-1]


def test_trees_die_on_stop_short(short_tmp: Path) -> None:
    run_trees(short_tmp, iterations=3)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_trees_die_on_stop_soak(short_tmp: Path) -> None:
    run_trees(short_tmp, iterations=scaled(60))


@pytest.mark.xfail(
    cgroup.base() is None,
    strict=True,
    reason="known gap without cgroups: a setsid'd, double-forked escapee that also clears its environment "
    "carries no ACTANT_INSTANCE_ID and is reparented to the daemon (the subreaper), out of the agent's tree: "
    "only the agent's cgroup (actantd.supervisor.cgroup) finds it",
)
def test_escapee_with_a_scrubbed_environment_dies_on_stop(short_tmp: Path) -> None:
    notify = short_tmp / "trees.sock"
    reports = Reports(notify)
    procs: dict[str, tuple[int, float]] = {}
    try:
        with soak_daemon(short_tmp, tree_templates(notify, {"scrubbed": (SCRUBBED, 2)})) as d:
            d.call("agent.create", {"name": "scrubbed", "template": "scrubbed"})
            d.call("agent.start", {"name": "scrubbed"})
            procs = reports.collect({"scrubbed": 2})["scrubbed"]
            d.call("agent.stop", {"name": "scrubbed"})
            survivors = [describe(pid) for pid, ct in procs.values() if alive(pid, ct)]
            assert not survivors, survivors
    finally:
        reports.close()
        for pid, ct in procs.values():  # never leak it, whatever the outcome
            if alive(pid, ct):
                os.kill(pid, signal.SIGKILL)
        wait_gone([pid for pid, _ct in procs.values()], timeout=5)
        reap_zombies()


# ======================================================================================= 4. crash storm


def storm_template(max_restarts: int) -> dict[str, Any]:
    return {"name": "storm", "command": ["{python}", "-c", "import sys; sys.exit(7)"],
            "restart": {"policy": "OnFailure", "maxRestarts": max_restarts, "windowSeconds": 600,
                        "initialDelayMs": 10, "maxDelayMs": 50, "minUptimeSeconds": 5}}  # fmt: skip


class Pinger(threading.Thread):
    """``daemon.ping`` in a loop on its own connection, recording each round trip."""

    def __init__(self, d: Daemon) -> None:
        super().__init__(daemon=True)
        self.conn = d.conn(timeout=30)
        self.latencies: list[float] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                t0 = time.perf_counter()
                self.conn.call("daemon.ping")
                self.latencies.append(time.perf_counter() - t0)
        except BaseException as exc:
            self.error = exc
        finally:
            self.conn.close()


def start_into(conn: Any, name: str, errors: list[str]) -> None:
    """``agent.start`` without waiting, from a thread; an error goes to ``errors``."""
    try:
        conn.call("agent.start", {"name": name, "wait": False})
    except (RpcError, *CONNECTION_LOST) as exc:
        errors.append(f"{name}: {exc!r}")


def run_storm(root: Path, *, instances: int, waves: int, max_restarts: int) -> None:
    names = [f"s{i:02d}" for i in range(instances)]
    with soak_daemon(root, [storm_template(max_restarts)]) as d:
        events = d.conn(timeout=60)
        events.call("events.subscribe", {"types": ["transition"]})
        for n in names:
            d.call("agent.create", {"name": n, "template": "storm"})
        received: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        latencies: list[float] = []
        for wave in range(waves):
            pinger = Pinger(d)
            pinger.start()
            conns = [d.conn(timeout=60) for _ in names]
            start_errors: list[str] = []
            starters = [
                threading.Thread(target=start_into, args=(c, n, start_errors))
                for c, n in zip(conns, names, strict=True)
            ]
            for t in starters:
                t.start()
            failed: set[str] = set()
            while len(failed) < len(names):
                ev = events.next_notification("event")["params"]
                if ev["agent"] in received:
                    received[ev["agent"]].append(ev)
                    if ev["to"] == "Failed":
                        failed.add(ev["agent"])
            for t in starters:
                t.join(30)
            for c in conns:
                c.close()
            assert start_errors == []
            pinger.done.set()
            pinger.join(30)
            assert pinger.error is None, pinger.error
            assert pinger.latencies, "no ping got through during the storm"
            latencies += pinger.latencies
            for n in names:
                crashes = [e for e in received[n] if e["to"] == "Crashed"]
                assert len(crashes) == (wave + 1) * (max_restarts + 1), (n, wave, len(crashes))
        # The journal has every transition: exactly the ones published, in order, chained from → to.
        for n in names:
            journal = d.call("events.query", {"agent": n, "types": ["transition"], "limit": 10_000})["events"]
            assert [(e["id"], e["from"], e["to"], e["reason"]) for e in journal] == [
                (e["id"], e["from"], e["to"], e["reason"]) for e in received[n]
            ], n
            chain = [(e["from"], e["to"]) for e in journal]
            assert chain[0] == ("Created", "Initializing"), chain[:3]
            assert all(a[1] == b[0] for a, b in itertools.pairwise(chain)), chain
            assert chain[-1][1] == "Failed" and "restart budget exhausted" in journal[-1]["reason"], journal[-1]
            disk = json.loads((d.home / "instances" / n / ".actant.json").read_text())
            assert disk["status"] == "Failed" and disk["pid"] is None, disk
        events.close()
        assert not agent_processes(root)
        worst, median = max(latencies), statistics.median(latencies)
        q = statistics.quantiles(latencies, n=100)
        figures = (
            f"p50 {median * 1e3:.2f} ms, p90 {q[89] * 1e3:.2f} ms, p99 {q[98] * 1e3:.2f} ms, max {worst * 1e3:.1f} ms"
        )
        print(f"storm: {len(latencies)} pings, {figures}")
        # Every transition is fsynced on the event loop (file and directory), so a storm of them delays other
        # requests. Measured on a loaded 2-CPU VM: p50 0.05-60 ms, p99 120-650 ms, max 0.23-0.65 s. The bound
        # is "answers within seconds, typically at once", with room for a busy CI machine.
        assert median < 0.25 and worst < 3.0, figures
        errors = daemon_errors(d)
        final_clean_stop(d, root)
    assert not errors, "\n".join(errors[:40])


def test_crash_loop_storm_short(short_tmp: Path) -> None:
    run_storm(short_tmp, instances=20, waves=1, max_restarts=3)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_crash_loop_storm_soak(short_tmp: Path) -> None:
    run_storm(short_tmp, instances=20, waves=scaled(5), max_restarts=15)


# ========================================================================================= 5. RPC fuzz

METHODS = [
    "daemon.ping", "daemon.status", "template.list", "template.get", "template.validate", "skill.list",
    "skill.get", "prompt.list", "prompt.get", "workflow.list", "workflow.get", "mcp.list", "mcp.get",
    "backend.list", "backend.get", "config.validate", "config.migrate", "agent.create", "agent.list",
    "agent.status", "agent.start", "agent.stop", "agent.restart", "agent.destroy", "agent.logs", "agent.run",
    "agent.sync", "agent.attach", "agent.detach", "agent.launchSpec", "events.subscribe", "events.unsubscribe",
    "events.query", "logs.unsubscribe",
]  # fmt: skip
"""Every method but ``daemon.shutdown`` (which would end the run legitimately)."""

SENTINEL = f"actant-fuzz-{uuid.uuid4().hex[:8]}"
"""A file name that must never appear anywhere: the hostile names all aim at it."""

HOSTILE_NAMES = [
    "../x", "..", ".", "", "/", "a/b", "../../" + SENTINEL, "../../../" + SENTINEL, "../../../../" + SENTINEL,
    "/tmp/" + SENTINEL, SENTINEL + "\0x", "x\0", "\0", "é" * 10, "\u202e" + SENTINEL, "x" * 128, "x" * 129,
    "y" * 5000, "a\nb", " a", "a ", "-rf", ".hidden", ".corrupted", ".staging", ".trash", "~", "$HOME",
    "%s%n", "\udcff", "\ud800", "CON", "a" * 255, "b" * 256, "logs", "instances",
]  # fmt: skip

json_scalar = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
)
non_text = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
json_keys = st.text(max_size=6).filter(lambda k: k != "pid")  # a random small pid could be a real process
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=3),
    max_leaves=8,
)
names_st = st.sampled_from(["fz", "fz2", "fz-1"]) | st.sampled_from(HOSTILE_NAMES) | st.text(max_size=40)
# Random text only as a relative path: an absolute one could name a device or FIFO (see the FIFO test below).
paths_st = (
    st.sampled_from(["/etc/hostname", "/nonexistent/x.json", "relative.json", "", "\0", "/", "/proc/self/stat"])
    | st.text(max_size=30).map(lambda s: "rel" + s)
    | st.just(f"/tmp/{SENTINEL}/templates/x.json")
    | json_scalar.filter(lambda v: not isinstance(v, str))
)
# Never a pid that may exist: the fuzzer could attach to (and then stop) a real process, pytest included.
pids_st = (
    st.integers(4_194_305, 2**70)
    | st.integers(-(2**70), 0)
    | st.none()
    | st.booleans()
    | st.floats()
    | st.text(max_size=8)
    | st.lists(st.integers(), max_size=2)
)
param_values = {
    "name": names_st,
    "template": st.sampled_from(["sleeper", "oneshot", "demo"]) | st.sampled_from(["nope", "../x", ""]) | json_scalar,
    # Never text: an existing directory ("/", ".", "~") is a legitimate --work-dir and would get written to.
    "workDir": st.just(f"/tmp/{SENTINEL}/wd") | non_text,
    "overrides": st.fixed_dictionaries({"env": st.dictionaries(st.text(max_size=8), st.text(max_size=8))}) | json_value,
    "force": st.booleans() | json_scalar,
    "wait": st.just(False) | json_scalar,
    "stream": st.sampled_from(["stdout", "stderr", "../../etc/passwd", ""]) | json_scalar,
    "lines": st.integers(-5, 10**9) | json_scalar,
    "follow": st.booleans(),
    "timeoutSeconds": st.floats(0, 0.5) | json_scalar,
    "pid": pids_st,
    "path": paths_st,
    "prompt": st.text(max_size=20),
    "agent": names_st | st.none(),
    "types": st.lists(st.text(max_size=10), max_size=3) | json_scalar,
    "since": st.text(max_size=25) | st.floats() | json_scalar,
    "limit": st.integers(-5, 20_000) | json_scalar,
    "subscription": st.text(max_size=10) | json_scalar,
    "status": st.sampled_from(["Running", "x"]) | json_scalar,
    "dryRun": st.booleans(),
}
# Mostly well-formed calls of real methods with a name (so the daemon does real work on hostile input), then
# everything else: odd methods, envelopes, ids and params, batches, and plain JSON values.
params_st = st.fixed_dictionaries(
    {"name": names_st}, optional={k: v for k, v in param_values.items() if k != "name"}
) | st.fixed_dictionaries({}, optional=param_values)  # fmt: skip
good_request_st = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "id": st.integers(0, 10**6), "method": st.sampled_from(METHODS), "params": params_st}
)
create_st = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "id": st.integers(0, 10**6), "method": st.just("agent.create"),
     "params": st.fixed_dictionaries({"name": names_st, "template": param_values["template"]},
                                     optional={"workDir": param_values["workDir"],
                                               "overrides": param_values["overrides"]})}
)  # fmt: skip
odd_method_st = (
    st.sampled_from(METHODS)
    | st.sampled_from(["agent.", ".create", "agent.create\0", "AGENT.CREATE", "__init__", "rpc.discover",
                       "constructor", "__proto__", "agent.create ", "daemon.shutdown\n", "agent..create"])
    | st.text(max_size=20)
    | json_value
)  # fmt: skip
id_st = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.none() | json_value
odd_request_st = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0") | json_value, "method": odd_method_st},
    optional={"id": id_st, "params": params_st | json_value},
)
message_st = st.one_of(
    create_st,
    good_request_st,
    good_request_st,
    good_request_st,
    st.lists(good_request_st, min_size=1, max_size=4),
    odd_request_st,
    st.lists(odd_request_st | good_request_st, max_size=4),
    json_value,
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A connection's worth of bytes: NDJSON lines or Content-Length frames of (mostly) requests, some
    mutated byte-wise, some random bytes."""
    payloads = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["json", "json", "json", "mutated", "random"]))
        if kind == "random":
            payloads.append(draw(st.binary(max_size=80)))
            continue
        raw = json.dumps(draw(message_st)).encode()
        if kind == "mutated":
            buf = bytearray(raw)
            for _ in range(draw(st.integers(1, 3))):
                at = draw(st.integers(0, len(buf)))
                buf[at : at + draw(st.integers(0, 2))] = draw(st.binary(min_size=1, max_size=2))
            raw = bytes(buf)
        payloads.append(raw)
    if draw(st.integers(0, 3)) > 0:
        return b"".join(p.replace(b"\n", b" ") + b"\n" for p in payloads)
    return b"".join(b"Content-Length: %d\r\n\r\n" % len(p) + p for p in payloads)


def assert_valid_message(raw: bytes) -> None:
    """A response (or batch of them) as ``test_rpc_fuzz`` checks it, or a notification the connection asked for
    (``events.subscribe``, ``agent.logs`` with ``follow``): ``{"jsonrpc": "2.0", "method", "params"}``, no id."""
    obj = json.loads(raw)
    if isinstance(obj, dict) and "method" in obj:
        assert set(obj) == {"jsonrpc", "method", "params"} and obj["jsonrpc"] == "2.0", obj
        assert obj["method"] in ("event", "log") and isinstance(obj["params"], dict), obj
        return
    assert_valid_reply(raw)


def snapshot(root: Path, home: Path) -> dict[str, float]:
    """Every path under ``root`` outside ``home`` (with mtimes for files), to tell what appeared."""
    out: dict[str, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == home.parent:
            dirnames[:] = [n for n in dirnames if Path(dirpath, n) != home]
        for n in filenames + dirnames:
            p = Path(dirpath, n)
            if n.startswith("notify-") or n == "actantd.stderr":
                continue  # the harness's READY sockets come and go; the daemon's log grows
            with contextlib.suppress(FileNotFoundError):
                out[str(p.relative_to(root))] = p.lstat().st_mtime if p.is_file() else 0.0
    return out


def sentinel_hits(root: Path) -> list[str]:
    """Anything named after the sentinel, from ``/`` and ``/tmp`` down to the daemon's instance folder."""
    places = {Path("/"), Path("/tmp"), root.parent, *root.parents}
    for dirpath, _dirnames, _files in os.walk(root):
        places.add(Path(dirpath))
    hits = []
    for place in places:
        with contextlib.suppress(OSError):
            hits += [str(place / n) for n in os.listdir(place) if SENTINEL in n]
    return hits


def run_fuzz(root: Path, *, examples: int) -> None:
    d = Daemon(root, make_configs(root))
    d.home = root / "deep" / "er" / "home"  # room above home for "../../x" to land in, and be seen
    try:
        d.start()
        before = snapshot(root, d.home)
        seen_replies = [0]

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(data=frames())
        def one(data: bytes) -> None:
            for reply in split_replies(exchange(d.socket, data)):
                assert_valid_message(reply)
                seen_replies[0] += 1
            assert d.proc is not None and d.proc.poll() is None, "the daemon died:\n" + d.read_stderr()
            pong = json.loads(exchange(d.socket, b'{"jsonrpc":"2.0","id":"p","method":"daemon.ping"}\n'))
            assert pong["id"] == "p" and pong["result"]["pid"] == d.proc.pid, pong

        one()
        assert seen_replies[0] > examples // 2, seen_replies
        assert sentinel_hits(root) == []
        after = snapshot(root, d.home)
        assert after == before, {k: after.get(k) for k in set(after) ^ set(before) | {
            k for k in after if after[k] != before.get(k)}}  # fmt: skip
        assert set(listdir(d.home)) <= {"instances", "logs", "secrets", "journal.sqlite", "journal.sqlite-wal",
                                        "journal.sqlite-shm", "actantd.lock"}, listdir(d.home)  # fmt: skip
        for sub in ("instances", "logs", "secrets"):
            if not (d.home / sub).exists():  # secrets/ appears only once an instance has env overrides
                continue
            odd = [n for n in listdir(d.home / sub) if n not in (".corrupted", ".staging", ".trash")
                   and not (n[:1].isalnum() and n.isascii() and len(n) <= 128 and "/" not in n)]  # fmt: skip
            assert odd == [], (sub, odd)
        assert listdir(d.home / "instances/.corrupted") == []
        errors = daemon_errors(d)
        final_clean_stop(d, root)
        assert not errors, "\n".join(errors[:40])
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_fuzzed_frames_against_the_daemon_process_short(short_tmp: Path) -> None:
    run_fuzz(short_tmp, examples=80)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_fuzzed_frames_against_the_daemon_process_soak(short_tmp: Path) -> None:
    run_fuzz(short_tmp, examples=scaled(3000))


def test_template_validate_on_a_fifo_does_not_wedge_the_daemon(short_tmp: Path) -> None:
    """``template.validate`` reads a path the client names; a FIFO (or /dev/zero, /proc/kmsg...) must not block
    the event loop or read without bound."""
    fifo = short_tmp / "configs-fifo.json"
    os.mkfifo(fifo)
    with soak_daemon(short_tmp) as d:
        slow = d.conn(timeout=60)
        slow.send({"jsonrpc": "2.0", "id": 1, "method": "template.validate", "params": {"path": str(fifo)}})
        try:
            probe = d.conn(timeout=2)
            t0 = time.monotonic()
            try:
                probe.call("daemon.ping")
            except TimeoutError:
                pytest.fail("daemon.ping timed out while template.validate was reading a FIFO")
            finally:
                probe.close()
            assert time.monotonic() - t0 < 1.0
        finally:
            # Unblock the reader (whatever it does with it), so the daemon can stop.
            with contextlib.suppress(OSError):
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"{}")
                os.close(fd)
            slow.close()


# ========================================================================== 6. ENOSPC during a state write


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``, unmounted afterwards; skips when this environment cannot mount one."""
    path.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no mount(8): a real ENOSPC needs a small filesystem to fill")
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); a real ENOSPC needs a small "
            "filesystem to fill (needs root or CAP_SYS_ADMIN), and RLIMIT_FSIZE would give EFBIG/SIGXFSZ to "
            "every write of the daemon, not ENOSPC on one file"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


class Filler:
    """Fills a tmpfs with one-page files until ENOSPC, and frees any number of pages again."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.files: list[Path] = []
        self.page = os.sysconf("SC_PAGESIZE")

    def fill(self) -> None:
        while True:
            path = self.where / f"filler-{len(self.files)}-{uuid.uuid4().hex[:6]}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                written = os.write(fd, b"\0" * self.page)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                written = 0
            finally:
                os.close(fd)
            if written < self.page:
                path.unlink()
                return
            self.files.append(path)

    def free(self, pages: int | None = None) -> None:
        n = len(self.files) if pages is None else pages
        for path in self.files[-n:] if n else []:
            path.unlink()
        self.files = self.files[: len(self.files) - n]


def expect_state_write(call: Callable[[], Any]) -> RpcError:
    with pytest.raises(RpcError) as info:
        call()
    assert info.value.error_code == "STATE_WRITE" and info.value.code == -32015, info.value.error
    assert info.value.context.get("errno") == "ENOSPC", info.value.error
    return info.value


def assert_consistent(d: Daemon, name: str, record_file: Path, expected: bytes) -> dict[str, Any]:
    """The record on disk is byte-for-byte the last good one, parses, and is what the daemon reports."""
    raw = record_file.read_bytes()
    assert raw == expected, "the previous .actant.json was changed by a failed write"
    decode(raw)
    assert [p.name for p in record_file.parent.iterdir() if ".tmp-" in p.name] == [], "temp file left behind"
    agent = d.call("agent.status", {"name": name})["agent"]
    doc = json.loads(raw)
    assert {k: agent[k] for k in doc} == doc, f"daemon view != disk:\n daemon {agent}\n disk   {doc}"
    assert d.call("daemon.ping")["pid"] == d.proc.pid  # type: ignore[union-attr]
    return agent


def run_enospc(root: Path, *, cycles: int) -> None:
    with small_tmpfs(root / "fs", "512k") as fs:
        workspace = fs / "ws"
        workspace.mkdir()
        filler = Filler(fs)
        with soak_daemon(root) as d:
            record_file = workspace / ".actant.json"
            iid = d.call("agent.create", {"name": "full", "template": "sleeper", "workDir": str(workspace)})["agent"][
                "instanceId"
            ]
            for cycle in range(cycles):
                # Start on a full disk: STATE_WRITE, nothing spawned, the old record kept.
                good = record_file.read_bytes()
                filler.fill()
                expect_state_write(lambda: d.call("agent.start", {"name": "full"}))
                status = assert_consistent(d, "full", record_file, good)["status"]
                assert status in ("Ready", "Stopped")
                assert [p for p in agent_processes(root).values() if p.instance_id == iid] == [], cycle
                filler.free()
                running = d.call("agent.start", {"name": "full"})["agent"]
                assert running["status"] == "Running"
                assert_process_is(running)
                # Stop on a full disk (issue #10, class 3): the agent is stopped all the same, the reply says the
                # record could not be written, the old record stays intact, and the truth is written once
                # there is space again.
                good = record_file.read_bytes()
                filler.fill()
                reply = d.call("agent.stop", {"name": "full"})
                assert reply["agent"]["status"] == "Stopped" and "ENOSPC" in reply["stateWriteError"], reply
                assert not alive(running["pid"], running["pidCreateTime"]), "stop on a full disk left the agent"
                assert record_file.read_bytes() == good, "the previous .actant.json was changed by a failed write"
                conn = d.conn()
                conn.call("events.subscribe", {"types": ["instance"]})
                filler.free()
                conn.wait_event(lambda e: e.get("event") == "stateWritten" and e["agent"] == "full")
                conn.close()
                assert json.loads(record_file.read_text())["status"] == "Stopped"
            # Destroy on a full disk still works (it writes no state) and leaves nothing of Actant's behind.
            filler.fill()
            assert d.call("agent.destroy", {"name": "full"})["destroyed"] is True
            assert not record_file.exists()
            filler.free()
            errors = daemon_errors(d)
            final_clean_stop(d, root)
        assert not errors, "\n".join(errors[:40])


def test_enospc_on_state_write_short(short_tmp: Path) -> None:
    run_enospc(short_tmp, cycles=1)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_enospc_on_state_write_soak(short_tmp: Path) -> None:
    run_enospc(short_tmp, cycles=scaled(40))


def test_enospc_between_spawn_and_running_leaves_no_unsupervised_agent(short_tmp: Path) -> None:
    """The disk fills up after the ``Starting`` write but before the ``Running`` one (the record is sized so
    that ``Starting`` fits in one page and ``Running`` needs two, with one page free): the process was already
    spawned. The call must fail with STATE_WRITE and the agent must not be left running unsupervised."""
    with small_tmpfs(short_tmp / "fs", "512k") as fs:
        workspace = fs / "ws"
        workspace.mkdir()
        filler = Filler(fs)
        with soak_daemon(short_tmp) as d:
            record_file = workspace / ".actant.json"
            # Padding goes in an env *name*: the record keeps names only (values live in {home}/secrets/).
            probe = {"name": "edge", "template": "sleeper", "workDir": str(workspace),
                     "overrides": {"env": {"PAD": ""}}}  # fmt: skip
            ready = decode(json.dumps(d.call("agent.create", probe)["agent"]).encode())[0]

            # Size the record: Starting exactly one page (Running only grows: pid, pidCreateTime, launchedAt).
            def starting_size(pad: int) -> int:
                rec = msgspec.structs.replace(
                    ready, status=Status.STARTING, reason="start requested", updated_at=ready.updated_at,
                    overrides=msgspec.structs.replace(ready.overrides, env={"PAD" + "X" * pad: REDACTED}),
                )  # fmt: skip
                return len(encode(rec))

            pad = filler.page - starting_size(0)
            assert starting_size(pad) == filler.page
            d.call("agent.destroy", {"name": "edge"})
            agent = d.call("agent.create", {**probe, "overrides": {"env": {"PAD" + "X" * pad: ""}}})["agent"]
            good_ready = record_file.read_bytes()
            assert len(good_ready) <= filler.page
            filler.fill()
            filler.free(1)  # exactly one free page: enough for the Starting write, not for Running
            with pytest.raises(RpcError) as info:
                d.call("agent.start", {"name": "edge"})
            assert info.value.error_code == "STATE_WRITE", info.value.error
            history = d.call("events.query", {"agent": "edge", "types": ["transition"]})["events"]
            # The process was spawned and, Running being unrecordable, stopped again; Failed is then kept in
            # memory (issue #10, class 3) and written once there is space.
            assert history[-2]["to"] == "Starting", f"the failure did not land after the spawn: {history[-2:]}"
            assert history[-1]["to"] == "Failed", history[-1]
            procs = [p.pid for p in agent_processes(short_tmp).values() if p.instance_id == agent["instanceId"]]
            conn = d.conn()
            conn.call("events.subscribe", {"types": ["instance"]})
            filler.free()
            conn.wait_event(lambda e: e.get("event") == "stateWritten" and e["agent"] == "edge")
            conn.close()
            on_disk = json.loads(record_file.read_text())
            view = d.call("agent.status", {"name": "edge"})["agent"]
            problems = []
            if procs and not (view["status"] == "Running" and view["pid"] in procs):
                problems.append(
                    f"agent process {procs} left running while the daemon reports {view['status']} "
                    f"pid={view['pid']} (disk: {on_disk['status']} pid={on_disk['pid']})"
                )
            if (view["status"], view["pid"]) != (on_disk["status"], on_disk["pid"]):
                problems.append(f"daemon reports {view['status']} pid={view['pid']}, disk {on_disk}")
            # With space again, a start really starts it (an instance stuck in Starting would make it a no-op).
            try:
                restarted = d.call("agent.start", {"name": "edge"})["agent"]
                if restarted["status"] != "Running" or not alive(restarted["pid"] or -1):
                    problems.append(f"agent.start after the disk was freed gave {restarted['status']} "
                                    f"pid={restarted['pid']}")  # fmt: skip
            except RpcError as exc:
                problems.append(f"agent.start after the disk was freed failed: {exc.error}")
            # Whatever happened, a stop must now bring everything down.
            d.call("agent.stop", {"name": "edge"})
            left = wait_gone(procs, timeout=5) + [p.pid for p in agent_processes(short_tmp).values()]
            if left:
                problems.append(f"agent.stop left {sorted(set(left))}")
            for pid in set(left):
                os.kill(pid, signal.SIGKILL)
            wait_gone(left, timeout=5)
            final_clean_stop(d, short_tmp)
            assert not problems, "\n".join(problems)
