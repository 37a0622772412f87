"""The cancel token: set once, first reason kept, callbacks once, waits end on cancel."""

import threading

from vm_rebalance.model.cancel import CancelReason, CancelToken


def test_cancel_keeps_the_first_reason_and_runs_callbacks_once() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("a"))
    assert not token.cancelled and token.reason is None
    assert token.wait(0) is False
    token.cancel(CancelReason.LEASE_LOST)
    token.cancel(CancelReason.INTERRUPT)
    assert token.cancelled and token.reason is CancelReason.LEASE_LOST
    assert calls == ["a"]
    token.on_cancel(lambda: calls.append("late"))  # registered after the cancel: runs at once
    assert calls == ["a", "late"]
    assert token.wait(3600) is True  # already cancelled: no wait


def test_a_cancel_from_another_thread_ends_a_wait() -> None:
    token = CancelToken()
    ready = threading.Event()

    def cancel_when_ready() -> None:
        ready.wait(60)
        token.cancel(CancelReason.SHUTDOWN)

    thread = threading.Thread(target=cancel_when_ready)
    thread.start()
    ready.set()
    assert token.wait(3600) is True  # would block an hour if the cancel did not wake it
    thread.join()
    assert token.reason is CancelReason.SHUTDOWN
