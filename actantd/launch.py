"""What to execute for an instance: pure functions from a record and its resolved template to argv/env/cwd.

Nothing here starts a process or touches the disk, so every rule about an agent's command line and
environment is unit-tested without a daemon (tests/instances/test_launch.py). The supervisor
(:mod:`actantd.supervisor.process`) executes a :class:`LaunchSpec`; the health monitor runs the
:class:`~actantd.supervisor.health.ProbeSpec` built by :func:`build_probe_spec`.

Modes: ``service`` is the long-running agent that ``agent start`` supervises (the template's ``command``,
else the backend's ``service`` argv); ``run`` is a one-shot prompt (the backend's ``run`` argv, which holds
``{prompt}``); ``open`` is the interactive CLI in a terminal (the backend's ``open`` argv).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from actantd.config.registry import Resolved
from actantd.config.schema import HealthCheck, expand_argv, expand_env
from actantd.errors import AgentLaunch, NotSupported
from actantd.instances import secret_env
from actantd.instances.record import InstanceRecord, workspace_path
from actantd.materialize.launch import additions as trust_additions
from actantd.materialize.launch import with_args
from actantd.paths import Layout
from actantd.supervisor.health import ProbeSpec

LaunchMode = Literal["service", "run", "open"]
MODES: tuple[LaunchMode, ...] = ("service", "run", "open")

DAEMON_ONLY_ENV = frozenset({"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC"})
"""systemd hands these to the daemon; an agent that inherited them could answer for the daemon."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to exec an agent: the complete argv, the complete environment, the directory."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    install_hint: str | None = None
    """Shown when the executable is missing (the backend's ``install`` text)."""


def build_launch_spec(
    record: InstanceRecord,
    resolved: Resolved,
    layout: Layout,
    *,
    mode: LaunchMode = "service",
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
    prompt: str | None = None,
    instance_env: Mapping[str, str] | None = None,
    caller_env: Mapping[str, str] | None = None,
) -> LaunchSpec:
    """The launch of ``record`` in ``mode``; ``base_env`` (default ``os.environ``) is what the daemon inherited.

    Environment layers, later ones winning: the daemon's own environment minus systemd's daemon-only
    variables, ``caller_env`` (the PATH and locale of the client that started the agent, see
    actantctl/environment.py, so an executable installed after the daemon started is found), the backend
    CLI's trust variables (``GEMINI_CLI_TRUST_WORKSPACE``), the backend's ``env``,
    the template's ``env``, the instance's ``overrides.env``, and last the ``ACTANT_*`` identity variables
    (``ACTANT_INSTANCE_ID`` is how leftover descendants are found later, so nothing may override it).
    ``instance_env`` is the instance's env with its real values; when not given it is read with
    ``secret_env.launch_env`` (the one file read here: the record holds only the names). Raises
    :class:`AgentLaunch` (service) or :class:`NotSupported` (run/open) when there is nothing to execute,
    naming the template and the backend.
    """
    template = resolved.template
    backend = resolved.backend
    if mode == "service":
        argv = template.command or (backend.service if backend is not None else None)
        if not argv:
            raise AgentLaunch(
                f"template {template.name!r} has no command and backend {template.backend!r} no service argv",
                agent=record.name,
            )
    elif mode in ("run", "open"):
        argv = getattr(backend, mode, None) if backend is not None else None
        if not argv:
            raise NotSupported(
                f"template {template.name!r}: backend {template.backend!r} has no {mode!r} argv",
                agent=record.name,
                template=template.name,
                backend=template.backend,
                mode=mode,
            )
    else:
        raise ValueError(f"unknown launch mode {mode!r}; expected one of {', '.join(MODES)}")
    workspace = str(workspace_path(record, layout))
    values = {"python": python, "workspace": workspace, "name": record.name, "configs": str(layout.configs)}
    if prompt is not None:
        values["prompt"] = prompt
    inherited = os.environ if base_env is None else base_env
    env = {k: v for k, v in inherited.items() if k not in DAEMON_ONLY_ENV}
    env.update({k: v for k, v in (caller_env or {}).items() if k not in DAEMON_ONLY_ENV})
    # Trust env vars and flags of the backend's CLI (actantd/materialize/launch.py): the CLI must use the
    # workspace's files without a prompt. Flags only on the backend's own argv, never a template's command.
    extra = trust_additions(backend.materializer, Path(workspace), mode) if backend is not None else None
    if extra is not None:
        env.update(extra.env)
    if backend is not None:
        env.update(expand_env(backend.env, **values))
    env.update(expand_env(template.env, **values))
    env.update(secret_env.launch_env(record, layout) if instance_env is None else instance_env)
    env.update(
        ACTANT_INSTANCE=record.name,
        ACTANT_INSTANCE_ID=record.instance_id,
        ACTANT_WORKSPACE=workspace,
        ACTANT_TEMPLATE=record.template_ref,
    )
    hint = backend.install if backend is not None else None
    full = expand_argv(argv, **values)
    if extra is not None and argv is not template.command:
        full = with_args(full, extra.args)
    return LaunchSpec(argv=tuple(full), env=env, cwd=Path(workspace), install_hint=hint)


def build_probe_spec(
    record: InstanceRecord, check: HealthCheck, layout: Layout, *, base_env: Mapping[str, str] | None = None
) -> ProbeSpec:
    """The health probe of ``record``: its command run in the workspace (with ``ACTANT_INSTANCE`` and
    ``ACTANT_WORKSPACE`` set), or a TCP connect to ``host:port``."""
    workspace = workspace_path(record, layout)
    if check.command is None:
        assert check.port is not None  # the schema requires one of the two
        return ProbeSpec(host=check.host, port=check.port, timeout=check.timeout_seconds)
    inherited = os.environ if base_env is None else base_env
    env = dict(inherited, ACTANT_INSTANCE=record.name, ACTANT_WORKSPACE=str(workspace))
    return ProbeSpec(argv=tuple(check.command), cwd=workspace, env=env, timeout=check.timeout_seconds)
