"""What the executor decides about KubeVirt versions and migration names; the API itself lives in kube/.

`KubeVirtApi` (kube/kubevirt.py) hands the executor typed views and classified errors; the
names below are re-exported so that callers written against this module keep working.
"""

import re

from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.pins import (
    affinity_ops,
    annotation_ops,
    existing_node_pin,
    pinned_affinity,
    run_strategy_ops,
    unpinned_affinity,
    vm_run_strategy,
)
from vm_rebalance.kube.views import MIGRATION_LABEL, PIN_ANNOTATION, TEMP_PIN_ANNOTATION

ADDED_NODE_SELECTOR_SINCE = (1, 6)


def parse_version(version: str | None) -> tuple[int, int] | None:
    """``v1.6.2`` → (1, 6); None when unknown."""
    if not version:
        return None
    m = re.match(r"v?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def supports_added_node_selector(version: str | None) -> bool:
    """Whether VMIM ``spec.addedNodeSelector`` exists (KubeVirt v1.6+)."""
    v = parse_version(version)
    return v is not None and v >= ADDED_NODE_SELECTOR_SINCE


def migration_name(plan_id: str, move_id: int, attempt: int) -> str:
    """A deterministic, DNS-1123 migration name for a move attempt."""
    return f"vmr-{plan_id[:10]}-{move_id}-{attempt}"


__all__ = [
    "MIGRATION_LABEL",
    "PIN_ANNOTATION",
    "TEMP_PIN_ANNOTATION",
    "KubeVirtApi",
    "affinity_ops",
    "annotation_ops",
    "existing_node_pin",
    "migration_name",
    "parse_version",
    "pinned_affinity",
    "run_strategy_ops",
    "supports_added_node_selector",
    "unpinned_affinity",
    "vm_run_strategy",
]
