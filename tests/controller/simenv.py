"""The controller against the simulator: a cluster, the CRDs from deploy/, controller processes, helpers."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from executor.simhelpers import Obj, Sim, add_vm, cluster_objects, simulator

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CRDS = DEPLOY / "base" / "crds"
GROUP, VERSION = "vm-rebalance.io", "v1alpha1"
PLANS = (GROUP, "rebalanceplans")
POLICIES = (GROUP, "rebalancepolicies")
NAMESPACE = "vm-rebalance"


def imbalanced(*, cold: bool = False, vms: int = 6, memory: str = "8Gi") -> list[Obj]:
    """Three workers; ``vms`` live-migratable VMs on w1 (and with ``cold`` one 8 GiB RWO VM on w1 too)."""
    objs = cluster_objects(3)
    for i in range(vms):
        add_vm(objs, f"vm-{i}", "w1", memory=memory)
    if cold:
        add_vm(objs, "db", "w1", memory="8Gi", storage="rwo")
    return objs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_crds(sim: Sim) -> None:
    """Create the CRDs from deploy/base/crds and the controller's namespace (as an admin would)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(sim.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        ext = client.ApiextensionsV1Api(api)
        for path in sorted(CRDS.glob("*.yaml")):
            ext.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class ControllerProcess:
    identity: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@dataclass
class Env:
    sim: Sim
    tmp: Path
    procs: list[ControllerProcess] = field(default_factory=list)

    @property
    def store(self) -> Any:
        return self.sim.cluster.store

    def start(self, identity: str, *args: str, kubeconfig: Path | None = None) -> ControllerProcess:
        port = free_port()
        log = self.tmp / f"{identity}.log"
        cmd = [
            sys.executable,
            "-c",
            "from vm_rebalance.cli.main import run; run()",
            "--kubeconfig",
            str(kubeconfig or self.sim.kubeconfig),
            "controller",
            "--namespace",
            NAMESPACE,
            "--identity",
            identity,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--resync",
            "1",
            "--lease-duration",
            "4",
            "--renew-deadline",
            "3",
            "--retry-period",
            "0.5",
            "--poll-interval",
            "0.2",
            "--log-level",
            "debug",
            *args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
        cp = ControllerProcess(identity, port, proc, log)
        self.procs.append(cp)
        return cp

    def custom(self) -> Any:
        """The official client's CustomObjectsApi for the admin kubeconfig."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.sim.kubeconfig), client_configuration=cfg)
        return client.CustomObjectsApi(client.ApiClient(cfg))

    def policy(self, name: str, **spec: Any) -> None:
        """Create a RebalancePolicy through the API (schema defaults and validation apply)."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RebalancePolicy", "metadata": {"name": name}, "spec": spec}
        self.custom().create_cluster_custom_object(GROUP, VERSION, "rebalancepolicies", body)

    def patch_plan(self, name: str, spec: dict[str, Any]) -> None:
        """Merge ``spec`` into a plan's spec (as a user with kubectl patch)."""
        self.custom().patch_cluster_custom_object(GROUP, VERSION, "rebalanceplans", name, {"spec": spec})

    def plans(self) -> list[Obj]:
        return sorted(self.store.list(PLANS, None)[0], key=lambda p: p["metadata"]["name"])

    def plan(self, name: str) -> Obj:
        return self.store.get(PLANS, None, name)

    def phase(self, name: str) -> str | None:
        return (self.plan(name).get("status") or {}).get("phase")

    def lease_holder(self) -> str:
        lease = self.store.try_get(("coordination.k8s.io", "leases"), NAMESPACE, "vm-rebalance-leader")
        return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""

    def events(self, reason: str | None = None, name: str | None = None) -> list[Obj]:
        """Events (stored as core/v1 Events), oldest first, by reason and involved object's name."""
        items, _ = self.store.list(("", "events"), None)
        out = [
            e
            for e in items
            if (reason is None or e.get("reason") == reason)
            and (name is None or (e.get("involvedObject") or {}).get("name") == name)
        ]
        return sorted(out, key=lambda e: e.get("eventTime") or e.get("firstTimestamp") or "")


@contextlib.contextmanager
def environment(tmp_path: Path, objs: list[Obj], *, time_scale: float = 20.0) -> Iterator[Env]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with simulator(tmp_path, objs, time_scale=time_scale) as sim:
        install_crds(sim)
        env = Env(sim, tmp_path)
        try:
            yield env
        finally:
            for p in env.procs:
                p.stop(timeout=30)
