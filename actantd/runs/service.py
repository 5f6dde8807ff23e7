"""One-shot runs of instances: one at a time per instance, parsed, journaled, the session id kept.

Several runs on one instance are **refused** (``AGENT_BUSY``), not queued. A queued run would hold its
caller's connection for an unknown time before its own timeout even starts, the caller could not tell
"waiting" from "working", and two ``--continue`` runs queued together would both continue the same turn.
Refusing is immediate and says which run is in the way (started when, on what prompt); a caller that wants
a queue can retry. Runs of *different* instances proceed in parallel.

What a run reports (the ``agent.run`` result) and what it journals (an ``execution`` entry) come from one
:class:`RunOutcome`, so the history can never disagree with what the caller was told.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from actantd.errors import AgentBusy, InvalidParams, NotSupported
from actantd.runs import executor
from actantd.runs.parsers import DEFAULT_FORMAT_BY_MATERIALIZER, OutputFormat, Report, parser_for

DEFAULT_TIMEOUT_SECONDS: Final = 600.0
PROMPT_PREVIEW_CHARS: Final = 200
SESSION_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
"""What a backend session id may look like before it goes into an argv (they are UUIDs in practice)."""
RUN_MARK_SUFFIX: Final = ".run"


def run_marker(instance_id: str) -> str:
    """The ``ACTANT_INSTANCE_ID`` value of a run's processes (see :mod:`actantd.runs.executor`)."""
    return instance_id + RUN_MARK_SUFFIX


def output_format(run_output: str | None, materializer: str) -> OutputFormat:
    if run_output is not None:
        return run_output  # type: ignore[return-value]
    return DEFAULT_FORMAT_BY_MATERIALIZER.get(materializer, "text")


def needs_session(run_resume: Sequence[str] | None) -> bool:
    """Whether continuing needs the session id of the last run (``{session}`` in ``runResume``)."""
    return run_resume is not None and any("{session}" in arg for arg in run_resume)


def run_argv(
    run: Sequence[str] | None,
    run_resume: Sequence[str] | None,
    *,
    backend: str,
    session: str | None,
    continued: bool = False,
) -> list[str]:
    """The one-shot argv template to expand: ``run``, or (``continued``) ``runResume`` with ``{session}`` filled.

    ``{session}`` is substituted here, before the daemon's own placeholders, so a prompt that happens to
    contain the text ``{session}`` is never touched.
    """
    if not continued:
        if not run:
            raise NotSupported(f"backend {backend!r} has no 'run' argv: it cannot run one-shot", backend=backend)
        return list(run)
    if not run_resume:
        raise NotSupported(
            f"backend {backend!r} has no 'runResume' argv: it cannot continue a conversation", backend=backend
        )
    if session is None:
        if needs_session(run_resume):
            raise InvalidParams(f"backend {backend!r} needs the session id of an earlier run to continue")
        return list(run_resume)
    if not SESSION_ID_RE.match(session):
        raise InvalidParams(f"the saved session id {session!r} is not usable in an argv", session=session)
    return [arg.replace("{session}", session) for arg in run_resume]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    name: str
    backend: str
    prompt: str
    execution: executor.Execution
    report: Report
    output_format: OutputFormat
    timeout_seconds: float
    continued: bool

    @property
    def result_text(self) -> str:
        if self.report.result is not None:
            return self.report.result
        return self.execution.stdout

    def wire(self) -> dict[str, Any]:
        """The ``agent.run`` result (camelCase, as every RPC result)."""
        ex, rep = self.execution, self.report
        return {
            "name": self.name,
            "backend": self.backend,
            "result": self.result_text,
            "exitCode": ex.exit_code,
            "signal": ex.signal,
            "timedOut": ex.timed_out,
            "timeoutSeconds": self.timeout_seconds,
            "durationMs": round(ex.duration_seconds * 1000, 1),
            "sessionId": rep.session_id,
            "continued": self.continued,
            "costUsd": rep.cost_usd,
            "tokens": rep.tokens or None,
            "isError": rep.is_error,
            "outputFormat": self.output_format,
            "parseProblem": rep.problem,
            "stdout": ex.stdout,
            "stderr": ex.stderr,
            "stdoutBytes": ex.stdout_bytes,
            "stderrBytes": ex.stderr_bytes,
            "truncated": ex.stdout_truncated or ex.stderr_truncated,
        }

    def journal_fields(self) -> dict[str, Any]:
        """The ``execution`` entry: what history shows and sums."""
        ex, rep = self.execution, self.report
        return {
            "promptPreview": self.prompt[:PROMPT_PREVIEW_CHARS],
            "startedAt": _iso(ex.started_at),
            "durationMs": round(ex.duration_seconds * 1000, 1),
            "exitCode": ex.exit_code,
            "signal": ex.signal,
            "timedOut": ex.timed_out,
            "outputBytes": ex.stdout_bytes + ex.stderr_bytes,
            "costUsd": rep.cost_usd,
            "tokens": rep.tokens or None,
            "sessionId": rep.session_id,
            "continued": self.continued,
            "backend": self.backend,
        }


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Active:
    started: float
    prompt: str


@dataclass
class RunService:
    """Runs of all instances. ``record_execution(name, fields)`` journals and publishes one entry."""

    record_execution: Callable[[str, dict[str, Any]], None]
    active: dict[str, _Active] = field(default_factory=dict)

    def busy(self, name: str) -> bool:
        return name in self.active

    def refuse_if_busy(self, name: str) -> None:
        current = self.active.get(name)
        if current is not None:
            since = time.time() - current.started
            raise AgentBusy(
                f"agent {name!r} is busy with a run (started {since:.0f}s ago: {current.prompt[:60]!r}); "
                "one run at a time per agent, try again when it is done",
                agent=name,
                startedSecondsAgo=round(since, 1),
            )

    @contextlib.contextmanager
    def hold(self, name: str, what: str) -> Iterator[None]:
        """Keep ``name`` busy while something other than a run needs its workspace to itself (the removal
        of an Ephemeral workspace): a run asked for meanwhile is refused, as during a run."""
        self.refuse_if_busy(name)
        self.active[name] = _Active(time.time(), what)
        try:
            yield
        finally:
            self.active.pop(name, None)

    async def run(
        self,
        *,
        name: str,
        backend: str,
        prompt: str,
        spec: Callable[[], Awaitable[tuple[executor.RunSpec, str]]],
        output: OutputFormat,
        timeout: float | None,
        continued: bool,
        install_hint: str | None = None,
        on_line: executor.OnLine | None = None,
        on_session: Callable[[str], Awaitable[None]] | None = None,
    ) -> RunOutcome:
        """Run once; ``spec()`` builds the launch spec (argv, env, cwd) and returns it with the run's marker.

        The busy mark is taken before ``spec()`` awaits anything, so two calls racing each other cannot both
        get through.
        """
        self.refuse_if_busy(name)
        if timeout is not None and timeout <= 0:
            raise InvalidParams("timeoutSeconds must be > 0", timeoutSeconds=timeout)
        limit = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
        self.active[name] = _Active(time.time(), prompt)
        try:
            run_spec, marker = await spec()
            execution = await executor.execute(
                run_spec, marker=marker, timeout=limit, on_line=on_line, install_hint=install_hint
            )
            report = parser_for(output)(execution.stdout)
            outcome = RunOutcome(name, backend, prompt, execution, report, output, limit, continued)
            if report.session_id and on_session is not None:
                await on_session(report.session_id)
            self.record_execution(name, outcome.journal_fields())
            return outcome
        finally:
            self.active.pop(name, None)
