"""``actantctl agent open NAME``: the agent's interactive program in this terminal, supervised while it runs.

The daemon never owns the terminal: ``agent.launchSpec {name, mode: "open", reveal: true}`` gives the
``open`` argv (with the backend CLI's trust flags), the environment Actant adds (trust variables, backend,
template and instance env, ``ACTANT_*``) and the workspace, and this process runs the program in the user's
own terminal (same session and foreground process group, so job control and Ctrl-C behave as if the user had
typed the command), with those additions over the user's own environment. The program needs the real values
of the template's and instance's env (``reveal``); they go into its environment only, never to the output.

Order of events, so that a refused open never runs the program, even for an instant:

1. fork; the child waits on a pipe before it execs;
2. ``agent.attach`` with the child's pid (the daemon records it, watches it, and announces the transition);
   this is where an open is refused while the instance is active (its service runs, or another open or
   attach holds it): the daemon decides under the instance's lock, so two opens racing cannot both win, and
   the child exits without having run anything;
3. the child execs the program (same pid, so the attachment stays valid); an exec failure comes back on a
   close-on-exec pipe and is reported like a shell would;
4. when the program exits the instance is detached (the daemon usually noticed the exit already) and this
   command exits with the program's status: its exit code, or 128+N when a signal N ended it.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any

import click

from actantctl.client import ClientError
from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import Failure, print_json, warn
from actantd.errors import ActantError, AgentAlreadyAttached, AgentAlreadyRunning, AgentNotAttached

EXEC_FAILED = 127
REFUSED = 125


def _child(argv: list[str], cwd: str | None, env: dict[str, str], go: int, report: int) -> None:
    """In the forked child: wait for the go-ahead, then become the program. Never returns."""
    try:
        if os.read(go, 1) != b"1":
            os._exit(REFUSED)
        # Python ignores SIGPIPE (and SIGXFSZ) for itself; an ignored signal stays ignored across exec.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        if cwd:
            os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(report, f"{exc.errno or 0}:{exc.strerror or exc}".encode())
    except BaseException:
        pass
    os._exit(EXEC_FAILED)


def _best_effort(app: AppContext, method: str, params: dict[str, Any], what: str) -> bool:
    try:
        app.call(method, params)
    except AgentNotAttached:
        return False  # the daemon already saw the program exit and let it go
    except (ActantError, ClientError) as exc:
        warn(f"{what}: {exc.message}")
        return False
    return True


@click.command("open")
@click.argument("name", shell_complete=complete_agents)
@json_option
@pass_app
def open_(app: AppContext, name: str) -> None:
    """Run the agent's interactive program in this terminal, inside its workspace, attached while it runs."""
    spec = app.call("agent.launchSpec", {"name": name, "mode": "open", "reveal": True})
    argv = [str(a) for a in spec.get("argv") or []]
    if not argv:
        raise Failure(f"{name}: the daemon gave no command to open")
    if spec.get("masked"):  # the program would get placeholders instead of its secrets
        raise Failure(f"{name}: the daemon masked {', '.join(spec['masked'])}; cannot open without the values")
    env = {**os.environ, **{str(k): str(v) for k, v in (spec.get("env") or {}).items()}}
    cwd = spec.get("cwd") or None
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe()  # both close-on-exec: the program inherits neither
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        os.close(go_w)
        os.close(err_r)
        _child(argv, cwd, env, go_r, err_w)
    os.close(go_r)
    os.close(err_w)
    attached = False
    try:
        try:
            app.call("agent.attach", {"name": name, "pid": pid})
            attached = True
        except (AgentAlreadyAttached, AgentAlreadyRunning) as exc:
            os.close(go_w)
            os.waitpid(pid, 0)
            what = "open in a terminal or attached" if isinstance(exc, AgentAlreadyAttached) else "open or running"
            raise Failure(f"{name} is already {what} ({exc.message}); one process per agent") from None
        except (ActantError, ClientError) as exc:
            warn(f"running unsupervised: {exc.message}")
        # The program owns the terminal now: Ctrl-C and Ctrl-\ are for it; we wait for it.
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
        try:
            os.write(go_w, b"1")
            os.close(go_w)
            failure = os.read(err_r, 4096).decode(errors="replace")
            _, status = os.waitpid(pid, 0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        os.close(err_r)
    if attached:
        _best_effort(app, "agent.detach", {"name": name}, "could not detach")
    code = os.waitstatus_to_exitcode(status)
    signum = -code if code < 0 else None
    exit_code = 128 + signum if signum is not None else code
    if app.json:
        print_json({"name": name, "pid": pid, "exitCode": None if signum else code, "signal": signum,
                    "attached": attached})  # fmt: skip
    if failure:
        _errno, _, reason = failure.partition(":")
        hint = spec.get("installHint") if _errno == str(errno.ENOENT) else None
        raise Failure(f"cannot run {argv[0]}: {reason}" + (f" (install it: {hint})" if hint else ""),
                      exit_code=EXEC_FAILED)  # fmt: skip
    if signum is not None:
        raise Failure(f"{argv[0]} was killed by {signal.Signals(signum).name}", exit_code=exit_code)
    if code != 0:
        raise Failure(f"{argv[0]} exited with code {code}", exit_code=code)
