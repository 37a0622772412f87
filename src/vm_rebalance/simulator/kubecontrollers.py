"""kube-controller-manager's controllers for the kinds a deployment applies, on simulated time.

- **namespace**: a deleted Namespace is ``Terminating`` (``spec.finalizers: [kubernetes]`` keeps it);
  everything in it is deleted (finalizers honoured), then the namespace goes.
- **serviceaccount**: every active namespace has a ``default`` ServiceAccount.
- **deployment**: a Deployment's status follows its spec: ``observedGeneration``, replicas updated at
  once, *available* after :data:`DEPLOYMENT_START_SECONDS` of simulated time, with the ``Available`` and
  ``Progressing`` conditions ``kubectl rollout status`` reads. **No ReplicaSets and no Pods are made and
  nothing runs**: the status says what a healthy rollout would report, and its messages say so.

The cluster ticks :class:`KubeControllers` with the store lock held, like its other controllers.
"""

import contextlib
from typing import TYPE_CHECKING, Any

from .store import NotFoundError, WatchEvent

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
NAMESPACES = ("", "namespaces")
SERVICE_ACCOUNTS = ("", "serviceaccounts")
SERVICES = ("", "services")
DEPLOYMENTS = ("apps", "deployments")
#: Simulated seconds between a Deployment's change and its replicas being reported available.
DEPLOYMENT_START_SECONDS = 3.0
NOT_RUN = "the simulator runs no pods"


def default_service_account(namespace: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}


def kubernetes_service() -> Obj:
    """The ``default/kubernetes`` Service every cluster has (the API server's own cluster IP)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.1",
            "clusterIPs": ["10.96.0.1"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
        "status": {"loadBalancer": {}},
    }


def _condition(ctype: str, status: str, reason: str, message: str, now_iso: str, old: Obj) -> Obj:
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == ctype), None)
    since = now_iso
    if previous is not None and previous.get("status") == status:
        since = previous.get("lastTransitionTime", now_iso)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": now_iso,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    }


def deployment_status(deployment: Obj, available: bool, now_iso: str) -> Obj:
    """The status the deployment controller would write for a rollout in progress or done."""
    spec = deployment.get("spec") or {}
    old = deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1) or 0)
    name = deployment["metadata"]["name"]
    out: Obj = {"observedGeneration": deployment["metadata"].get("generation", 1)}
    if replicas:
        out["replicas"] = replicas
        out["updatedReplicas"] = replicas
        if available:
            out["readyReplicas"] = replicas
            out["availableReplicas"] = replicas
        else:
            out["unavailableReplicas"] = replicas
    if available:
        conditions = [
            _condition(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now_iso, old
            ),
            _condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'Deployment "{name}" has successfully progressed ({NOT_RUN}: replicas are reported available).',
                now_iso,
                old,
            ),
        ]
    else:
        conditions = [
            _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now_iso,
                old,
            ),
            _condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'Deployment "{name}" is progressing ({NOT_RUN}).',
                now_iso,
                old,
            ),
        ]
    out["conditions"] = conditions
    return out


class KubeControllers:
    """The namespace, serviceaccount and deployment controllers of one simulated cluster."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self._new_namespaces: set[str] = set()
        self._terminating: set[str] = set()
        self._deployments: dict[tuple[str, str], float | None] = {}  # -> when it becomes available (None: now)
        self.store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        key = event.key
        meta = event.obj.get("metadata") or {}
        if key == NAMESPACES:
            if meta.get("deletionTimestamp"):
                self._terminating.add(meta["name"])
            elif event.type == "ADDED":
                self._new_namespaces.add(meta["name"])
        elif key == SERVICE_ACCOUNTS and event.type == "DELETED" and meta.get("name") == "default":
            self._new_namespaces.add(meta.get("namespace") or "")
        elif key == DEPLOYMENTS:
            ident = (meta.get("namespace") or "", meta["name"])
            if event.type == "DELETED":
                self._deployments.pop(ident, None)
            elif meta.get("generation", 1) != (event.obj.get("status") or {}).get("observedGeneration"):
                self._deployments[ident] = None

    def tick(self, now: float) -> None:
        if self._new_namespaces:
            names, self._new_namespaces = sorted(self._new_namespaces), set()
            for name in names:
                self.ensure_default_service_account(name)
        if self._terminating:
            names, self._terminating = sorted(self._terminating), set()
            for name in names:
                if not self._finish_namespace(name):
                    self._terminating.add(name)
        if self._deployments:
            self._sync_deployments(now)

    # -- serviceaccount controller ---------------------------------------------------------------------------

    def ensure_default_service_account(self, namespace: str) -> None:
        ns = self.store.try_get(NAMESPACES, None, namespace, copy=False)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        if self.store.try_get(SERVICE_ACCOUNTS, namespace, "default", copy=False) is None:
            self.store.create(SERVICE_ACCOUNTS, default_service_account(namespace))

    # -- namespace controller --------------------------------------------------------------------------------

    def _finish_namespace(self, name: str) -> bool:
        """Delete what is left in a terminating namespace; True once the namespace is gone (or was)."""
        ns = self.store.try_get(NAMESPACES, None, name, copy=False)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return True
        if (ns.get("status") or {}).get("phase") != "Terminating":
            self.store.mutate(NAMESPACES, None, name, lambda o: o.setdefault("status", {}).update(phase="Terminating"))
        remaining = 0
        kinds = self.store.keys()
        for key in kinds:
            if key == NAMESPACES:
                continue
            items, _ = self.store.list(key, name, copy=False)
            for obj in items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(NotFoundError):
                    if self.store.delete(key, name, obj["metadata"]["name"])["metadata"].get("deletionTimestamp"):
                        continue
                remaining -= 1
        if remaining:
            return False

        def finalize(o: Obj) -> None:
            spec = o.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]

        with contextlib.suppress(NotFoundError):
            self.store.mutate(NAMESPACES, None, name, finalize)
        self.cluster.recorder.record("namespace-deleted", name)
        return True

    # -- deployment controller -------------------------------------------------------------------------------

    def _sync_deployments(self, now: float) -> None:
        now_iso = self.cluster.clock.iso(now)
        for ident, ready_at in sorted(self._deployments.items(), key=lambda kv: kv[0]):
            obj = self.store.try_get(DEPLOYMENTS, ident[0], ident[1], copy=False)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                self._deployments.pop(ident, None)
                continue
            paused = bool((obj.get("spec") or {}).get("paused"))
            if ready_at is None:
                status = deployment_status(obj, False, now_iso)
                if paused:
                    status = dict(obj.get("status") or {})
                    status["observedGeneration"] = obj["metadata"].get("generation", 1)
                self.store.set_fields(DEPLOYMENTS, ident[0], ident[1], {"status": status})
                if paused:
                    self._deployments.pop(ident, None)
                else:
                    self._deployments[ident] = now + DEPLOYMENT_START_SECONDS
            elif now >= ready_at:
                status = deployment_status(obj, True, now_iso)
                self.store.set_fields(DEPLOYMENTS, ident[0], ident[1], {"status": status})
                self._deployments.pop(ident, None)
