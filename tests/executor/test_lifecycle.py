"""start / stop / restart with verification, 'already in desired state', batches."""

from executor.fakes import FakeClock, FakeKubeVirt
from vm_rebalance.executor.lifecycle import Action, LifecycleStatus, run_lifecycle


def run(api: FakeKubeVirt, action: Action, names: list[str], **kw):
    clock = FakeClock()
    phases: list[tuple[str, str, str]] = []
    results = run_lifecycle(
        api,
        action,
        [("default", n) for n in names],
        clock=clock,
        sleep=clock.sleep,
        poll_interval_seconds=1.0,
        report=lambda *a: phases.append(a),
        **kw,
    )
    return results, phases


def test_start_of_a_running_vm_is_already_running() -> None:
    api = FakeKubeVirt()
    api.add_vm("a", "w1")
    (res,), _ = run(api, Action.START, ["a"])
    assert res.status is LifecycleStatus.ALREADY and res.ok and "already running" in res.message
    assert ("start", "a") not in api.calls


def test_stop_then_start_verified() -> None:
    api = FakeKubeVirt(lifecycle_polls=2)
    api.add_vm("a", "w1")
    (res,), _ = run(api, Action.STOP, ["a"])
    assert res.status is LifecycleStatus.DONE and res.printable_status == "Stopped" and res.run_strategy == "Halted"
    assert ("default", "a") not in api.vmis
    (res,), _ = run(api, Action.STOP, ["a"])
    assert res.status is LifecycleStatus.ALREADY
    (res,), _ = run(api, Action.START, ["a"])
    assert res.status is LifecycleStatus.DONE and res.printable_status == "Running"


def test_restart_stops_verifies_starts_verifies() -> None:
    api = FakeKubeVirt(lifecycle_polls=1)
    api.add_vm("a", "w1")
    (res,), phases = run(api, Action.RESTART, ["a"])
    assert res.status is LifecycleStatus.DONE and res.message == "restarted"
    assert [c for c in api.calls if c[0] != "get_vm"] == [("stop", "a"), ("start", "a")]
    assert [p[1] for p in phases] == ["stop", "start"]


def test_restart_whose_start_fails_says_the_vm_is_left_stopped() -> None:
    api = FakeKubeVirt()
    api.add_vm("a", "w1")
    api.start_refused.add("a")
    (res,), _ = run(api, Action.RESTART, ["a"])
    assert res.status is LifecycleStatus.FAILED and "left STOPPED" in res.message


def test_missing_vm_and_batch() -> None:
    api = FakeKubeVirt(lifecycle_polls=2)
    for n in ("a", "b", "c"):
        api.add_vm(n, "w1")
    results, _ = run(api, Action.STOP, ["a", "ghost", "b", "c"])
    assert [r.name for r in results] == ["a", "ghost", "b", "c"]
    assert [r.status for r in results] == [
        LifecycleStatus.DONE,
        LifecycleStatus.NOT_FOUND,
        LifecycleStatus.DONE,
        LifecycleStatus.DONE,
    ]
    assert "does not exist" in results[1].message
    # all stops were issued before any was waited for
    stops = [i for i, c in enumerate(api.calls) if c[0] == "stop"]
    assert stops == sorted(stops) and len(stops) == 3


def test_timeout() -> None:
    api = FakeKubeVirt(lifecycle_polls=10_000)
    api.add_vm("a", "w1")
    (res,), _ = run(api, Action.STOP, ["a"], timeout_seconds=5)
    assert res.status is LifecycleStatus.FAILED and "did not stop within 5s" in res.message
