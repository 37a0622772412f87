"""The Kubernetes objects of the in-cluster mode: RebalancePolicy / RebalancePlan custom resources,
the controller's leader Lease, and Events — raw JSON in, small typed values out.

The custom resources are cluster-scoped (`vm-rebalance.io/v1alpha1`, CRDs in `deploy/base/crds/`).
A plan's status is written through the status subresource; every write that carries execution
state is *fenced*: a JSON patch whose first operation tests ``/status/execution/holder``, so a
controller that lost its lease cannot overwrite what the new leader wrote (422 instead).
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vm_rebalance.errors import ClusterError
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.resources import ApiResource

GROUP = "vm-rebalance.io"
VERSION = "v1alpha1"
POLICIES = ApiResource(GROUP, VERSION, "rebalancepolicies", "RebalancePolicy", False)
PLANS = ApiResource(GROUP, VERSION, "rebalanceplans", "RebalancePlan", False)
LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease", True)
EVENTS = ApiResource("events.k8s.io", "v1", "events", "Event", True)
KUBE_SYSTEM = ApiResource("", "v1", "namespaces", "Namespace", False)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
REPORTING_CONTROLLER = "vm-rebalance.io/controller"
EVENT_NAMESPACE_FOR_CLUSTER_OBJECTS = "default"
"""Kubernetes records Events about cluster-scoped objects in the default namespace."""


def now_rfc3339() -> str:
    """The current time as Kubernetes writes it (seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """The current time with microseconds (MicroTime: Lease renewTime, Event eventTime)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time from the API (with or without fraction), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What an Event is about."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """A coordination.k8s.io Lease as leader election reads it."""

    holder: str
    duration_seconds: int
    renew_time: datetime | None
    acquire_time: datetime | None
    transitions: int
    resource_version: str

    def expired(self, now: datetime) -> bool:
        """Whether the holder's claim has run out (or nobody holds it)."""
        if not self.holder or self.renew_time is None:
            return True
        return (now - self.renew_time).total_seconds() > self.duration_seconds


def _lease(obj: Mapping[str, Any]) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        renew_time=parse_time(spec.get("renewTime")),
        acquire_time=parse_time(spec.get("acquireTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
    )


class InClusterApi:
    """The controller's custom resources, Lease and Events over a `KubeClient`."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    # ------------------------------------------------------------------ custom resources

    def list_policies(self) -> list[dict[str, Any]]:
        """Every RebalancePolicy."""
        return self.client.list(POLICIES)

    def get_policy(self, name: str) -> dict[str, Any]:
        """One RebalancePolicy (ResourceNotFoundError when absent)."""
        return self.client.get(POLICIES, name)

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into the policy's status."""
        return (
            self.client.request(
                "PATCH",
                POLICIES.path(None, name, "status"),
                body={"status": dict(status)},
                content_type=MERGE_PATCH,
                verb="patch",
                resource=f"{POLICIES.qualified}/status",
                name=name,
            )
            or {}
        )

    def list_plans(self, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every RebalancePlan (optionally by label)."""
        return self.client.list(PLANS, label_selector=label_selector)

    def get_plan(self, name: str) -> dict[str, Any]:
        """One RebalancePlan (ResourceNotFoundError when absent)."""
        return self.client.get(PLANS, name)

    def create_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a RebalancePlan (its status is written afterwards, through the subresource)."""
        return self.client.create(PLANS, body)

    def delete_plan(self, name: str) -> None:
        """Delete a RebalancePlan."""
        self.client.delete(PLANS, name)

    def patch_plan_spec(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``spec`` into the plan's spec (the approval helper)."""
        return self.client.patch(PLANS, name, {"spec": dict(spec)})

    def patch_plan_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into the plan's status (None values remove keys)."""
        return (
            self.client.request(
                "PATCH",
                PLANS.path(None, name, "status"),
                body={"status": dict(status)},
                content_type=MERGE_PATCH,
                verb="patch",
                resource=f"{PLANS.qualified}/status",
                name=name,
            )
            or {}
        )

    def fenced_plan_status(self, name: str, holder: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Set status fields only while ``status.execution.holder`` is still ``holder``.

        Raises:
            ClusterError: 422 when another holder took the execution over (or the plan is gone).
        """
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/status/execution/holder", "value": holder}]
        ops += [{"op": "add", "path": f"/status/{key}", "value": value} for key, value in values.items()]
        return (
            self.client.request(
                "PATCH",
                PLANS.path(None, name, "status"),
                body=ops,
                content_type=JSON_PATCH,
                verb="patch",
                resource=f"{PLANS.qualified}/status",
                name=name,
            )
            or {}
        )

    # ------------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        try:
            return _lease(self.client.get(LEASES, name, namespace=namespace))
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, name: str, holder: str, duration_seconds: int) -> LeaseRecord:
        """Create the Lease held by ``holder`` (409 when someone created it first)."""
        now = now_micro()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        return _lease(self.client.create(LEASES, body, namespace=namespace))

    def write_lease(
        self,
        namespace: str,
        name: str,
        current: LeaseRecord,
        *,
        holder: str,
        duration_seconds: int,
        acquired: bool,
    ) -> LeaseRecord:
        """Renew or take the Lease, guarded by the resourceVersion just read (409 on a race).

        ``acquired`` (a new holder) sets acquireTime and counts a transition.
        """
        now = now_micro()
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now,
            "acquireTime": now if acquired else _micro(current.acquire_time) or now,
            "leaseTransitions": current.transitions + (1 if acquired and current.holder != holder else 0),
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": current.resource_version},
            "spec": spec,
        }
        return _lease(self.client.replace(LEASES, body, namespace=namespace))

    # ------------------------------------------------------------------ events

    def post_event(
        self,
        regarding: ObjectRef,
        *,
        type_: str,
        reason: str,
        action: str,
        note: str,
        instance: str,
    ) -> None:
        """Record an events.k8s.io/v1 Event about ``regarding`` (best effort is the caller's choice)."""
        namespace = regarding.namespace or EVENT_NAMESPACE_FOR_CLUSTER_OBJECTS
        ref: dict[str, Any] = {"apiVersion": regarding.api_version, "kind": regarding.kind, "name": regarding.name}
        if regarding.namespace:
            ref["namespace"] = regarding.namespace
        if regarding.uid:
            ref["uid"] = regarding.uid
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"generateName": f"{regarding.name}.", "namespace": namespace},
            "eventTime": now_micro(),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": instance[:128],
            "action": action[:128],
            "reason": reason[:128],
            "type": type_,
            "note": note[:1024],
            "regarding": ref,
        }
        self.client.create(EVENTS, body, namespace=namespace)


def _micro(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def monotonic() -> float:
    """The clock leader election measures renew deadlines with."""
    return time.monotonic()
