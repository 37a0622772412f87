"""The inventory: node and VM facts as a versioned document and as rich tables.

`inventory_document` computes every fact once (utilisation by usage and by requests,
flags, health, storage, move method and reason, totals and headroom); the tables render
that same document, so `-o json` and the table view can never disagree.
"""

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vm_rebalance.model import ClusterState, Node, StorageKind, VirtualMachine
from vm_rebalance.model.signals import Observation, Pressure
from vm_rebalance.model.thresholds import (
    CPU_CRITICAL,
    CPU_PRESSURE,
    CPU_WARNING,
    DEFAULT_HEADROOM,
    MEMORY_CRITICAL,
    MEMORY_PRESSURE,
    MEMORY_WARNING,
)
from vm_rebalance.planner.eligibility import live_blocker, live_blocker_detail, move_method, node_flags
from vm_rebalance.render.text import markup, md, plain

INVENTORY_API_VERSION = "vm-rebalance/v1"


def _ratio(used: int, total: int) -> float | None:
    return round(used / total, 4) if total > 0 else None


def health(cpu: float | None, memory: float | None, *, ready: bool = True, pressure: tuple[str, ...] = ()) -> str:
    """ok / warning / critical: a NotReady node is critical, one reporting pressure at least a warning, and
    utilisation at the seeds' thresholds (CPU 80/90 %, memory 85/95 %)."""
    if not ready or (cpu or 0) > CPU_CRITICAL or (memory or 0) > MEMORY_CRITICAL:
        return "critical"
    if pressure or (cpu or 0) > CPU_WARNING or (memory or 0) > MEMORY_WARNING:
        return "warning"
    return "ok"


def health_reasons(node: Node, cpu: float | None, memory: float | None) -> list[str]:
    """Why a node's health is not ok (NotReady, pressure conditions, utilisation over the thresholds)."""
    reasons = [] if node.ready else ["NotReady"]
    reasons += list(node.pressure_conditions)
    if (cpu or 0) > CPU_WARNING:
        reasons.append(f"CPU {round((cpu or 0) * 100)} %")
    if (memory or 0) > MEMORY_WARNING:
        reasons.append(f"memory {round((memory or 0) * 100)} %")
    return reasons


def _node_doc(node: Node, vm_count: int) -> dict[str, Any]:
    alloc = node.allocatable
    usage = node.usage
    flags = [str(f) for f in node_flags(node)]
    tainted = [str(t) for t in node.taints if t.key != "node.kubernetes.io/unschedulable"]
    cpu_use = _ratio(usage.cpu_millicores, alloc.cpu_millicores) if usage else None
    mem_use = _ratio(usage.memory_bytes, alloc.memory_bytes) if usage else None
    cpu_req = _ratio(node.requested.cpu_millicores, alloc.cpu_millicores)
    mem_req = _ratio(node.requested.memory_bytes, alloc.memory_bytes)
    return {
        "name": node.name,
        "eligible": not flags,
        "flags": flags + (["tainted"] if tainted else []),
        "taints": tainted,
        "vms": vm_count,
        "allocatable": {"cpu_millicores": alloc.cpu_millicores, "memory_bytes": alloc.memory_bytes},
        "requested": {"cpu_millicores": node.requested.cpu_millicores, "memory_bytes": node.requested.memory_bytes},
        "usage": None
        if usage is None
        else {"cpu_millicores": usage.cpu_millicores, "memory_bytes": usage.memory_bytes},
        "cpu_usage": cpu_use,
        "memory_usage": mem_use,
        "cpu_requests": cpu_req,
        "memory_requests": mem_req,
        "health": health(
            cpu_use if cpu_use is not None else cpu_req,
            mem_use if mem_use is not None else mem_req,
            ready=node.ready,
            pressure=node.pressure_conditions,
        ),
        "health_reasons": health_reasons(
            node, cpu_use if cpu_use is not None else cpu_req, mem_use if mem_use is not None else mem_req
        ),
        "pods": node.pods,
        "pressure": pressure_document(node.pressure),
    }


