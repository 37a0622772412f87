"""The registry of resource types the simulated API server serves, and the discovery documents built from it.

Names, kinds, scopes, short names and subresources follow the real API groups
(kubevirt-api.md §1.1, §2.1, §3, §5, §7.1, §8.8). Pure data: no HTTP here.
"""

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (plural) of one group/version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    #: Built into kube-apiserver (strategic merge patch allowed); False for CRDs and aggregated APIs.
    builtin: bool = False
    #: Extra subresources served besides ``status`` (e.g. ``eviction`` for pods).
    subresources: tuple[str, ...] = ()
    #: Field selectors accepted besides metadata.name / metadata.namespace.
    field_selectors: tuple[str, ...] = ()
    #: Stored in the object store (False for virtual resources such as SelfSubjectAccessReview).
    stored: bool = True
    subresource_verbs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[ResourceType, ...] = (
    # core/v1
    ResourceType(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        False,
        short_names=("ns",),
        status_subresource=True,
        builtin=True,
        field_selectors=("status.phase",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ResourceType(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        False,
        short_names=("no",),
        status_subresource=True,
        builtin=True,
        field_selectors=("spec.unschedulable",),
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        builtin=True,
        subresources=("eviction",),
        field_selectors=_POD_FIELDS,
        subresource_verbs={"eviction": ("create",)},
    ),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        True,
        short_names=("pvc",),
        status_subresource=True,
        builtin=True,
    ),
    ResourceType(
        "",
        "v1",
        "events",
        "event",
        "Event",
        True,
        short_names=("ev",),
        builtin=True,
        field_selectors=_EVENT_FIELDS,
    ),
    # kubevirt.io/v1
    ResourceType(
        "kubevirt.io",
        "v1",
        "virtualmachines",
        "virtualmachine",
        "VirtualMachine",
        True,
        short_names=("vm", "vms"),
        categories=("all",),
        status_subresource=True,
    ),
    ResourceType(
        "kubevirt.io",
        "v1",
        "virtualmachineinstances",
        "virtualmachineinstance",
        "VirtualMachineInstance",
        True,
        short_names=("vmi", "vmis"),
        categories=("all",),
    ),
    ResourceType(
        "kubevirt.io",
        "v1",
        "virtualmachineinstancemigrations",
        "virtualmachineinstancemigration",
        "VirtualMachineInstanceMigration",
        True,
        short_names=("vmim", "vmims"),
        categories=("all",),
        status_subresource=True,
    ),
    ResourceType(
        "kubevirt.io",
        "v1",
        "kubevirts",
        "kubevirt",
        "KubeVirt",
        True,
        short_names=("kv", "kvs"),
        categories=("all",),
        status_subresource=True,
    ),
    # instancetype.kubevirt.io/v1beta1
    ResourceType(
        "instancetype.kubevirt.io",
        "v1beta1",
        "virtualmachineclusterinstancetypes",
        "virtualmachineclusterinstancetype",
        "VirtualMachineClusterInstancetype",
        False,
        short_names=("vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"),
    ),
    ResourceType(
        "instancetype.kubevirt.io",
        "v1beta1",
        "virtualmachineinstancetypes",
        "virtualmachineinstancetype",
        "VirtualMachineInstancetype",
        True,
        short_names=("vminstancetype", "vminstancetypes", "vmf", "vmfs"),
    ),
    ResourceType(
        "instancetype.kubevirt.io",
        "v1beta1",
        "virtualmachineclusterpreferences",
        "virtualmachineclusterpreference",
        "VirtualMachineClusterPreference",
        False,
        short_names=("vmcp", "vmcps"),
    ),
    ResourceType(
        "instancetype.kubevirt.io",
        "v1beta1",
        "virtualmachinepreferences",
        "virtualmachinepreference",
        "VirtualMachinePreference",
        True,
        short_names=("vmpref", "vmprefs"),
    ),
    # migrations.kubevirt.io/v1alpha1
    ResourceType(
        "migrations.kubevirt.io",
        "v1alpha1",
        "migrationpolicies",
        "migrationpolicy",
        "MigrationPolicy",
        False,
        categories=("all",),
        status_subresource=True,
    ),
    # cdi.kubevirt.io/v1beta1
    ResourceType(
        "cdi.kubevirt.io",
        "v1beta1",
        "datavolumes",
        "datavolume",
        "DataVolume",
        True,
        short_names=("dv", "dvs"),
        categories=("all",),
        status_subresource=True,
    ),
    # metrics.k8s.io/v1beta1 (metrics-server: get and list only, kubevirt-api.md §7.1)
    ResourceType("metrics.k8s.io", "v1beta1", "nodes", "", "NodeMetrics", False, verbs=READ_VERBS),
    ResourceType("metrics.k8s.io", "v1beta1", "pods", "", "PodMetrics", True, verbs=READ_VERBS),
    # coordination.k8s.io/v1
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, builtin=True),
    # policy/v1
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        True,
        short_names=("pdb",),
        status_subresource=True,
        builtin=True,
    ),
    # storage.k8s.io/v1 (kubernetes-mcp-server's kubevirt toolset reads storage classes)
    ResourceType(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        False,
        short_names=("sc",),
        builtin=True,
    ),
    # authorization.k8s.io/v1
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
        builtin=True,
        stored=False,
    ),
)

