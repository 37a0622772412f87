"""The registry of resource types the simulated API server serves, and the discovery documents built from it.

Names, kinds, scopes, short names and subresources follow the real API groups
(kubevirt-api.md §1.1, §2.1, §3, §5, §7.1, §8.8). Pure data: no HTTP here.
"""

import threading
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
    #: The store key when the objects live under another resource (events.k8s.io Events are core Events).
    storage: tuple[str, str] | None = None
    #: Name of the CustomResourceDefinition that registered this type ("" for the simulator's own types).
    crd: str = ""
    #: The version's structural schema (``openAPIV3Schema``) of a CRD-registered type.
    schema: Any = field(default=None, compare=False, hash=False)
    #: The version's ``additionalPrinterColumns`` of a CRD-registered type.
    printer_columns: tuple[Any, ...] = field(default=(), compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.storage or (self.group, self.plural)

    @property
    def api_key(self) -> tuple[str, str]:
        """(group, plural) as the API names it (differs from :attr:`key` for events.k8s.io)."""
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
    ResourceType(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        True,
        short_names=("sa",),
        builtin=True,
        subresources=("token",),
        subresource_verbs={"token": ("create",)},
    ),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, short_names=("cm",), builtin=True),
    ResourceType("", "v1", "secrets", "secret", "Secret", True, builtin=True),
    ResourceType(
        "",
        "v1",
        "services",
        "service",
        "Service",
        True,
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        builtin=True,
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    # apps/v1: Deployments are stored, defaulted, validated and given a status (no ReplicaSets, no pods)
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        builtin=True,
    ),
    # rbac.authorization.k8s.io/v1: the cluster's own authorization when the RBAC mode is on (module rbac)
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False, builtin=True),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        False,
        builtin=True,
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, builtin=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True, builtin=True),
    # events.k8s.io/v1: the same objects as core/v1 Events, converted on the way in and out
    ResourceType(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        True,
        short_names=("ev",),
        builtin=True,
        storage=("", "events"),
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
    # apiextensions.k8s.io/v1: CustomResourceDefinitions register new served types at once
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
        builtin=True,
    ),
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
    # authorization.k8s.io/v1 and authentication.k8s.io/v1: reviews answered, never stored
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
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        False,
        verbs=("create",),
        builtin=True,
        stored=False,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        False,
        verbs=("create",),
        builtin=True,
        stored=False,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        False,
        verbs=("create",),
        builtin=True,
        stored=False,
    ),
)

#: The virtual review kinds (POST only, answered from the authenticator and authorizer).
REVIEWS = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)

#: Lifecycle subresources served by virt-api's aggregated group (kubevirt-api.md §5).
VM_SUBRESOURCE_ACTIONS = ("start", "stop", "restart", "migrate")
SUBRESOURCES_GROUP = "subresources.kubevirt.io"
SUBRESOURCES_VERSION = "v1"