def pressure_document(pressure: Pressure | None) -> dict[str, float | None] | None:
    """A node's PSI as fractions of time (``cpu``, ``memory``, ``memory_full``, ``io``), or None."""
    return None if pressure is None else pressure.to_document()


def observation_document(observation: Observation | None) -> dict[str, Any] | None:
    """How usage was observed: source, window, statistic, PSI window and the basis line; None without usage."""
    if observation is None:
        return None
    return {
        "source": observation.source,
        "window_seconds": observation.window_seconds,
        "percentile": observation.percentile,
        "statistic": observation.statistic,
        "pressure_window_seconds": observation.pressure_window_seconds,
        "end": None if observation.end is None else observation.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "basis_line": observation.describe(),
    }


def _vm_doc(vm: VirtualMachine) -> dict[str, Any]:
    method = move_method(vm)
    blocker = live_blocker_detail(vm)
    return {
        "namespace": vm.namespace,
        "name": vm.name,
        "node": vm.node,
        "status": vm.printable_status,
        "run_strategy": vm.run_strategy,
        "instance_type": vm.instance_type,
        "vcpus": vm.vcpus,
        "memory_bytes": vm.guest_memory_bytes,
        "requests": {"cpu_millicores": vm.requests.cpu_millicores, "memory_bytes": vm.requests.memory_bytes},
        "usage": None
        if vm.usage is None
        else {"cpu_millicores": vm.usage.cpu_millicores, "memory_bytes": vm.usage.memory_bytes},
        "storage": vm.storage_kind.value,
        "volumes": [
            {
                "name": v.name,
                "source": v.source,
                "claim": v.claim_name,
                "access_modes": list(v.access_modes),
                "claim_found": v.claim_found,
            }
            for v in vm.volumes
        ],
        "move_method": method.value,
        "move_reason": blocker.message if blocker else "live migration possible",
        "move_blocker": blocker.code if blocker else None,
        "live_migratable": vm.live_migratable,
        "eviction_strategy": vm.eviction_strategy,
        "do_not_move": vm.do_not_move,
        "dirty_rate_bytes_per_second": vm.dirty_rate_bytes_per_second,
        "network_bytes_per_second": vm.network_bytes_per_second,
    }


def inventory_document(state: ClusterState, *, namespaces: Iterable[str] | None = None) -> dict[str, Any]:
    """Every node and (selected) VM with the facts of the inventory command."""
    wanted = set(namespaces) if namespaces is not None else None
    counts: dict[str, int] = {}
    for vm in state.vms:
        if vm.running and vm.node:
            counts[vm.node] = counts.get(vm.node, 0) + 1
    nodes = [_node_doc(n, counts.get(n.name, 0)) for n in state.nodes]
    vms = [_vm_doc(v) for v in state.vms if wanted is None or v.namespace in wanted]
    eligible = [n for n in state.nodes if not node_flags(n)]
    alloc_cpu = sum(n.allocatable.cpu_millicores for n in eligible)
    alloc_mem = sum(n.allocatable.memory_bytes for n in eligible)
    req_cpu = sum(n.requested.cpu_millicores for n in eligible)
    req_mem = sum(n.requested.memory_bytes for n in eligible)
    use_cpu = sum(n.usage.cpu_millicores for n in eligible if n.usage) if state.metrics_available else None
    use_mem = sum(n.usage.memory_bytes for n in eligible if n.usage) if state.metrics_available else None
    totals = {
        "nodes": len(state.nodes),
        "eligible_nodes": len(eligible),
        "vms": len(state.vms),
        "running_vms": sum(1 for v in state.vms if v.running),
        "live_movable_vms": sum(1 for v in state.vms if v.running and live_blocker(v) is None),
        "allocatable": {"cpu_millicores": alloc_cpu, "memory_bytes": alloc_mem},
        "requested": {"cpu_millicores": req_cpu, "memory_bytes": req_mem},
        "usage": None if use_cpu is None else {"cpu_millicores": use_cpu, "memory_bytes": use_mem},
        "cpu_requests": _ratio(req_cpu, alloc_cpu),
        "memory_requests": _ratio(req_mem, alloc_mem),
        "cpu_usage": None if use_cpu is None else _ratio(use_cpu, alloc_cpu),
        "memory_usage": None if use_mem is None else _ratio(int(use_mem or 0), alloc_mem),
        "headroom": {
            "cpu": None if alloc_cpu == 0 else round(1 - (use_cpu if use_cpu is not None else req_cpu) / alloc_cpu, 4),
            "memory": None
            if alloc_mem == 0
            else round(1 - (use_mem if use_mem is not None else req_mem) / alloc_mem, 4),
            "target": DEFAULT_HEADROOM,
        },
    }
    return {
        "apiVersion": INVENTORY_API_VERSION,
        "kind": "Inventory",
        "source": state.source,
        "basis": "usage" if state.metrics_available else "requests",
        "observation": observation_document(state.observation),
        "kubevirt_version": state.kubevirt_version,
        "migration_limits": {
            "parallel_per_cluster": state.limits.parallel_per_cluster,
            "parallel_outbound_per_node": state.limits.parallel_outbound_per_node,
            "completion_timeout_per_gib_seconds": state.limits.completion_timeout_per_gib_seconds,
        },
        "nodes": nodes,
        "vms": vms,
        "migrations_in_flight": [
            {"namespace": m.namespace, "name": m.name, "vm": m.vm, "phase": m.phase, "from": m.source, "to": m.target}
            for m in state.migrations
        ],
        "totals": totals,
        "notes": list(state.notes),
    }


