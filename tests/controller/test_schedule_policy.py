"""Pure parts of the controller: schedules, maintenance windows, a policy's spec → PlanSpec, the plan status."""

from datetime import UTC, datetime, timedelta

import pytest

from vm_rebalance.controller.policy import Automation, parse_policy
from vm_rebalance.controller.schedule import parse_duration, parse_schedule, parse_windows, window_state
from vm_rebalance.errors import ConfigError

T0 = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)  # a Monday


def test_durations() -> None:
    assert parse_duration("1h30m", field="x") == timedelta(minutes=90)
    assert parse_duration("90s", field="x") == timedelta(seconds=90)
    for bad in ("", "5", "1d", "3s", "m"):
        with pytest.raises(ConfigError, match="x"):
            parse_duration(bad, field="x")


def test_interval_plans_at_once_then_every_interval() -> None:
    s = parse_schedule({"interval": "30m"})
    assert s.next_after(None, T0) == T0
    assert s.next_after(T0, T0) == T0 + timedelta(minutes=30)
    assert s.describe() == "every 30m"
    assert parse_schedule(None).interval == timedelta(hours=1)


def test_cron_follows_its_expression_in_its_time_zone() -> None:
    s = parse_schedule({"cron": "0 2 * * *", "timeZone": "Europe/Berlin"})
    nxt = s.next_after(None, T0)
    assert nxt.astimezone(UTC) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 02:00 CET
    assert s.next_after(nxt, nxt) == nxt + timedelta(days=1)
    with pytest.raises(ConfigError, match="cron"):
        parse_schedule({"cron": "61 * * * *"})
    with pytest.raises(ConfigError, match="not both"):
        parse_schedule({"cron": "* * * * *", "interval": "1m"})
    with pytest.raises(ConfigError, match="time zone"):
        parse_schedule({"interval": "1m", "timeZone": "Mars/Olympus"})


def test_windows_open_close_and_cross_midnight() -> None:
    windows = parse_windows([{"days": ["Mon"], "start": "22:00", "end": "04:00"}])
    assert window_state(windows, T0) == (False, datetime(2026, 3, 2, 22, 0, tzinfo=UTC))
    late = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # Tuesday 01:00, still Monday's window
    assert window_state(windows, late) == (True, datetime(2026, 3, 3, 4, 0, tzinfo=UTC))
    assert window_state((), T0) == (True, None)
    with pytest.raises(ConfigError, match=r"maintenanceWindows\[0\]\.start"):
        parse_windows([{"start": "25:00", "end": "04:00"}])
    with pytest.raises(ConfigError, match="days"):
        parse_windows([{"days": ["Funday"], "start": "01:00", "end": "02:00"}])


def policy(**spec: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "generation": 1}, "spec": spec}


def test_policy_maps_to_the_services_plan_spec() -> None:
    p = parse_policy(
        policy(
            automation="Automatic",
            goal="balanced",
            weights={"cpu": 0.7, "memory": 0.3},
            basis="requests",
            headroomPercent=10,
            cooldownMinutes=5,
            maxMigrations=3,
            liveOnly=True,
            namespaces=["prod"],
            nodeSelector={"pool": "a"},
            minImprovement=1.5,
        )
    )
    assert p.automation is Automation.AUTOMATIC
    assert p.plan.goal == "balanced" and dict(p.plan.weights or {}) == {"cpu": 0.7, "memory": 0.3}
    assert p.plan.basis == "requests" and p.plan.headroom == pytest.approx(0.1)
    assert p.plan.cooldown_seconds == 300 and p.plan.max_migrations == 3 and p.plan.live_only
    assert p.plan.namespaces == ("prod",) and p.node_selector == {"pool": "a"} and p.min_improvement == 1.5
    defaults = parse_policy(policy())
    assert defaults.automation is Automation.APPROVE and defaults.plan.max_migrations == 5


def test_min_gain_maps_to_the_planners_minimum_gain() -> None:
    assert parse_policy(policy(minGain=5)).plan.min_gain == 5
    assert parse_policy(policy()).plan.min_gain is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"automation": "Sometimes"}, "automation"),
        ({"goal": "drain"}, "goal"),
        ({"goal": "cpu", "weights": {"cpu": 1}}, "weights"),
        ({"namespaces": ["Not_A_Name"]}, "namespace"),
        ({"maxMigrations": 0}, "maxMigrations"),
        ({"schedule": {"interval": "2s"}}, "schedule.interval"),
        ({"minGain": -5}, "minGain"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(spec: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_policy(policy(**spec))
