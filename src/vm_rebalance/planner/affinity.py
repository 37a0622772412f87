"""Which VMs take part in pod (anti-)affinity or topology spread, and who watches whom.

Built once per VM list in O(VMs × labels + selections): selectors with ``matchLabels`` are
looked up through an inverted label index instead of being matched against every VM, so a
cluster with thousands of HA groups costs about as much as one with none. `Problem` (the
search) and `waves` (wave assignment) both use it to hand `eligibility.pod_affinity_violations`
only the residents that can matter for a VM: the VMs its own terms and spread constraints
select, plus the VMs whose required anti-affinity selects it (Kubernetes enforces that
symmetrically).
"""

from collections.abc import Sequence

from vm_rebalance.model import LabelSelector, VirtualMachine

SelectorKey = tuple[LabelSelector, tuple[str, ...]]
"""A label selector and the namespaces it looks in."""


class AffinityIndex:
    """Per VM (by position in ``vms``): does its placement depend on others, and who depends on it."""

    def __init__(self, vms: Sequence[VirtualMachine]) -> None:
        self.vms = vms
        self._by_label: dict[tuple[str, str, str], list[int]] = {}
        self._by_ns: dict[str, list[int]] = {}
        for i, v in enumerate(vms):
            self._by_ns.setdefault(v.namespace, []).append(i)
            for label, value in v.labels.items():
                self._by_label.setdefault((v.namespace, label, value), []).append(i)
        self.declares = [
            bool(v.placement.pod_anti_affinity or v.placement.pod_affinity or v.placement.topology_spread) for v in vms
        ]
        self.relevant = list(self.declares)
        """Declares a term, or is selected by one: where it is matters to someone."""
        self.watchers: dict[int, list[int]] = {}
        """VM -> the VMs whose required anti-affinity selects it (they repel it)."""
        selectors: set[SelectorKey] = set()
        anti: dict[SelectorKey, list[int]] = {}
        for k, v in enumerate(vms):
            for term in v.placement.pod_anti_affinity:
                key = (term.label_selector, term.namespaces or (v.namespace,))
                selectors.add(key)
                holders = anti.setdefault(key, [])
                if not holders or holders[-1] != k:
                    holders.append(k)
            for term in v.placement.pod_affinity:
                selectors.add((term.label_selector, term.namespaces or (v.namespace,)))
            for tsc in v.placement.topology_spread:
                selectors.add((tsc.label_selector, (v.namespace,)))
        for key in selectors:
            for i in self.selected(*key):
                self.relevant[i] = True
        watchers: dict[int, set[int]] = {}
        for key, holders in anti.items():
            for i in self.selected(*key):
                found = watchers.setdefault(i, set())
                found.update(holders)
        for i, found in watchers.items():
            found.discard(i)
            if found:
                self.watchers[i] = sorted(found)
        self._seen: dict[int, list[int]] = {}

    def selected(self, selector: LabelSelector, namespaces: Sequence[str]) -> list[int]:
        """The VMs in ``namespaces`` whose labels ``selector`` selects (sorted positions)."""
        out: list[int] = []
        for ns in namespaces:
            if selector.match_labels:
                pools = [self._by_label.get((ns, k, val), []) for k, val in selector.match_labels.items()]
                pool = min(pools, key=len)
            else:
                pool = self._by_ns.get(ns, [])
            out.extend(i for i in pool if selector.matches(self.vms[i].labels))
        return sorted(set(out))

    def dynamic(self, i: int) -> bool:
        """Whether VM ``i``'s feasibility depends on where other VMs are."""
        return self.declares[i] or i in self.watchers

    def seen_by(self, i: int) -> list[int]:
        """The VMs whose position can affect VM ``i``'s placement rules: those its own terms and
        spread constraints select, and those whose anti-affinity selects it (cached)."""
        cached = self._seen.get(i)
        if cached is not None:
            return cached
        vm = self.vms[i]
        found: set[int] = set(self.watchers.get(i, ()))
        for term in (*vm.placement.pod_anti_affinity, *vm.placement.pod_affinity):
            found.update(self.selected(term.label_selector, term.namespaces or (vm.namespace,)))
        for tsc in vm.placement.topology_spread:
            found.update(self.selected(tsc.label_selector, (vm.namespace,)))
        found.discard(i)
        out = sorted(found)
        self._seen[i] = out
        return out