# ------------------------------------------------------------------------------- tables


def _pct(value: float | None, *, warn: float, crit: float) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "bold red" if value > crit else "yellow" if value > warn else "green"
    return Text(f"{value * 100:.0f}%", style=style)


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024**3:.1f}Gi"


def _cores(m: int | None) -> str:
    return "-" if m is None else f"{m / 1000:.1f}"


def node_table(doc: dict[str, Any]) -> Table:
    """The node table of an inventory document."""
    table = Table(title="Nodes", title_justify="left", header_style="bold")
    psi = any(n.get("pressure") for n in doc["nodes"])
    columns = ["Node", "VMs", "CPU use", "CPU req", "Mem use", "Mem req", "CPU / Mem", "Health", "Flags"]
    if psi:
        columns.insert(7, "PSI cpu / mem")
    for col in columns:
        table.add_column(col, justify="right" if col in ("VMs",) else "left", no_wrap=col == "Node")
    for n in doc["nodes"]:
        health_style = {"critical": "bold red", "warning": "yellow", "ok": "green"}[n["health"]]
        flags = ", ".join(n["flags"]) or "-"
        extra = [_psi_text(n.get("pressure"))] if psi else []
        table.add_row(
            markup(n["name"]),
            str(n["vms"]),
            _pct(n["cpu_usage"], warn=CPU_WARNING, crit=CPU_CRITICAL),
            _pct(n["cpu_requests"], warn=CPU_WARNING, crit=CPU_CRITICAL),
            _pct(n["memory_usage"], warn=MEMORY_WARNING, crit=MEMORY_CRITICAL),
            _pct(n["memory_requests"], warn=MEMORY_WARNING, crit=MEMORY_CRITICAL),
            f"{_cores(n['allocatable']['cpu_millicores'])} / {_gib(n['allocatable']['memory_bytes'])}",
            *extra,
            Text(
                plain(n["health"] + (f" ({', '.join(n['health_reasons'])})" if n.get("health_reasons") else "")),
                style=health_style,
            ),
            Text(plain(flags), style="dim" if flags == "-" else "magenta"),
        )
    return table


