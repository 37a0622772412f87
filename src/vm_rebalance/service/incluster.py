"""The in-cluster mode's use cases: RebalancePolicy / RebalancePlan objects, the plan status as the
execution journal, approval by hash, Events, and the credentials kopf logs in with.

The controller (`vm_rebalance.controller`) and the `approve` command reach the cluster only through
here. Plans are approved by hash exactly like MCP plans (`approvals.document_hash` of the plan
document in ``status.plan``): ``spec.approvedHash`` must equal ``status.planHash``.

**The journal lives in the plan's status** (`PlanStatusJournal`, the executor's `JournalStore` port):
every save is a fenced JSON patch of ``status.journal`` that first tests
``status.execution.holder``, so only the controller that holds the execution writes it, and the
next leader resumes from it after a crash or a shutdown.
"""

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vm_rebalance.errors import ClusterError, ConfigError, RebalanceError
from vm_rebalance.kube.client import KubeClient, load_configuration
from vm_rebalance.kube.incluster import (
    GROUP,
    VERSION,
    InClusterApi,
    LeaseRecord,
    ObjectRef,
    now_rfc3339,
    parse_time,
)
from vm_rebalance.model import ClusterState, Plan, plan_from_document
from vm_rebalance.model.plan import PlanDocumentError
from vm_rebalance.service.approvals import document_hash
from vm_rebalance.service.planning import revalidate
from vm_rebalance.service.session import Target, open_client

log = logging.getLogger(__name__)

API_VERSION = f"{GROUP}/{VERSION}"
POLICY_LABEL = f"{GROUP}/policy"
"""The label every plan made for a policy carries (its value: the policy's name)."""

__all__ = [
    "API_VERSION",
    "GROUP",
    "POLICY_LABEL",
    "VERSION",
    "Approval",
    "Connection",
    "InCluster",
    "LeaseRecord",
    "ObjectRef",
    "PlanStatusJournal",
    "Resumption",
    "approve_plan",
    "connection",
    "parse_time",
    "plan_hash",
    "plan_of",
    "prepare_resume",
]


def plan_hash(document: Mapping[str, Any]) -> str:
    """The approval hash of a plan document (sha256 of its canonical JSON)."""
    return document_hash(dict(document))


def plan_of(document: Any) -> Plan:
    """The plan in a RebalancePlan's status.

    Raises:
        ConfigError: not a plan document (names the field at fault).
    """
    try:
        return plan_from_document(document)
    except (PlanDocumentError, RecursionError) as exc:
        raise ConfigError(f"the plan document in the status is not a plan: {exc}") from exc


# ------------------------------------------------------------------------------ credentials for kopf


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """How to reach the API server, for a client that logs in on its own (kopf).

    Holds a token or key paths: never print it.
    """

    server: str
    ca_path: str | None = None
    insecure: bool = False
    token: str | None = None
    scheme: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    default_namespace: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"Connection(server={self.server!r})"


def connection(target: Target) -> Connection:
    """The server and credentials of ``target`` (kubeconfig / context / in-cluster service account).

    Raises:
        ConfigError / ClusterConfigError: no usable configuration.
    """
    if target.offline:
        raise ConfigError("the controller needs a live cluster, not --from-file")
    cfg = load_configuration(target.kubeconfig, target.context)
    refresh = getattr(cfg, "refresh_api_key_hook", None)
    if callable(refresh):
        refresh(cfg)  # exec plugins and in-cluster tokens: a current token
    api_key = getattr(cfg, "api_key", None) or {}
    auth = str(api_key.get("authorization") or api_key.get("BearerToken") or "")
    prefix = (getattr(cfg, "api_key_prefix", None) or {}).get("authorization")
    scheme, token = None, None
    if auth:
        head, sep, tail = auth.partition(" ")
        scheme, token = (head, tail) if sep else (prefix or "Bearer", head)
    return Connection(
        server=str(cfg.host),
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        token=token,
        scheme=scheme,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
    )


# ------------------------------------------------------------------------------ the cluster


