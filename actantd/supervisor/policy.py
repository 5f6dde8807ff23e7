"""Restart decisions: policy, exponential backoff and restart budget. Pure: no I/O.

Each :class:`~actantd.supervisor.process.AgentProcess` feeds every exit of its agent to its
:class:`RestartTracker` and gets a :class:`Decision` back. The clock is a parameter (the monotonic clock
is read only when none is given), which is what lets the tests drive thousands of simulated crash loops in milliseconds.

Rules:

- An exit the user asked for (a stop) is never restarted.
- ``Never`` restarts nothing; ``OnFailure`` restarts anything but exit code 0 (a signal death, and an
  unknown status of a re-adopted process, are failures); ``Always`` restarts clean exits too.
- Backoff: a run shorter than ``minUptimeSeconds`` is a failed start. Consecutive failed starts double the
  delay from ``initialDelayMs`` up to ``maxDelayMs`` (``initial * 2**(n-1)`` for the n-th in a row); a run
  that lasted at least ``minUptimeSeconds`` resets the streak, so the next delay is ``initialDelayMs``.
- Budget: at most ``maxRestarts`` restarts granted within any ``windowSeconds``; the exit that would exceed
  it gives up ("restart budget exhausted: 5 restarts in 300s") and the instance goes ``Failed``. Times are
  the moments the decisions are taken.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from actantd.supervisor.exits import describe_exit


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class RestartConfig(Protocol):
    """The fields of a template's ``restart`` block; the config schema's Struct satisfies it structurally."""

    @property
    def policy(self) -> str: ...
    @property
    def max_restarts(self) -> int: ...
    @property
    def window_seconds(self) -> float: ...
    @property
    def initial_delay_ms(self) -> float: ...
    @property
    def max_delay_ms(self) -> float: ...
    @property
    def min_uptime_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RestartSettings:
    """A plain :class:`RestartConfig` with the defaults used when a template gives no ``restart`` block."""

    policy: str = RestartPolicy.ON_FAILURE
    max_restarts: int = 5
    window_seconds: float = 300.0
    initial_delay_ms: float = 500.0
    max_delay_ms: float = 30_000.0
    min_uptime_seconds: float = 1.0


DEFAULT_POLICY = RestartSettings()
"""The template schema's defaults, for an instance whose template is gone."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``restart`` after ``delay_seconds``, or not; ``give_up`` marks the budget exhausted (→ ``Failed``)."""

    restart: bool
    delay_seconds: float
    reason: str
    give_up: bool = False


def is_failure(code: int | None, sig: int | None) -> bool:
    """Anything but a plain exit code 0, including an unknown status (we cannot prove it was clean)."""
    return not (sig is None and code == 0)


def backoff_delay(config: RestartConfig, streak: int) -> float:
    """Seconds to wait before the restart following the ``streak``-th consecutive failed start (0 = none)."""
    initial = max(0.0, float(config.initial_delay_ms)) / 1000.0
    cap = max(initial, float(config.max_delay_ms) / 1000.0)
    if streak <= 1:
        return min(initial, cap)
    # Compare exponents rather than computing 2**streak for huge streaks.
    if initial == 0.0:
        return 0.0
    doubled = initial * 2.0 ** min(streak - 1, 64)
    return min(doubled, cap)


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s"


class RestartTracker:
    """Per-instance restart memory: the streak of failed starts and the times restarts were granted.

    A user ``start`` gets a new tracker (a fresh budget, under the template's current settings)."""

    def __init__(self, config: RestartConfig) -> None:
        self.config = config
        self.streak = 0
        self._granted: deque[float] = deque()

    def _expire(self, now: float) -> None:
        window = float(self.config.window_seconds)
        while self._granted and self._granted[0] <= now - window:
            self._granted.popleft()

    def on_exit(
        self,
        *,
        code: int | None,
        signal: int | None,
        uptime: float,
        requested: bool = False,
        now: float | None = None,
    ) -> Decision:
        """Decide what follows an exit that ended a run of ``uptime`` seconds.

        ``now`` is a monotonic clock reading; tests pass their own, the daemon may omit it.
        """
        if now is None:
            now = time.monotonic()
        cfg = self.config
        what = describe_exit(code, signal)
        if requested:
            return Decision(False, 0.0, f"stopped on request ({what})")
        policy = RestartPolicy(cfg.policy)
        if policy is RestartPolicy.NEVER:
            return Decision(False, 0.0, f"{what}; restart policy is Never")
        if policy is RestartPolicy.ON_FAILURE and not is_failure(code, signal):
            return Decision(False, 0.0, f"{what} (clean exit); restart policy is OnFailure")

        quick = uptime < float(cfg.min_uptime_seconds)
        self.streak = self.streak + 1 if quick else 0
        self._expire(now)
        if len(self._granted) >= cfg.max_restarts:
            count = len(self._granted)
            return Decision(
                False,
                0.0,
                f"restart budget exhausted: {count} restarts in {_fmt_seconds(float(cfg.window_seconds))}"
                f" (last: {what})",
                give_up=True,
            )
        delay = backoff_delay(cfg, self.streak)
        self._granted.append(now)
        ran = f"after {uptime:.3g}s"
        if quick:
            ran += f", failed start #{self.streak} (under {_fmt_seconds(float(cfg.min_uptime_seconds))})"
        return Decision(True, delay, f"{what} {ran}; restarting in {_fmt_seconds(round(delay, 3))}")