class Registry:
    """The served resource types: the simulator's own plus those CustomResourceDefinitions registered.

    Reads take an immutable snapshot, so the API layer never sees a half-made change; ``generation``
    grows with every change (discovery and OpenAPI caches key on it).
    """

    def __init__(self, base: tuple[ResourceType, ...] = RESOURCES) -> None:
        self._lock = threading.Lock()
        self._base = base
        self._extra: dict[str, tuple[ResourceType, ...]] = {}  # CRD name -> its served versions
        self.generation = 0
        self._types: tuple[ResourceType, ...] = base
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_key: dict[tuple[str, str], ResourceType] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        types = list(self._base)
        for name in sorted(self._extra):
            types.extend(self._extra[name])
        by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        by_key: dict[tuple[str, str], ResourceType] = {}
        for r in types:
            by_gvr.setdefault((r.group, r.version, r.plural), r)
            by_key.setdefault(r.key, r)
        self._types, self._by_gvr, self._by_key = tuple(types), by_gvr, by_key
        self.generation += 1

    # -- changes -------------------------------------------------------------------------------------------

    def register(self, crd_name: str, types: list[ResourceType]) -> list[ResourceType]:
        """Serve ``types`` for CRD ``crd_name`` (replacing what it served before); returns those accepted.

        A group/version/plural the simulator already serves itself (e.g. KubeVirt's kinds when someone
        applies KubeVirt's own CRD manifests) stays with the simulator's implementation.
        """
        with self._lock:
            own = {(r.group, r.version, r.plural) for r in self._base}
            for other, served in self._extra.items():
                if other != crd_name:
                    own.update((r.group, r.version, r.plural) for r in served)
            accepted = tuple(r for r in types if (r.group, r.version, r.plural) not in own)
            if self._extra.get(crd_name) == accepted:
                return list(accepted)
            if accepted:
                self._extra[crd_name] = accepted
            else:
                self._extra.pop(crd_name, None)
            self._rebuild()
            return list(accepted)

    def unregister(self, crd_name: str) -> list[ResourceType]:
        """Stop serving what CRD ``crd_name`` registered; returns those types."""
        with self._lock:
            gone = self._extra.pop(crd_name, ())
            if gone:
                self._rebuild()
            return list(gone)

    # -- reads ---------------------------------------------------------------------------------------------

    def types(self) -> tuple[ResourceType, ...]:
        return self._types

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The served resource for a group/version/plural, or None."""
        return self._by_gvr.get((group, version, plural))

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        """The served resource for a store key ``(group, plural)``."""
        return self._by_key.get(key)

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group (core group ``""`` included), in registry order."""
        out: dict[str, list[str]] = {}
        for r in self._types:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        out.setdefault(SUBRESOURCES_GROUP, [SUBRESOURCES_VERSION])
        return out

    def api_resource_list(self, group: str, version: str) -> Obj | None:
        """The legacy discovery ``APIResourceList`` of one group/version, or None when not served."""
        gv = f"{group}/{version}" if group else version
        resources: list[Obj] = []
        if group == SUBRESOURCES_GROUP:
            if version != SUBRESOURCES_VERSION:
                return None
            for action in VM_SUBRESOURCE_ACTIONS:
                resources.append(_sub_entry(f"virtualmachines/{action}", True, "", ("update",)))
        else:
            served = [r for r in self._types if r.group == group and r.version == version]
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
                    elif sub == "token":
                        resources.append(
                            _sub_entry(
                                "serviceaccounts/token",
                                True,
                                "TokenRequest",
                                ("create",),
                                group="authentication.k8s.io",
                                version="v1",
                            )
                        )
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def api_group(self, group: str) -> Obj | None:
        """The ``APIGroup`` document of a named group."""
        versions = self.group_versions().get(group)
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

    def api_group_list(self) -> Obj:
        """The ``/apis`` document."""
        groups = [self.api_group(g) for g in self.group_versions() if g]
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [{k: v for k, v in g.items() if k not in ("kind", "apiVersion")} for g in groups if g],
        }


#: The simulator's own types (no CRDs); module-level helpers read it.
STATIC = Registry()


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The simulator's own served resource for a group/version/plural, or None."""
    return STATIC.lookup(group, version, plural)


def by_key(key: tuple[str, str]) -> ResourceType | None:
    """The simulator's own served resource for a store key ``(group, plural)``."""
    return STATIC.by_key(key)


def group_versions() -> dict[str, list[str]]:
    """Served versions per group of the simulator's own types."""
    return STATIC.group_versions()


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
    """The legacy discovery ``APIResourceList`` of one of the simulator's own group/versions."""
    return STATIC.api_resource_list(group, version)


def api_group(group: str) -> Obj | None:
    """The ``APIGroup`` document of a named group of the simulator's own types."""
    return STATIC.api_group(group)


def api_group_list() -> Obj:
    """The ``/apis`` document of the simulator's own types."""
    return STATIC.api_group_list()


def api_versions() -> Obj:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }
