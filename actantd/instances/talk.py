"""Giving an instance work: one-shot runs, the interactive open, and prompts to its live ACP session.

The executors live elsewhere (:mod:`actantd.runs` for runs, :mod:`actantd.acp` for sessions, the CLI for
``open``, which takes :func:`launch_spec` with ``mode="open"`` and is refused by ``agent.attach`` while the
instance is active); this module decides what may happen to which instance and builds what a run executes
from the instance's launch spec (:func:`actantd.launch.build_launch_spec` with ``mode="run"``), so a run gets
exactly the environment and working directory the agent's service would.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import msgspec

from actantd.acp.attach import speaks_acp
from actantd.errors import AcpError, DaemonBusy, InvalidParams, NotSupported
from actantd.instances import secret_env, workspaces
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.state import ACTIVE
from actantd.launch import LaunchMode, LaunchSpec, build_launch_spec
from actantd.supervisor import kill

if TYPE_CHECKING:  # runs and ACP sessions load on the first run or prompt, not at daemon start (RSS)
    from actantd.acp.session import AcpSession, OnPermission, OnUpdate
    from actantd.runs.executor import OnLine
    from actantd.runs.service import RunService

PROMPT_PREVIEW_CHARS = 200


async def run_once(
    lc: Lifecycle,
    runs: RunService,
    name: str,
    prompt: str,
    timeout: float | None,
    *,
    continue_session: bool = False,
    on_line: OnLine | None = None,
) -> dict[str, Any]:
    """``agent run``: the backend's one-shot argv in the workspace (see :mod:`actantd.runs.service`)."""
    from actantd.runs.executor import RunSpec
    from actantd.runs.service import needs_session, output_format, run_argv, run_marker

    if lc.shutting_down:
        raise DaemonBusy(f"actantd is shutting down; {name!r} was not run", agent=name)
    record = lc.get(name)
    resolved = lc.resolve(record.template_ref)
    backend = resolved.backend
    if backend is None:
        raise NotSupported(f"agent {name!r} has no backend to run", agent=name)
    session = record.run_session_id if continue_session else None
    if continue_session and session is None and needs_session(backend.run_resume):
        raise InvalidParams(f"agent {name!r} has no earlier run to continue (run it once without --continue)",
                            agent=name)  # fmt: skip
    argv = run_argv(backend.run, backend.run_resume, backend=backend.name, session=session,
                    continued=continue_session)  # fmt: skip
    marker = run_marker(record.instance_id)
    # The launch spec's "run" mode expands the backend's run argv; this call's argv (run or runResume) is
    # put in its place, so the env and cwd rules stay the launch spec's own.
    this_call = dataclasses.replace(resolved, backend=msgspec.structs.replace(backend, run=tuple(argv)))

    async def spec() -> tuple[RunSpec, str]:
        launch = build_launch_spec(record, this_call, lc.layout, mode="run", python=lc.python, prompt=prompt)
        env = {**launch.env, kill.INSTANCE_ENV: marker}
        return RunSpec(launch.argv, env, str(launch.cwd)), marker

    async def keep_session(session_id: str) -> None:
        async with lc.lock(name):
            await lc.update(name, record.instance_id, run_session_id=session_id)

    outcome = await runs.run(
        name=name, backend=backend.name, prompt=prompt, spec=spec,
        output=output_format(backend.run_output, backend.materializer), timeout=timeout,
        continued=continue_session, install_hint=backend.install, on_line=on_line, on_session=keep_session,
    )  # fmt: skip
    result = outcome.wire()
    # A one-shot run is the end of an Ephemeral instance's work (unless its service still runs): its workspace
    # goes now, its branch stays. No await since the run let go of the instance, so no other run got in.
    with runs.hold(name, "removing its ephemeral workspace"):
        result["ephemeral"] = await workspaces.end_ephemeral(lc, name, after_run=True)
    return result


def launch_spec(lc: Lifecycle, name: str, mode: LaunchMode, prompt: str | None) -> tuple[LaunchSpec, list[str]]:
    """``agent.launchSpec`` (``agent env``, ``agent open``): the launch in ``mode`` with only the env Actant
    adds (``base_env={}``), and the names in it whose values are secret (the template's and instance's env).
    ``{prompt}`` stays literal in ``run`` unless a prompt is given."""
    record = lc.get(name)
    resolved = lc.resolve(record.template_ref)
    instance_env = secret_env.launch_env(record, lc.layout)
    spec = build_launch_spec(record, resolved, lc.layout, mode=mode, python=lc.python, base_env={},
                             prompt="{prompt}" if prompt is None else prompt, instance_env=instance_env)  # fmt: skip
    user = {**resolved.template.env, **instance_env}
    return spec, sorted(k for k in user if k in spec.env and not k.startswith("ACTANT_"))


def acp_session(lc: Lifecycle, name: str) -> AcpSession:
    record = lc.get(name)
    session = lc.process(name).acp
    if session is None or not session.alive or record.status not in ACTIVE:
        if not speaks_acp(lc.resolve(record.template_ref), record):
            raise NotSupported(f"agent {name!r} does not speak ACP (its backend has no \"protocol\": \"acp\")",
                               agent=name)  # fmt: skip
        raise AcpError(f"agent {name!r} has no live ACP session ({record.status.value}); start it first",
                       agent=name, status=record.status.value)  # fmt: skip
    return session


async def prompt(
    lc: Lifecycle,
    name: str,
    text: str,
    *,
    timeout: float | None = None,
    permission_timeout: float | None = None,
    on_update: OnUpdate | None = None,
    on_permission: OnPermission | None = None,
) -> dict[str, Any]:
    """``agent prompt``: one turn of the live ACP session; journaled as a ``prompt`` entry."""
    from actantd.acp.session import DEFAULT_PERMISSION_TIMEOUT

    session = acp_session(lc, name)
    result = await session.prompt(
        text, on_update=on_update, on_permission=on_permission, timeout=timeout,
        permission_timeout=permission_timeout or DEFAULT_PERMISSION_TIMEOUT,
    )  # fmt: skip
    lc.event("prompt", name, textPreview=text[:PROMPT_PREVIEW_CHARS], sessionId=result["sessionId"],
             stopReason=result["stopReason"], usage=result["usage"], durationMs=result["durationMs"])  # fmt: skip
    return {"name": name, "resumed": session.resumed, **result}


def acp_status(lc: Lifecycle, name: str) -> dict[str, Any] | None:
    session = lc.process(name).acp if lc.current(name) is not None else None
    if session is None:
        return None
    return {"sessionId": session.session_id, "resumed": session.resumed, "alive": session.alive,
            "agentInfo": session.agent_info, "pendingPermissions": sorted(session.pending)}  # fmt: skip
