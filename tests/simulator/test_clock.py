"""Simulated time."""

import pytest

from vm_rebalance.simulator.clock import SimClock


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = SimClock(manual=True)
    assert clock.now() == 0.0
    assert clock.now_iso() == "2026-08-01T10:00:00Z"
    clock.advance(90.5)
    assert clock.now() == 90.5
    assert clock.now_iso() == "2026-08-01T10:01:30Z"
    assert clock.sim_seconds_of("2026-08-01T10:01:30Z") == 90.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_scaled_clock_runs_faster_than_the_wall() -> None:
    clock = SimClock(time_scale=1000)
    first = clock.now()
    later = clock.now()
    assert later >= first
    assert clock.wall_seconds(60) == 0.06
    with pytest.raises(ValueError):
        SimClock(time_scale=0)
