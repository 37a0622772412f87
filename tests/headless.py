"""Open a local HTML file in headless Chromium over the DevTools protocol (on a pipe, no sockets).

Why the DevTools protocol on ``--remote-debugging-pipe``: it reports every uncaught exception
(`Runtime.exceptionThrown`), every console message (`Runtime.consoleAPICalled`) and every browser
log entry (`Log.entryAdded`: CSP violations, blocked or failed loads) as structured events, lets
the test query the live DOM (`Runtime.evaluate`) and takes the screenshot — with no extra Python
package (no websocket client, no chromedriver) and no listening port. Console logging to stderr
(``--enable-logging``) would miss CSP and load errors and needs its output parsed.

Used by tests/render/test_html_chromium.py and by docs/screenshot.py.
"""

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's package installs /usr/bin/chromium), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumError(RuntimeError):
    """The browser did not answer as the protocol says (it crashed, timed out or refused a command)."""


@dataclass
class PageResult:
    """What happened while a page loaded, and what the test asked the DOM."""

    problems: list[str] = field(default_factory=list)
    """Uncaught exceptions, console errors/warnings and browser log errors/warnings, as text."""
    values: dict[str, Any] = field(default_factory=dict)
    """Results of the DOM expressions, by name."""
    screenshot: bytes | None = None


def _above(fd: int, minimum: int = 10) -> int:
    """A duplicate of ``fd`` numbered at least ``minimum``; the original is closed."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)
    os.close(fd)
    return moved


class _Pipe:
    """The DevTools protocol over Chromium's fds 3 (commands in) and 4 (messages out), NUL-separated JSON."""

    def __init__(self, executable: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends go to fds 3 and 4 by posix_spawn's dup2 actions (no shell: dash cannot
        # redirect fds above 9; no preexec_fn: not safe with threads). Moved above 9 first so that
        # the first dup2 cannot clobber the other end.
        to_chrome_r, from_chrome_w = (_above(fd) for fd in (to_chrome_r, from_chrome_w))
        self.pid = os.posix_spawn(
            executable,
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, to_chrome_r, 3),
                (os.POSIX_SPAWN_DUP2, from_chrome_w, 4),
            ],
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.exit_code: int | None = None

    def _wait(self, timeout_seconds: float) -> bool:
        """Whether the browser exited within the timeout (reaping it)."""
        deadline = time.monotonic() + timeout_seconds
        while self.exit_code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        with contextlib.suppress(ChromiumError, OSError):
            self.send("Browser.close", timeout_seconds=5)
        if not self._wait(10):
            os.kill(self.pid, signal.SIGKILL)
            self._wait(10)
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                self._wait(5)
                raise ChromiumError(f"Chromium closed the pipe (exit code {self.exit_code})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout_seconds: float = 30,
    ) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_seconds
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, *, timeout_seconds: float = 30) -> dict[str, Any]:
        """Wait for an event (one already received counts)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout_seconds
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def _problems(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params") or {}
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            found.append(f"exception: {details.get('text')} {(details.get('exception') or {}).get('description', '')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args") or [])
            found.append(f"console.{params.get('type')}: {args}")
        elif method == "Log.entryAdded":
            entry = params.get("entry") or {}
            if entry.get("level") in ("error", "warning"):
                found.append(f"log {entry.get('level')} ({entry.get('source')}): {entry.get('text')}")
    return found


def open_page(
    path: Path,
    *,
    expressions: dict[str, str] | None = None,
    screenshot: bool = False,
    width: int = 1200,
    max_height: int | None = None,
    executable: str | None = None,
) -> PageResult:
    """Load ``path`` in a fresh headless Chromium profile; report problems, DOM values and a screenshot
    (the whole page, or its top ``max_height`` pixels).

    Raises:
        ChromiumError: no Chromium, or it did not answer.
    """
    exe = executable or find_chromium()
    if exe is None:
        raise ChromiumError("no Chromium on PATH")
    with tempfile.TemporaryDirectory(prefix="vm-rebalance-chromium-") as profile:
        pipe = _Pipe(exe, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                pipe.send(domain, session=session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired")
            result = PageResult()
            for name, expression in (expressions or {}).items():
                value = pipe.send(
                    "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
                )
                if "exceptionDetails" in value:
                    raise ChromiumError(f"expression {name!r} failed: {value['exceptionDetails'].get('text')}")
                result.values[name] = (value.get("result") or {}).get("value")
            if screenshot:
                metrics = pipe.send("Page.getLayoutMetrics", session=session)
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                shot = pipe.send(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": True,
                        "clip": {
                            "x": 0,
                            "y": 0,
                            "width": width,
                            "height": min(size["height"], max_height or size["height"]),
                            "scale": 1,
                        },
                    },
                    session=session,
                )
                result.screenshot = b64decode(shot["data"])
            # Events sent while we evaluated belong to the page too.
            result.problems = _problems(pipe.events)
            return result
        finally:
            pipe.close()


if __name__ == "__main__":  # pragma: no cover - a manual check: python tests/headless.py FILE.html
    import sys

    page = open_page(Path(sys.argv[1]), expressions={"charts": "document.querySelectorAll('svg.chart').length"})
    print(page.problems, page.values)
