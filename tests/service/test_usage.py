"""The usage options every front-end shares: window, percentile, source; what a snapshot can answer."""

import json
from pathlib import Path

import pytest

from fakeapi import FakeApi
from rawobjects import as_list, small_cluster
from vm_rebalance import service
from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.sustained import sustained_document
from vm_rebalance.model import GIB, Resources
from vm_rebalance.model.signals import Observation
from vm_rebalance.model.usage import UsageSample
from vm_rebalance.service.usage import UsageSpec, check_percentile, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), ("90s", 90)]
)
def test_windows(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "2x", "-1h", "10s", "100d", "1 h"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ConfigError, match="--window"):
        parse_window(text)


@pytest.mark.parametrize("value", [0, -5, 100.5, float("nan"), float("inf")])
def test_bad_percentiles(value: float) -> None:
    with pytest.raises(ConfigError, match="--percentile"):
        check_percentile(value)


def test_spec_checks_everything_before_the_cluster_is_read() -> None:
    assert UsageSpec(window="6h", percentile=95).options().window_seconds == 6 * 3600
    with pytest.raises(ConfigError, match="--usage must be one of"):
        UsageSpec(source="psychic").options()
    with pytest.raises(ConfigError, match="http:// or https://"):
        UsageSpec(prometheus_url="prometheus:9090").options()


def _snapshot(tmp_path: Path, *, window: float | None) -> Path:
    sample = UsageSample(
        nodes={"w1": Resources(9000, 30 * GIB), "w2": Resources(2000, 8 * GIB), "w3": Resources(500, 2 * GIB)},
        source="Prometheus",
        observation=Observation(source="Prometheus", window_seconds=window),
    )
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list([*small_cluster(), sustained_document(sample)])), encoding="utf-8")
    return path


def test_a_snapshot_answers_with_what_it_kept_and_says_when_that_is_not_what_was_asked(tmp_path: Path) -> None:
    path = str(_snapshot(tmp_path, window=3600))
    kept = service.read_state(service.Target(from_file=path, usage=UsageSpec()))
    assert kept.observation is not None and kept.observation.statistic == "mean over 1h"
    assert not any("snapshot holds" in n for n in kept.notes)
    other = service.read_state(service.Target(from_file=path, usage=UsageSpec(window="6h")))
    assert any("the snapshot holds usage as mean over 1h (Prometheus), not mean over 6h" in n for n in other.notes)
    none = service.read_state(service.Target(from_file=path, usage=UsageSpec(source="none")))
    assert not none.metrics_available and none.observation is None
    with pytest.raises(ConfigError, match="reads a live cluster"):
        service.read_state(service.Target(from_file=path, usage=UsageSpec(source="stats")))


def test_a_plan_made_offline_says_which_window_it_planned_on(tmp_path: Path) -> None:
    path = str(_snapshot(tmp_path, window=3600))
    state = service.read_state(service.Target(from_file=path, usage=UsageSpec()))
    view = service.plan(state, service.PlanSpec(goal="cpu"))
    assert view.plan.observation.startswith("Prometheus: mean over 1h")
    assert view.to_document()["observation"] == view.plan.observation


def test_a_window_without_prometheus_is_said_not_ignored(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    target = service.Target(kubeconfig=str(kubeconfig), usage=UsageSpec(window="6h"))
    state = service.read_state(target)
    assert state.observation is not None and state.observation.source == "metrics.k8s.io"
    warning = "mean over 6h needs Prometheus: the usage is one instant reading of metrics.k8s.io"
    assert warning in state.usage_warnings
    assert warning in service.plan(state, service.PlanSpec(goal="cpu")).plan.warnings
