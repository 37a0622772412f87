"""Measured usage, as a usage source reports it and the cluster state takes it in (pure data).

A usage source (sources/) measures what nodes and VMs use: metrics.k8s.io's instant usage,
Prometheus / Thanos over a window (mean or percentile, with PSI, dirty and network rates), or the
kubelet's stats summary (instant usage, PSI over 5 minutes). Whatever measured it, it arrives as
a `UsageSample`; kube/convert.py lays it over the inventory (nodes' ``usage`` and ``pressure``,
VMs' ``usage``, dirty and network rates, the state's ``observation``).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from vm_rebalance.model.cluster import Resources
from vm_rebalance.model.signals import Observation, Pressure

_NONE: Mapping[str, Resources] = MappingProxyType({})
_NO_PODS: Mapping[tuple[str, str], Resources] = MappingProxyType({})
_NO_PRESSURE: Mapping[str, Pressure] = MappingProxyType({})
_NO_RATES: Mapping[tuple[str, str], int] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSample:
    """What nodes, VMs and pods used, by one source at one moment."""

    nodes: Mapping[str, Resources] = field(default_factory=lambda: _NONE)
    """Usage per node name."""
    vms: Mapping[tuple[str, str], Resources] = field(default_factory=lambda: _NO_PODS)
    """Usage per VM (namespace, name), for sources that measure VMs (e.g. KubeVirt's own metrics)."""
    pods: Mapping[tuple[str, str], Resources] = field(default_factory=lambda: _NO_PODS)
    """Usage per pod (namespace, name); a VM's is its virt-launcher pod's (metrics.k8s.io measures pods)."""
    measured_at: datetime | None = None
    """When it was measured (the newest sample), if the source says."""
    source: str = ""
    """What measured it, for people (e.g. ``metrics.k8s.io``)."""
    notes: tuple[str, ...] = ()
    """What people should know about it, e.g. why there is none."""
    pressure: Mapping[str, Pressure] = field(default_factory=lambda: _NO_PRESSURE)
    """Pressure stall information per node name, for sources that measure it."""
    dirty_rates: Mapping[tuple[str, str], int] = field(default_factory=lambda: _NO_RATES)
    """Guest memory dirty rate (bytes/s) per VM (namespace, name)."""
    network_rates: Mapping[tuple[str, str], int] = field(default_factory=lambda: _NO_RATES)
    """Guest network traffic (received + transmitted, bytes/s) per VM (namespace, name)."""
    observation: Observation | None = None
    """How it was observed (window, statistic, PSI window, series); None: not said (an instant reading)."""
    warnings: tuple[str, ...] = ()
    """What a plan or report built on it must say: sources skipped or read only partly (auto-detection)."""

    @property
    def available(self) -> bool:
        """Whether there is node usage (else utilisation is by requests)."""
        return bool(self.nodes)
