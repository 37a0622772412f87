"""The ``SustainedUsage`` object a snapshot keeps, so offline planning sees what the live read saw.

metrics.k8s.io usage is kept in a snapshot as its own NodeMetrics / PodMetrics objects. Usage
from Prometheus or the kubelet's stats summary has no Kubernetes kind, so `vm-rebalance
snapshot` writes one object of its own into the List (apiVersion ``vm-rebalance.io/v1``, kind
``SustainedUsage``; older readers ignore it with a note, as any unknown kind):

```yaml
apiVersion: vm-rebalance.io/v1
kind: SustainedUsage
metadata: {name: usage}
source: Prometheus                 # what measured it
windowSeconds: 3600                # null: one instant reading
percentile: null                   # null: the mean over the window
pressureWindowSeconds: 3600        # null: no PSI
end: "2026-08-01T10:00:00Z"
notes: ["..."]
nodes:
- name: worker-01
  cpuMillicores: 15200
  memoryBytes: 42949672960
  pressure: {cpu: 0.35, memory: 0.0, memoryFull: 0.0, io: 0.02}   # fractions of time; optional
  series: {times: [...], cpu: [...], memory: [...]}                # optional, fractions of capacity
vms:
- {namespace: prod, name: db-01, cpuMillicores: 3800, memoryBytes: 8589934592,
   dirtyRateBytesPerSecond: 52428800, networkBytesPerSecond: 1048576}
pods:                              # the stats summary measures pods (a VM's is its launcher pod's)
- {namespace: prod, name: virt-launcher-db-01-abcde, cpuMillicores: 3800, memoryBytes: 8589934592}
```
"""

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Resources
from vm_rebalance.model.signals import Observation, Pressure, UtilisationSeries
from vm_rebalance.model.usage import UsageSample

API_VERSION = "vm-rebalance.io/v1"
KIND = "SustainedUsage"

Obj = Mapping[str, Any]


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pressure_doc(p: Pressure) -> dict[str, float]:
    pairs = (("cpu", p.cpu), ("memory", p.memory), ("memoryFull", p.memory_full), ("io", p.io))
    return {k: v for k, v in pairs if v is not None}


def sustained_document(sample: UsageSample) -> dict[str, Any]:
    """The ``SustainedUsage`` object for ``sample`` (see the module docstring)."""
    obs = sample.observation
    nodes = []
    for name in sorted(set(sample.nodes) | set(sample.pressure)):
        row: dict[str, Any] = {"name": name}
        if (usage := sample.nodes.get(name)) is not None:
            row["cpuMillicores"] = usage.cpu_millicores
            row["memoryBytes"] = usage.memory_bytes
        if (pressure := sample.pressure.get(name)) is not None:
            row["pressure"] = _pressure_doc(pressure)
        if obs is not None and (series := obs.series.get(name)) is not None:
            # Exact values: offline planning and reports see what the live read saw.
            row["series"] = {"times": list(series.times), "cpu": list(series.cpu), "memory": list(series.memory)}
        nodes.append(row)
    vms = []
    for key in sorted(set(sample.vms) | set(sample.dirty_rates) | set(sample.network_rates)):
        vm: dict[str, Any] = {"namespace": key[0], "name": key[1]}
        if (usage := sample.vms.get(key)) is not None:
            vm["cpuMillicores"] = usage.cpu_millicores
            vm["memoryBytes"] = usage.memory_bytes
        if key in sample.dirty_rates:
            vm["dirtyRateBytesPerSecond"] = sample.dirty_rates[key]
        if key in sample.network_rates:
            vm["networkBytesPerSecond"] = sample.network_rates[key]
        vms.append(vm)
    pods = [
        {"namespace": ns, "name": name, "cpuMillicores": r.cpu_millicores, "memoryBytes": r.memory_bytes}
        for (ns, name), r in sorted(sample.pods.items())
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "usage"},
        "source": obs.source if obs is not None else sample.source,
        "windowSeconds": None if obs is None else obs.window_seconds,
        "percentile": None if obs is None else obs.percentile,
        "pressureWindowSeconds": None if obs is None else obs.pressure_window_seconds,
        "end": _time(obs.end if obs is not None else sample.measured_at),
        "notes": list(sample.notes),
        "nodes": nodes,
        "vms": vms,
        "pods": pods,
    }


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")

    def number(self, doc: Obj, key: str, *, optional: bool = True) -> float | None:
        value = doc.get(key)
        if value is None:
            if optional:
                return None
            raise self.fail(f"missing '{key}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise self.fail(f"'{key}' must be a number >= 0, not {value!r}")
        return float(value)

    def integer(self, doc: Obj, key: str) -> int | None:
        value = self.number(doc, key)
        return None if value is None else int(value)

    def items(self, doc: Obj, key: str) -> list[Obj]:
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(f"'{key}' must be a list of objects")
        return value

    def name(self, doc: Obj, key: str = "name") -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"an entry has no '{key}'")
        return value

    def resources(self, doc: Obj) -> Resources | None:
        cpu, mem = self.integer(doc, "cpuMillicores"), self.integer(doc, "memoryBytes")
        if cpu is None and mem is None:
            return None
        return Resources(cpu or 0, mem or 0)


