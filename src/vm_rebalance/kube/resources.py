"""API paths of the resources vm-rebalance reads and changes."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiResource:
    """One resource type: where it lives and what it is called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def group_version(self) -> str:
        """``v1`` for the core group, else ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``plural.group`` as Kubernetes names it in messages (``pods`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


NODES = ApiResource("", "v1", "nodes", "Node", False)
PODS = ApiResource("", "v1", "pods", "Pod", True)
PVCS = ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
DATAVOLUMES = ApiResource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", True)
VMS = ApiResource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
VMIS = ApiResource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", True)
VMIMS = ApiResource("kubevirt.io", "v1", "virtualmachineinstancemigrations", "VirtualMachineInstanceMigration", True)
KUBEVIRTS = ApiResource("kubevirt.io", "v1", "kubevirts", "KubeVirt", True)
CLUSTER_INSTANCETYPES = ApiResource(
    "instancetype.kubevirt.io",
    "v1beta1",
    "virtualmachineclusterinstancetypes",
    "VirtualMachineClusterInstancetype",
    False,
)
INSTANCETYPES = ApiResource(
    "instancetype.kubevirt.io", "v1beta1", "virtualmachineinstancetypes", "VirtualMachineInstancetype", True
)
NODE_METRICS = ApiResource("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", False)
POD_METRICS = ApiResource("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True)
VM_SUBRESOURCES = ApiResource("subresources.kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", False)
LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease", True)
