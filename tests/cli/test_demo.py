"""What a new user sees: `vm-rebalance demo` and `simulator serve` end cleanly, as real processes.

No traceback and no "graceful shutdown exceeded" on stderr, whatever watches are open when the
simulator stops (Ctrl-C or SIGTERM).
"""

import base64
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CRASH_SIGNS = ("Traceback", "graceful shutdown", "CancelledError", "internal error", "Exception")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "VM_REBALANCE_"))}
    env["HOME"] = str(tmp_path)
    env["COLUMNS"] = "160"
    return env


def test_demo_ends_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vm_rebalance", "demo", "--yes", "--time-scale", "40"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for sign in CRASH_SIGNS:
        assert sign not in result.stderr, result.stderr[-3000:]
    assert "Rebalancing Complete" in result.stdout
    assert "Next: point vm-rebalance at your cluster" in result.stdout


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_simulator_serve_stops_cleanly_with_open_watches(tmp_path: Path, how: signal.Signals) -> None:
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vm_rebalance", "simulator", "serve", "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        # Ctrl-C as in a terminal, even when the test run was started with SIGINT ignored (nohup, &).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert kubeconfig.exists(), proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)  # the file is written before the server announces itself
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"]["token"]
        ca = tmp_path / "ca.pem"
        ca.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
        client = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(ca)),
        )
        # Two long watches held open while the server is told to stop.
        streams = [
            client.stream("GET", "/api/v1/pods", params={"watch": "1", "timeoutSeconds": "600"}),
            client.stream("GET", "/apis/kubevirt.io/v1/virtualmachineinstances", params={"watch": "1"}),
        ]
        responses = [s.__enter__() for s in streams]
        assert all(r.status_code == 200 for r in responses)
        ended: list[bool] = []

        def read(response: httpx.Response) -> None:
            for _ in response.iter_bytes():
                pass
            ended.append(True)  # the server ended the stream: reading it finished instead of hanging

        readers = [threading.Thread(target=read, args=(r,), daemon=True) for r in responses]
        for reader in readers:
            reader.start()
        time.sleep(0.5)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
        assert ended == [True, True]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    for sign in CRASH_SIGNS:
        assert sign not in err, err
    assert "Simulator stopped." in err