def _psi_text(pressure: dict[str, float | None] | None) -> Text:
    """``35% / 0%``: the share of time tasks waited for CPU / memory, yellow from the pressure limits."""
    if not pressure:
        return Text("-", style="dim")
    cpu, mem = pressure.get("cpu"), pressure.get("memory")
    text = Text()
    text.append(_pct_plain(cpu), style="yellow" if (cpu or 0) >= CPU_PRESSURE else "")
    text.append(" / ")
    text.append(_pct_plain(mem), style="yellow" if (mem or 0) >= MEMORY_PRESSURE else "")
    return text


def vm_table(doc: dict[str, Any]) -> Table:
    """The VM table of an inventory document."""
    table = Table(title="Virtual machines", title_justify="left", header_style="bold")
    for col in ("Namespace", "VM", "Node", "Status", "Instance type", "vCPU", "Memory", "Storage", "Move"):
        table.add_column(col, justify="right" if col in ("vCPU", "Memory") else "left")
    for v in doc["vms"]:
        move = Text(v["move_method"], style="green" if v["move_method"] == "live" else "yellow")
        if v["move_method"] == "cold":
            move.append(f" ({plain(v['move_blocker'])})", style="dim")
        storage = {StorageKind.CONTAINER_DISK.value: "containerdisk"}.get(v["storage"], v["storage"])
        table.add_row(  # names and statuses are data: never rich markup
            markup(v["namespace"]),
            markup(v["name"]),
            markup(v["node"] or "-"),
            markup(v["status"]),
            markup(v["instance_type"] or "-"),
            str(v["vcpus"]),
            _gib(v["memory_bytes"]),
            storage,
            move,
        )
    return table


def totals_text(doc: dict[str, Any]) -> Text:
    """Cluster totals and headroom, one paragraph."""
    t = doc["totals"]
    text = Text()
    text.append("Cluster: ", style="bold")
    text.append(
        f"{t['nodes']} nodes ({t['eligible_nodes']} can host migrated VMs), {t['vms']} VMs "
        f"({t['running_vms']} running, {t['live_movable_vms']} can move live)\n"
    )
    alloc = t["allocatable"]
    text.append(f"Eligible capacity: {_cores(alloc['cpu_millicores'])} CPU, {_gib(alloc['memory_bytes'])}; ")
    text.append(f"requested {_pct_plain(t['cpu_requests'])} CPU / {_pct_plain(t['memory_requests'])} memory")
    if t["cpu_usage"] is not None:
        text.append(f"; used {_pct_plain(t['cpu_usage'])} CPU / {_pct_plain(t['memory_usage'])} memory")
    head = t["headroom"]
    text.append(
        f"\nHeadroom ({doc['basis']}): {_pct_plain(head['cpu'])} CPU, {_pct_plain(head['memory'])} memory "
        f"(target ≥ {head['target'] * 100:.0f}%)"
    )
    limits = doc["migration_limits"]
    text.append(
        f"\nMigration limits: {limits['parallel_per_cluster']} per cluster, "
        f"{limits['parallel_outbound_per_node']} outbound per node"
        + (f"; KubeVirt {doc['kubevirt_version']}" if doc["kubevirt_version"] else "")
    )
    observation = doc.get("observation")
    text.append(f"\nUsage: {observation['basis_line'] if observation else 'none measured (requests only)'}")
    for note in doc["notes"]:
        text.append(f"\nNote: {note}", style="dim")
    return text