#: Lifecycle subresources served by virt-api's aggregated group (kubevirt-api.md §5).
VM_SUBRESOURCE_ACTIONS = ("start", "stop", "restart", "migrate")
SUBRESOURCES_GROUP = "subresources.kubevirt.io"
SUBRESOURCES_VERSION = "v1"

_BY_GVR: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KEY: dict[tuple[str, str], ResourceType] = {r.key: r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The served resource for a group/version/plural, or None."""
    return _BY_GVR.get((group, version, plural))


def by_key(key: tuple[str, str]) -> ResourceType | None:
    """The served resource for a store key ``(group, plural)``."""
    return _BY_KEY.get(key)


def group_versions() -> dict[str, list[str]]:
    """Served versions per group (core group ``""`` included), in registry order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    out.setdefault(SUBRESOURCES_GROUP, [SUBRESOURCES_VERSION])
    return out


def _resource_entry(r: ResourceType) -> Obj:
    entry: Obj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    return entry


def _sub_entry(
    name: str, namespaced: bool, kind: str, verbs: tuple[str, ...], group: str = "", version: str = ""
) -> Obj:
    entry: Obj = {
        "name": name,
        "singularName": "",
        "namespaced": namespaced,
        "kind": kind,
        "verbs": list(verbs),
    }
    if group:
        entry["group"] = group
        entry["version"] = version
    return entry


def api_resource_list(group: str, version: str) -> Obj | None:
    """The legacy discovery ``APIResourceList`` of one group/version, or None when not served."""
    gv = f"{group}/{version}" if group else version
    resources: list[Obj] = []
    if group == SUBRESOURCES_GROUP:
        if version != SUBRESOURCES_VERSION:
            return None
        for action in VM_SUBRESOURCE_ACTIONS:
            resources.append(_sub_entry(f"virtualmachines/{action}", True, "", ("update",)))
    else:
        served = [r for r in RESOURCES if r.group == group and r.version == version]
        if not served:
            return None
        for r in served:
            resources.append(_resource_entry(r))
            if r.status_subresource:
                resources.append(_sub_entry(f"{r.plural}/status", r.namespaced, r.kind, ("get", "patch", "update")))
            for sub in r.subresources:
                if sub == "eviction":
                    resources.append(
                        _sub_entry("pods/eviction", True, "Eviction", ("create",), group="policy", version="v1")
                    )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def api_group(group: str) -> Obj | None:
    """The ``APIGroup`` document of a named group."""
    versions = group_versions().get(group)
    if not group or not versions:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def api_group_list() -> Obj:
    """The ``/apis`` document."""
    groups = [api_group(g) for g in group_versions() if g]
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{k: v for k, v in g.items() if k not in ("kind", "apiVersion")} for g in groups if g],
    }


def api_versions() -> Obj:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }
