"""Restart policy maths: which exits restart, exponential backoff, the restart budget (pure, simulated clock)."""

from __future__ import annotations

import signal
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from actantd.supervisor.policy import DEFAULT_POLICY, RestartSettings, RestartTracker, backoff_delay

CFG = RestartSettings(
    policy="OnFailure",
    max_restarts=5,
    window_seconds=300,
    initial_delay_ms=500,
    max_delay_ms=4000,
    min_uptime_seconds=2.0,
)


def test_requested_stop_never_restarts() -> None:
    tracker = RestartTracker(replace(CFG, policy="Always"))
    d = tracker.on_exit(code=None, signal=signal.SIGTERM, uptime=100, requested=True, now=0)
    assert (d.restart, d.give_up) == (False, False)
    assert d.reason.startswith("stopped on request")


def test_never_policy() -> None:
    d = RestartTracker(replace(CFG, policy="Never")).on_exit(code=1, signal=None, uptime=0.1, now=0)
    assert (d.restart, d.give_up) == (False, False)
    assert "Never" in d.reason


def test_on_failure_distinguishes_clean_exit() -> None:
    tracker = RestartTracker(CFG)
    clean = tracker.on_exit(code=0, signal=None, uptime=50, now=0)
    assert (clean.restart, clean.give_up) == (False, False)
    assert "clean exit" in clean.reason
    assert tracker.on_exit(code=2, signal=None, uptime=50, now=1).restart
    killed = tracker.on_exit(code=None, signal=signal.SIGKILL, uptime=50, now=2)
    assert killed.restart and "killed by SIGKILL" in killed.reason
    unknown = tracker.on_exit(code=None, signal=None, uptime=50, now=3)  # re-adopted: status not ours
    assert unknown.restart


def test_always_restarts_clean_exits() -> None:
    d = RestartTracker(replace(CFG, policy="Always")).on_exit(code=0, signal=None, uptime=50, now=0)
    assert d.restart and d.delay_seconds == 0.5


def test_backoff_doubles_on_quick_failures_and_caps() -> None:
    tracker = RestartTracker(replace(CFG, max_restarts=100))
    delays = [tracker.on_exit(code=1, signal=None, uptime=0.1, now=i * 10).delay_seconds for i in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert tracker.streak == 7


def test_a_long_run_resets_the_backoff() -> None:
    tracker = RestartTracker(replace(CFG, max_restarts=100))
    for i in range(4):
        tracker.on_exit(code=1, signal=None, uptime=0.1, now=i)
    d = tracker.on_exit(code=1, signal=None, uptime=2.0, now=10)  # ran minUptime: a real run, not a failed start
    assert d.delay_seconds == 0.5
    assert tracker.streak == 0
    assert tracker.on_exit(code=1, signal=None, uptime=0.1, now=11).delay_seconds == 0.5
    assert tracker.on_exit(code=1, signal=None, uptime=0.1, now=12).delay_seconds == 1.0


def test_budget_exhausted_gives_up_with_reason() -> None:
    tracker = RestartTracker(CFG)
    for i in range(5):
        assert tracker.on_exit(code=1, signal=None, uptime=60, now=i * 10).restart
    d = tracker.on_exit(code=1, signal=None, uptime=60, now=50)
    assert (d.restart, d.give_up) == (False, True)
    assert d.reason.startswith("restart budget exhausted: 5 restarts in 300s")
    # Once the first restart leaves the window, one more is allowed.
    assert tracker.on_exit(code=1, signal=None, uptime=60, now=300).restart


def test_zero_budget_gives_up_at_once() -> None:
    d = RestartTracker(replace(CFG, max_restarts=0)).on_exit(code=1, signal=None, uptime=60, now=0)
    assert d.give_up and not d.restart


def test_zero_initial_delay_and_defaults() -> None:
    zero = replace(CFG, initial_delay_ms=0, max_delay_ms=0)
    assert [backoff_delay(zero, n) for n in range(5)] == [0.0] * 5
    assert backoff_delay(CFG, 10_000) == 4.0
    assert DEFAULT_POLICY.policy == "OnFailure"
    d = RestartTracker(DEFAULT_POLICY).on_exit(code=1, signal=None, uptime=0.0)  # real monotonic clock
    assert d.restart and d.delay_seconds == DEFAULT_POLICY.initial_delay_ms / 1000


exits_st = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=120, allow_nan=False),  # uptime of the run that ended
        st.sampled_from([0, 1, 2, None]),  # exit code (None: killed)
    ),
    min_size=1,
    max_size=60,
)
configs_st = st.builds(
    RestartSettings,
    policy=st.sampled_from(["Always", "OnFailure"]),
    max_restarts=st.integers(min_value=0, max_value=10),
    window_seconds=st.floats(min_value=1, max_value=600, allow_nan=False),
    initial_delay_ms=st.integers(min_value=0, max_value=5000),
    max_delay_ms=st.integers(min_value=5000, max_value=60_000),
    min_uptime_seconds=st.floats(min_value=0, max_value=30, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(config=configs_st, runs=exits_st)
def test_property_backoff_monotone_capped_and_budget_respected(
    config: RestartSettings, runs: list[tuple[float, int | None]]
) -> None:
    tracker = RestartTracker(config)
    now = 0.0
    granted: list[float] = []
    loop_delays: list[float] = []  # delays within the current streak of failed starts
    for uptime, code in runs:
        now += uptime
        sig = signal.SIGKILL if code is None else None
        d = tracker.on_exit(code=code, signal=sig, uptime=uptime, now=now)
        quick = uptime < config.min_uptime_seconds
        if not quick:
            loop_delays = []
        if d.restart:
            assert not d.give_up
            assert 0 <= d.delay_seconds <= config.max_delay_ms / 1000
            if quick:
                # During a crash loop the delays never shrink.
                assert not loop_delays or d.delay_seconds >= loop_delays[-1]
                loop_delays.append(d.delay_seconds)
            granted.append(now)
            now += d.delay_seconds
        # Never more than maxRestarts restarts within any window.
        for start in granted:
            inside = [t for t in granted if start <= t < start + config.window_seconds]
            assert len(inside) <= config.max_restarts