def _pct_plain(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def inventory_view(doc: dict[str, Any]) -> RenderableType:
    """Node table, VM table and totals."""
    parts: list[RenderableType] = [node_table(doc), vm_table(doc), totals_text(doc)]
    if doc["migrations_in_flight"]:
        flight = Table(title="Migrations in flight", title_justify="left", header_style="bold")
        for col in ("Namespace", "Migration", "VM", "Phase", "From", "To"):
            flight.add_column(col)
        for m in doc["migrations_in_flight"]:
            flight.add_row(
                *(markup(x) for x in (m["namespace"], m["name"], m["vm"], m["phase"], m["from"] or "-", m["to"] or "-"))
            )
        parts.insert(2, flight)
    return Group(*parts)


# ------------------------------------------------------------------------------- markdown


def _md(text: object) -> str:
    return md(text)  # cluster text is data: escaped, one line, capped (render/text.py)


def inventory_markdown(doc: dict[str, Any], *, max_vms: int = 200) -> str:
    """The inventory document as compact Markdown (for the MCP server): totals, nodes, VMs (at most ``max_vms``)."""
    t = doc["totals"]
    head = t["headroom"]
    limits = doc["migration_limits"]
    out = [
        "## Cluster inventory",
        "",
        f"**Cluster:** {t['nodes']} nodes ({t['eligible_nodes']} can host migrated VMs), {t['vms']} VMs "
        f"({t['running_vms']} running, {t['live_movable_vms']} can move live); basis: {doc['basis']}"
        + (f"; KubeVirt {_md(doc['kubevirt_version'])}" if doc["kubevirt_version"] else ""),
        f"**Headroom ({doc['basis']}):** {_pct_plain(head['cpu'])} CPU, {_pct_plain(head['memory'])} memory "
        f"(target ≥ {head['target'] * 100:.0f}%); requested {_pct_plain(t['cpu_requests'])} CPU / "
        f"{_pct_plain(t['memory_requests'])} memory",
        f"**Migration limits:** {limits['parallel_per_cluster']} per cluster, "
        f"{limits['parallel_outbound_per_node']} outbound per node",
        "",
        "### Nodes",
        "",
        "| Node | VMs | CPU use | CPU req | Mem use | Mem req | CPU / Mem | Health | Flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in doc["nodes"]:
        health_text = {"critical": "🔴 critical", "warning": "🟡 warning"}.get(n["health"], "ok")
        if n.get("health_reasons"):
            health_text += f" ({_md(', '.join(n['health_reasons']))})"
        out.append(
            f"| {_md(n['name'])} | {n['vms']} | {_pct_plain(n['cpu_usage'])} | {_pct_plain(n['cpu_requests'])} | "
            f"{_pct_plain(n['memory_usage'])} | {_pct_plain(n['memory_requests'])} | "
            f"{_cores(n['allocatable']['cpu_millicores'])} / {_gib(n['allocatable']['memory_bytes'])} | "
            f"{health_text} | {_md(', '.join(n['flags']) or '-')} |"
        )
    vms = doc["vms"]
    out += ["", f"### Virtual machines ({len(vms)})", ""]
    if vms:
        out += [
            "| Namespace | VM | Node | Status | vCPU | Memory | Storage | Move |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in vms[:max_vms]:
            move = v["move_method"] + (f" ({v['move_blocker']})" if v["move_method"] == "cold" else "")
            out.append(
                f"| {_md(v['namespace'])} | {_md(v['name'])} | {_md(v['node'] or '-')} | {_md(v['status'])} | "
                f"{v['vcpus']} | {_gib(v['memory_bytes'])} | {_md(v['storage'])} | {_md(move)} |"
            )
        if len(vms) > max_vms:
            out += ["", f"… and {len(vms) - max_vms} more VM(s) (filter by namespace to see them)"]
    else:
        out.append("No VM in the selected namespaces.")
    if doc["migrations_in_flight"]:
        out += ["", "### Migrations in flight", "", "| Namespace | VM | Phase | From | To |", "|---|---|---|---|---|"]
        for m in doc["migrations_in_flight"]:
            out.append(
                f"| {_md(m['namespace'])} | {_md(m['vm'])} | {_md(m['phase'])} | {_md(m['from'] or '-')} | "
                f"{_md(m['to'] or '-')} |"
            )
    observation = doc.get("observation")
    out += ["", f"Usage: {_md(observation['basis_line']) if observation else 'none measured (requests only)'}"]
    for note in doc["notes"]:
        out += ["", f"Note: {_md(note)}"]
    return "\n".join(out) + "\n"


__all__ = [
    "health",
    "inventory_document",
    "inventory_markdown",
    "inventory_view",
    "node_table",
    "totals_text",
    "vm_table",
]
