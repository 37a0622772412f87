"""Pytest configuration shared by all tests (factories live in factories.py)."""

import pytest


@pytest.fixture(autouse=True)
def _fast_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the client's transient-error retries but without real backoff sleeps."""
    monkeypatch.setattr("vm_rebalance.kube.client.RETRY_DELAYS_SECONDS", (0.0, 0.0, 0.0))
