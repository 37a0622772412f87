"""Pytest configuration shared by all tests (factories live in factories.py, raw API objects in
rawobjects.py): fast client retries, and a fake Kubernetes API server (one per module) with a
kubeconfig pointing at it."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakeapi import FakeApi, serve, write_kubeconfig


@pytest.fixture(autouse=True)
def _fast_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the client's transient-error retries but without real backoff sleeps."""
    monkeypatch.setattr("vm_rebalance.kube.client.RETRY_DELAYS_SECONDS", (0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def _fake_server() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    with serve(api) as url:
        yield api, url


@pytest.fixture
def fake_api(_fake_server: tuple[FakeApi, str]) -> FakeApi:
    """The fake API, emptied for this test."""
    api, _ = _fake_server
    api.reset()
    return api


@pytest.fixture
def kubeconfig(_fake_server: tuple[FakeApi, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig (bearer token) for the fake API; KUBECONFIG and HOME point away from the real ones."""
    _, url = _fake_server
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)
    return write_kubeconfig(tmp_path / "kubeconfig-secret-location.yaml", url)


# -- the suite in two parts --------------------------------------------------------------------------
# The summary says how long the fast part and the end-to-end part (marker `e2e`) took, so a slow
# end-to-end test is visible at a glance; `--durations` in pyproject.toml names the slowest tests.

_PART_SECONDS: dict[str, float] = {"fast": 0.0, "e2e": 0.0}
_PART_COUNTS: dict[str, int] = {"fast": 0, "e2e": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    part = "e2e" if "e2e" in report.keywords else "fast"
    _PART_SECONDS[part] += report.duration
    if report.when == "call":
        _PART_COUNTS[part] += 1


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    parts = ", ".join(f"{part}: {_PART_COUNTS[part]} tests in {_PART_SECONDS[part]:.1f} s" for part in _PART_SECONDS)
    terminalreporter.write_line(f"suite parts — {parts}")