class InCluster:
    """An open connection for the in-cluster mode (the controller, `approve`)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.api = InClusterApi(client)

    @classmethod
    def open(cls, target: Target) -> "InCluster":
        """Connect (raises ConfigError on --from-file, ClusterConfigError)."""
        return cls(open_client(target))

    def close(self) -> None:
        """Release the connection."""
        self.client.close()

    def __enter__(self) -> "InCluster":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # custom resources
    def list_policies(self) -> list[dict[str, Any]]:
        """Every RebalancePolicy."""
        return self.api.list_policies()

    def get_policy(self, name: str) -> dict[str, Any]:
        """One RebalancePolicy."""
        return self.api.get_policy(name)

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        """Merge into a policy's status."""
        self.api.patch_policy_status(name, status)

    def list_plans(self, policy: str | None = None) -> list[dict[str, Any]]:
        """Every RebalancePlan, or those of one policy."""
        return self.api.list_plans(label_selector=f"{POLICY_LABEL}={policy}" if policy else None)

    def get_plan(self, name: str) -> dict[str, Any]:
        """One RebalancePlan (ResourceNotFoundError when absent)."""
        return self.api.get_plan(name)

    def create_plan(self, name: str, policy: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create a plan owned by ``policy`` (None when one of that name exists already)."""
        meta = policy.get("metadata") or {}
        body = {
            "apiVersion": API_VERSION,
            "kind": "RebalancePlan",
            "metadata": {
                "name": name,
                "labels": {POLICY_LABEL: str(meta.get("name"))},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "RebalancePolicy",
                        "name": str(meta.get("name")),
                        "uid": str(meta.get("uid") or ""),
                    }
                ]
                if meta.get("uid")
                else [],
            },
            "spec": dict(spec),
        }
        try:
            return self.api.create_plan(body)
        except ClusterError as exc:
            if exc.status == 409:
                return None
            raise

    def delete_plan(self, name: str) -> None:
        """Delete a plan (gone already is fine)."""
        try:
            self.api.delete_plan(name)
        except ClusterError as exc:
            if exc.status != 404:
                raise

    def patch_plan_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge into a plan's status (None removes a key)."""
        return self.api.patch_plan_status(name, status)

    def fenced_plan_status(self, name: str, holder: str, values: Mapping[str, Any]) -> None:
        """Set status fields while ``holder`` still holds the plan's execution (ClusterError 422 otherwise)."""
        self.api.fenced_plan_status(name, holder, values)

    # leases
    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None."""
        return self.api.get_lease(namespace, name)

    def create_lease(self, namespace: str, name: str, holder: str, duration_seconds: int) -> LeaseRecord:
        """Create the Lease for ``holder`` (ClusterError 409 on a race)."""
        return self.api.create_lease(namespace, name, holder, duration_seconds)

    def write_lease(
        self, namespace: str, name: str, current: LeaseRecord, *, holder: str, duration_seconds: int, acquired: bool
    ) -> LeaseRecord:
        """Renew or take the Lease, guarded by its resourceVersion (ClusterError 409 on a race)."""
        return self.api.write_lease(
            namespace, name, current, holder=holder, duration_seconds=duration_seconds, acquired=acquired
        )

    # events
    def event(
        self, regarding: ObjectRef, *, warning: bool = False, reason: str, action: str, note: str, instance: str
    ) -> None:
        """Record an Event; a failure is logged, never raised (Events are the audit trail, not the state)."""
        try:
            self.api.post_event(
                regarding,
                type_="Warning" if warning else "Normal",
                reason=reason,
                action=action,
                note=note,
                instance=instance,
            )
        except ClusterError as exc:
            log.warning("could not record event %s on %s %s: %s", reason, regarding.kind, regarding.name, exc)


def plan_ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The Event reference of a RebalancePlan or RebalancePolicy object."""
    meta = obj.get("metadata") or {}
    return ObjectRef(API_VERSION, str(obj.get("kind") or "RebalancePlan"), str(meta.get("name")), None, meta.get("uid"))


def vm_ref(namespace: str, name: str) -> ObjectRef:
    """The Event reference of a VirtualMachine."""
    return ObjectRef("kubevirt.io/v1", "VirtualMachine", name, namespace)


# ------------------------------------------------------------------------------ the journal port


class PlanStatusJournal:
    """The executor's `JournalStore` for one RebalancePlan: its journal is ``status.journal``.

    Saves are fenced on ``status.execution.holder`` (see the module docstring); the store
    keeps the journal of this one plan, whose id is the plan's name.
    """

    def __init__(self, cluster: InCluster, plan_name: str, holder: str) -> None:
        self.cluster = cluster
        self.plan_name = plan_name
        self.holder = holder

    def load(self, plan_id: str) -> dict[str, Any] | None:
        """The journal document in the plan's status, or None."""
        self._check(plan_id)
        status = self.cluster.get_plan(self.plan_name).get("status") or {}
        journal = status.get("journal")
        return dict(journal) if isinstance(journal, dict) and journal else None

    def save(self, plan_id: str, document: dict[str, Any]) -> None:
        """Write the journal into the status (fenced; one atomic API write)."""
        self._check(plan_id)
        self.cluster.fenced_plan_status(self.plan_name, self.holder, {"journal": document})

    def archive(self, plan_id: str) -> None:
        """Clear the journal (a fresh execution of the plan starts over)."""
        self._check(plan_id)
        if self.load(plan_id) is not None:
            self.cluster.fenced_plan_status(self.plan_name, self.holder, {"journal": {}})

    def plan_ids(self) -> list[str]:
        """This plan's name when it has a journal."""
        return [self.plan_name] if self.load(self.plan_name) is not None else []

    def _check(self, plan_id: str) -> None:
        if plan_id != self.plan_name:
            raise ConfigError(f"this journal store keeps plan {self.plan_name}'s journal, not {plan_id}'s")


# ------------------------------------------------------------------------------ resuming


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumption:
    """An approved plan made ready to continue: done and in-flight moves kept, the rest re-validated."""

    plan: Plan
    dropped_ids: tuple[int, ...]
    warnings: tuple[str, ...]
    done: int

    @property
    def changed(self) -> bool:
        """Whether moves no longer validate (the remainder needs a new approval)."""
        return bool(self.dropped_ids)


def prepare_resume(state: ClusterState, plan: Plan, journal: Mapping[str, Any] | None) -> Resumption:
    """Re-validate what an execution has not done yet (``service.revalidate``) against ``state``.

    Moves the journal records as succeeded or running are not re-validated (their VM may be
    migrating or on its target already): the executor finishes them from the journal.
    """
    records = [m for m in (journal or {}).get("moves") or () if isinstance(m, dict)]
    done = {int(m["id"]) for m in records if m.get("status") == "succeeded" and "id" in m}
    in_flight = {int(m["id"]) for m in records if m.get("status") == "running" and "id" in m}
    checked = revalidate(state, plan, skip_ids=done | in_flight)
    kept = tuple(m for m in plan.moves if m.id in done | in_flight)
    validated = dataclasses.replace(checked.plan, moves=tuple(sorted(kept + checked.plan.moves, key=lambda m: m.id)))
    return Resumption(plan=validated, dropped_ids=checked.dropped_ids, warnings=checked.warnings, done=len(done))


# ------------------------------------------------------------------------------ approval


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """A RebalancePlan as the approver sees it, before or after approving."""

    name: str
    phase: str
    plan_hash: str
    approved_hash: str | None
    tables: Mapping[str, str]
    summary: Mapping[str, Any]
    message: str


def _approval_of(obj: Mapping[str, Any]) -> Approval:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    tables = status.get("tables") if isinstance(status.get("tables"), dict) else {}
    summary = status.get("summary") if isinstance(status.get("summary"), dict) else {}
    return Approval(
        name=str((obj.get("metadata") or {}).get("name")),
        phase=str(status.get("phase") or ""),
        plan_hash=str(status.get("planHash") or ""),
        approved_hash=spec.get("approvedHash") or None,
        tables={str(k): str(v) for k, v in (tables or {}).items()},
        summary=dict(summary or {}),
        message=str(status.get("message") or ""),
    )


APPROVABLE = ("Proposed",)


def read_approval(cluster: InCluster, name: str) -> Approval:
    """The plan ``name`` as an approver sees it.

    Raises:
        ConfigError: no such plan (exit 2). ClusterError: the cluster cannot be read.
    """
    try:
        return _approval_of(cluster.get_plan(name))
    except ClusterError as exc:
        if exc.status == 404:
            raise ConfigError(
                f"RebalancePlan '{name}' does not exist", hint="list plans with: kubectl get rebalanceplans"
            ) from None
        raise


def approve_plan(cluster: InCluster, name: str, expected_hash: str | None = None) -> Approval:
    """Approve plan ``name``: set ``spec.approvedHash`` to its hash (the one shown, ``expected_hash``).

    Raises:
        ConfigError: no such plan, it is not waiting for approval, it has no hash yet, or its hash is
            not ``expected_hash`` (the plan changed since it was shown).
        ClusterError: the cluster cannot be read or changed (403 names the verb).
    """
    current = read_approval(cluster, name)
    if not current.plan_hash:
        raise ConfigError(f"RebalancePlan '{name}' has no plan yet (phase {current.phase or 'new'})")
    if current.phase not in APPROVABLE:
        raise ConfigError(
            f"RebalancePlan '{name}' is {current.phase}, not waiting for approval"
            + (f": {current.message}" if current.message else "")
        )
    if expected_hash is not None:
        given = expected_hash.strip().lower().removeprefix("sha256:")
        if given != current.plan_hash:
            raise ConfigError(
                f"RebalancePlan '{name}' changed: its hash is {current.plan_hash[:12]}…, not {given[:12]}…",
                hint="show it again (kubectl describe rebalanceplan) and approve what it says now",
            )
    cluster.api.patch_plan_spec(name, {"approvedHash": current.plan_hash})
    return dataclasses.replace(current, approved_hash=current.plan_hash)


def describe_errors(errors: Iterable[RebalanceError]) -> str:
    """Errors as one line each (for a status message)."""
    return "; ".join(str(e) for e in errors)


def stamp() -> str:
    """Now, as the status writes times."""
    return now_rfc3339()