def _pressure(reader: _Reader, raw: Any) -> Pressure | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise reader.fail("'pressure' must be an object")
    try:
        return Pressure(
            cpu=reader.number(raw, "cpu"),
            memory=reader.number(raw, "memory"),
            memory_full=reader.number(raw, "memoryFull"),
            io=reader.number(raw, "io"),
        )
    except ValueError as exc:
        raise reader.fail(str(exc)) from exc


def _series(reader: _Reader, raw: Any) -> UtilisationSeries | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise reader.fail("'series' must be an object")
    try:
        return UtilisationSeries(
            tuple(float(x) for x in raw.get("times") or ()),
            tuple(float(x) for x in raw.get("cpu") or ()),
            tuple(float(x) for x in raw.get("memory") or ()),
        )
    except (TypeError, ValueError) as exc:
        raise reader.fail(f"malformed series: {exc}") from exc


def sample_from_sustained(obj: Obj) -> UsageSample:
    """The usage sample a ``SustainedUsage`` object holds.

    Raises:
        ConfigError: a malformed object (the message names the field).
    """
    reader = _Reader(f"{KIND} '{(obj.get('metadata') or {}).get('name', '')}'")
    nodes: dict[str, Resources] = {}
    pressure: dict[str, Pressure] = {}
    series: dict[str, UtilisationSeries] = {}
    for row in reader.items(obj, "nodes"):
        name = reader.name(row)
        if (usage := reader.resources(row)) is not None:
            nodes[name] = usage
        if (p := _pressure(reader, row.get("pressure"))) is not None:
            pressure[name] = p
        if (s := _series(reader, row.get("series"))) is not None:
            series[name] = s
    vms: dict[tuple[str, str], Resources] = {}
    dirty: dict[tuple[str, str], int] = {}
    network: dict[tuple[str, str], int] = {}
    for row in reader.items(obj, "vms"):
        key = (reader.name(row, "namespace"), reader.name(row))
        if (usage := reader.resources(row)) is not None:
            vms[key] = usage
        if (d := reader.integer(row, "dirtyRateBytesPerSecond")) is not None:
            dirty[key] = d
        if (n := reader.integer(row, "networkBytesPerSecond")) is not None:
            network[key] = n
    pods = {}
    for row in reader.items(obj, "pods"):
        usage = reader.resources(row)
        if usage is not None:
            pods[(reader.name(row, "namespace"), reader.name(row))] = usage
    end_raw = obj.get("end")
    try:
        end = datetime.fromisoformat(str(end_raw).replace("Z", "+00:00")) if end_raw else None
    except ValueError as exc:
        raise reader.fail(f"'end' is not a time: {end_raw!r}") from exc
    source = str(obj.get("source") or "unknown source")
    try:
        observation = Observation(
            source=source,
            window_seconds=reader.number(obj, "windowSeconds"),
            percentile=reader.number(obj, "percentile"),
            pressure_window_seconds=reader.number(obj, "pressureWindowSeconds"),
            end=end,
            series=series,
        )
    except ValueError as exc:
        raise reader.fail(str(exc)) from exc
    notes = obj.get("notes") or []
    return UsageSample(
        nodes=nodes,
        vms=vms,
        pods=pods,
        measured_at=end,
        source=source,
        notes=tuple(str(n) for n in notes) if isinstance(notes, list) else (),
        pressure=pressure,
        dirty_rates=dirty,
        network_rates=network,
        observation=observation,
    )
