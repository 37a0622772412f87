"""No credential ever leaves the process: a secret planted in every place a kubeconfig can hold one
(the token, user-info in the server URL, the client key, an exec plugin's env and output, the
auth-provider config) appears in no output, log, journal, snapshot or plan, with and without
--debug; a failing credential plugin is reported as such (exit 3), not as a 401.
"""

import base64
import json
import logging
import string
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vm_rebalance.cli.main import run
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PLACES = (
    "token",
    "userinfo",
    "userinfo-unreachable",
    "client-key",
    "exec-env-failing",
    "exec-env-working",
    "exec-output-token",
    "exec-output-garbage",
    "auth-provider",
)
WORKING = {"userinfo", "exec-env-working"}
"""Places where the kubeconfig still authenticates: the whole tool runs (plans, snapshots, a move's journal)."""

PLUGIN = """import json, os, sys
secret = os.environ["PLANTED"]
mode = sys.argv[1]
print(f"exec failed, token={secret}", file=sys.stderr)
if mode == "fail":
    sys.exit(7)
if mode == "garbage":
    print(f"not json {secret}")
    sys.exit(0)
token = secret if mode == "output" else os.environ["REAL_TOKEN"]
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimCluster.from_scenario("small", time_scale=500)) as server:
        yield server


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig_with(server: SimulatorServer, secret: str, place: str, where: Path) -> dict[str, Any]:
    """The simulator's kubeconfig with ``secret`` planted at ``place`` (and the files it needs in ``where``)."""
    doc = server.kubeconfig()
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    real = server.token_for("admin")
    host = cluster["server"].removeprefix("https://")
    plugin = where / "plugin.py"
    plugin.write_text(PLUGIN)

    def exec_user(mode: str) -> dict[str, Any]:
        return {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(plugin), mode],
                "env": [{"name": "PLANTED", "value": secret}, {"name": "REAL_TOKEN", "value": real}],
                "interactiveMode": "Never",
            }
        }

    match place:
        case "token":
            user["token"] = secret
        case "userinfo":
            cluster["server"] = f"https://admin:{secret}@{host}"
        case "userinfo-unreachable":
            cluster["server"] = f"https://admin:{secret}@127.0.0.1:1"
        case "client-key":
            del user["token"]
            user["client-certificate-data"] = _b64(
                f"-----BEGIN CERTIFICATE-----\n{secret}\n-----END CERTIFICATE-----\n"
            )
            user["client-key-data"] = _b64(f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n")
        case "exec-env-failing":
            doc["users"][0]["user"] = exec_user("fail")
        case "exec-env-working":
            doc["users"][0]["user"] = exec_user("ok")
        case "exec-output-token":
            doc["users"][0]["user"] = exec_user("output")
        case "exec-output-garbage":
            doc["users"][0]["user"] = exec_user("garbage")
        case "auth-provider":
            claims = _b64(json.dumps({"exp": 4102444800, "sub": "me"})).rstrip("=")
            id_token = f"{_b64('{}').rstrip('=')}.{claims}.{secret}"
            doc["users"][0]["user"] = {
                "auth-provider": {
                    "name": "oidc",
                    "config": {
                        "client-id": "vm-rebalance",
                        "client-secret": secret,
                        "id-token": id_token,
                        "refresh-token": secret,
                        "idp-issuer-url": "https://127.0.0.1:1",
                    },
                }
            }
    return doc


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        run(list(args))
    return int(info.value.code or 0)


def mcp_inventory(kubeconfig: Path) -> str:
    from mcp.client import Client

    from vm_rebalance import service
    from vm_rebalance.mcp_server.server import create_server

    async def call() -> str:
        async with Client(create_server(service.Target(kubeconfig=str(kubeconfig)))) as c:
            result = await c.call_tool("cluster_inventory", {"max_vms": 3})
        blocks = "\n".join(getattr(b, "text", "") for b in result.content)
        return blocks + json.dumps(result.structured_content)

    return anyio.run(call)


def files_text(directory: Path, skip: set[Path]) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(directory.rglob("*")) if p.is_file() and p not in skip
    )


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("place", PLACES)
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(secret=st.text(alphabet=string.ascii_letters + string.digits, min_size=16, max_size=40).map(lambda s: "Zq9" + s))
def test_a_planted_secret_appears_nowhere(
    cluster: SimulatorServer,
    secret: str,
    place: str,
    debug: bool,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    where = Path(tempfile.mkdtemp(prefix="creds-"))
    state = where / "state"
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(state))
    monkeypatch.setenv("HOME", str(where / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kubeconfig = where / "kubeconfig-at-a-secret-path.yaml"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_with(cluster, secret, place, where)))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    base = ["--kubeconfig", str(kubeconfig)] + (["--debug"] if debug else [])

    codes = [cli(*base, "inventory"), cli(*base, "status")]
    if place in WORKING:
        plan, snapshot = where / "plan.json", where / "snapshot.json"
        codes += [
            cli(*base, "plan", "--goal", "balanced", "--save", str(plan)),
            cli(*base, "snapshot", "-o", str(snapshot)),
            cli(*base, "apply", str(plan), "--dry-run"),
        ]
        moves = json.loads(plan.read_text())["moves"]
        if moves:
            m = moves[0]
            codes.append(cli(*base, "move", f"{m['namespace']}/{m['vm']}", "--to", m["to"], "--yes"))
        assert codes[:2] == [0, 0] and codes[2:5] == [0, 0, 0], (place, codes)
    else:
        assert all(code == 3 for code in codes), (place, codes)
    mcp_text = mcp_inventory(kubeconfig)

    out = capfd.readouterr()
    seen = {
        "stdout": out.out,
        "stderr": out.err,
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "mcp": mcp_text,
        "files": files_text(where, skip={kubeconfig, where / "plugin.py"}),
    }
    real_token = cluster.token_for("admin")
    for channel, text in seen.items():
        assert secret not in text, (place, debug, channel)
        assert real_token not in text, (place, debug, channel)
        assert "kubeconfig-at-a-secret-path" not in text, (place, debug, channel)
    if place.startswith("exec-env-failing"):
        assert "credential plugin (exec) failed" in out.err


def test_a_failing_credential_plugin_is_reported_as_such(cluster: SimulatorServer, tmp_path: Path, capsys) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_with(cluster, "Zq9notprinted", "exec-env-failing", tmp_path)))
    assert cli("--kubeconfig", str(kubeconfig), "inventory") == 3
    err = capsys.readouterr().err
    assert "credential plugin (exec) failed" in err and "401" not in err and "Zq9notprinted" not in err


def test_a_server_url_is_printed_without_user_info(cluster: SimulatorServer, tmp_path: Path, capsys) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_with(cluster, "S3cretPassw0rd", "userinfo-unreachable", tmp_path)))
    assert cli("--kubeconfig", str(kubeconfig), "inventory") == 3
    err = capsys.readouterr().err
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in err
    assert "S3cret" not in err and "admin" not in err
