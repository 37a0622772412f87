"""The seeds' manual-mode and lifecycle conversations, as Markdown (seeds 002 and 004).

One text for every front-end: the MCP server returns it, the CLI renders it in the terminal.
Everything that comes from the cluster (names, statuses, failure reasons) goes through
``render.text`` and stays data. Each function is pure: the plan, the cluster state read back
after execution, the outcomes in; Markdown out.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from vm_rebalance.model import GIB, ClusterState, MigrationMethod, Move, Plan, StorageKind
from vm_rebalance.model.execution import Action, LifecycleResult, LifecycleStatus, MoveStatus, Outcome
from vm_rebalance.model.thresholds import BATCH_SPLIT, BATCH_WARN
from vm_rebalance.render.execution import troubleshooting
from vm_rebalance.render.text import code, md

LIVE_COPY_BYTES_PER_SECOND = 1 * GIB
"""What the duration estimate assumes a live migration copies per second (KubeVirt's default
bandwidth is unlimited; 1 GiB/s is a conservative figure for a 10 Gb/s migration network)."""

_STORAGE_TEXT = {
    StorageKind.RWX: ("RWX (ReadWriteMany)", "Live migration supported"),
    StorageKind.RWO: ("RWO (ReadWriteOnce)", "Live migration not supported"),
    StorageKind.CONTAINER_DISK: ("container disk", "Live migration supported (ephemeral disk)"),
    StorageKind.NONE: ("no disks", "Live migration supported"),
}


def _storage(state: ClusterState, move: Move) -> tuple[str, str]:
    vm = state.vm(move.namespace, move.vm)
    if vm is None:
        return (move.storage or "unknown", "")
    return _STORAGE_TEXT[vm.storage_kind]


def _status(state: ClusterState, move: Move) -> str:
    vm = state.vm(move.namespace, move.vm)
    return vm.printable_status if vm is not None else "unknown"


def _live_estimate(move: Move) -> str:
    seconds = max(5.0, move.guest_memory_bytes / LIVE_COPY_BYTES_PER_SECOND * 1.5 + 5)
    return f"~{seconds:.0f} seconds ({move.guest_memory_bytes / GIB:.0f} GiB of guest memory to copy)"


# ------------------------------------------------------------------------------ before: the plan


def manual_plan_markdown(plan: Plan, state: ClusterState) -> str:
    """Seed 002 step 3: one move as the parameter table with its steps, impact and rollback; several as
    the batch table with its totals and warnings."""
    if len(plan.moves) == 1:
        return _single_move(plan.moves[0], state)
    return _batch(plan, state)


def _single_move(move: Move, state: ClusterState) -> str:
    storage, storage_detail = _storage(state, move)
    live = move.method is MigrationMethod.LIVE
    status = _status(state, move)
    rows = [
        ("VM Name", code(move.vm), "from your request"),
        ("Namespace", code(move.namespace), "from your request"),
        (
            "Current Node",
            code(move.source if move.running else "-"),
            "read from the VMI" if move.running else "stopped",
        ),
        ("Target Node", code(move.target), "from your request"),
        ("Migration Type", f"`{move.method.value}`", _method_detail(move)),
        ("Storage Type", md(storage), md(storage_detail)),
        ("Current Status", md(status), "will be stopped then restarted" if not live and move.running else ""),
    ]
    out = ["## VM Rebalance Plan", "", "**Please review and confirm the migration:**", ""]
    out += ["| Parameter | Value | Details |", "|-----------|-------|---------|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out.append("")
    if live:
        out += _live_story(move)
    elif move.running:
        out += _cold_story(move)
    else:
        out += _pin_story(move)
    return "\n".join(out) + "\n"


def _method_detail(move: Move) -> str:
    if move.method is MigrationMethod.LIVE:
        return "Zero downtime, VM stays running"
    if not move.running:
        return "The VM is stopped: it is only pinned to the target"
    return "VM will stop and restart"


def _live_story(move: Move) -> list[str]:
    return [
        "**Migration Strategy: Live Migration**",
        "",
        "**What will happen:**",
        f"1. Create a VirtualMachineInstanceMigration for {code(move.vm)} targeted at {code(move.target)}",
        "2. KubeVirt will:",
        f"   - Create a new virt-launcher pod on {code(move.target)}",
        "   - Transfer the VM's memory and state while it runs",
        "   - Switch network traffic to the new pod",
        f"   - Terminate the old virt-launcher pod on {code(move.source)}",
        "3. The VM keeps running throughout (brief network pause <1s)",
        "",
        "**Impact:**",
        "- ✓ Zero downtime (VM stays running)",
        "- ✓ Applications remain accessible",
        "- ⚠️ Brief network pause during cutover (<1 second)",
        "- ⚠️ Requires network bandwidth for the memory transfer",
        "- ⚠️ Migration duration depends on the VM's memory size and how fast it writes to memory",
        "",
        f"**Estimated Duration:** {_live_estimate(move)}",
        "",
        f"**Rollback:** If the migration fails, the VM continues running on {code(move.source)}.",
    ]


def _cold_story(move: Move) -> list[str]:
    return [
        "**Migration Strategy: Cold Migration**",
        "",
        "**What will happen:**",
        f"1. Stop the VM on {code(move.source)} and wait until it is Stopped",
        f"2. Re-read the VM and add a **required node affinity** to {code(move.target)} "
        "(other affinity terms are kept)",
        f"3. Start the VM; the scheduler places it on {code(move.target)} because of the affinity",
        f"4. Verify the VM runs on {code(move.target)}",
        "5. **After migration:** you choose whether to remove the affinity for long-term flexibility",
        "",
        "**Impact:**",
        "- ⚠️ **Downtime**: ~30-60 seconds while the VM restarts",
        "- ⚠️ Applications will be interrupted",
        "- ⚠️ Network connections will be dropped",
        "- ✓ Works with any storage type (RWO or RWX)",
        "",
        "**Estimated Downtime:** ~30-60 seconds",
        "",
        f"**Rollback:** If stopping or pinning fails, or the VM cannot start on {code(move.target)}, "
        "vm-rebalance rolls back: it restores the VM's original placement, starts it again (on "
        f"{code(move.source)} or wherever that placement allows) and verifies it runs. In a terminal it asks "
        "first: retry / retry on another node / roll back / leave stopped.",
        "",
        "**Note on Node Affinity:** vm-rebalance uses a node affinity (not a nodeSelector) and marks it as "
        f"its own; after the move you can remove it, so the VM can reschedule elsewhere if {code(move.target)} "
        "fails later.",
    ]


def _pin_story(move: Move) -> list[str]:
    return [
        "**Migration Strategy: Pin a stopped VM**",
        "",
        "**What will happen:**",
        f"1. Add a **required node affinity** to {code(move.target)} (the VM stays stopped)",
        f"2. When the VM is started next, the scheduler places it on {code(move.target)}",
        "",
        "**Impact:** no downtime: the VM is not running.",
        "",
        f"**Rollback:** remove the pin with `vm-rebalance unpin {move.namespace}/{move.vm}`.",
    ]


def _batch(plan: Plan, state: ClusterState) -> str:
    targets = sorted({m.target for m in plan.moves})
    where = code(targets[0]) if len(targets) == 1 else f"{len(targets)} nodes"
    out = ["## Batch Rebalance Plan", "", f"Migrating {len(plan.moves)} VMs to {where}:", ""]
    out += [
        "| VM Name | Namespace | Current Node | Target Node | Migration Type | Impact |",
        "|---------|-----------|--------------|-------------|----------------|--------|",
    ]
    for m in plan.moves:
        impact = "<1s pause" if m.method is MigrationMethod.LIVE else ("~30-60s downtime" if m.running else "none")
        source = m.source if m.running else "(stopped)"
        out.append(f"| {md(m.vm)} | {md(m.namespace)} | {md(source)} | {md(m.target)} | {m.method.value} | {impact} |")
    live = sum(1 for m in plan.moves if m.method is MigrationMethod.LIVE)
    cold = [m for m in plan.moves if m.method is MigrationMethod.COLD and m.running]
    pinned = len(plan.moves) - live - len(cold)
    total = [f"{live} live migration(s)", f"{len(cold)} cold migration(s)"]
    if pinned:
        total.append(f"{pinned} stopped VM(s) pinned")
    out += ["", "Total: " + " + ".join(total)]
    warnings = batch_move_warnings(plan)
    if warnings:
        out += [""] + [f"⚠️ {w}" for w in warnings]
    return "\n".join(out) + "\n"


def batch_move_warnings(plan: Plan) -> list[str]:
    """Seed 002's batch safety limits."""
    n = len(plan.moves)
    out = []
    if n > BATCH_SPLIT:
        out.append(
            f"{n} VMs in one batch: strongly recommended to split it into batches of {BATCH_WARN} "
            "(or run with --sequential)"
        )
    elif n > BATCH_WARN:
        out.append(f"{n} VMs in one batch: network saturation is possible; consider staged execution (--sequential)")
    cold = [m for m in plan.moves if m.method is MigrationMethod.COLD and m.running]
    if len(cold) > 1:
        out.append(f"{len(cold)} cold migrations: their downtime adds up (~30-60s each)")
    return out


# ------------------------------------------------------------------------------ after: the results


def _current(state: ClusterState | None, move: Move) -> list[str]:
    vm = state.vm(move.namespace, move.vm) if state is not None else None
    if vm is None:
        return ["**Current VM Status:** could not be read back from the cluster"]
    return [
        "**Current VM Status:**",
        f"- **Running on**: {code(vm.node or '-')}",
        f"- **Phase**: {md(vm.printable_status)}",
    ]


def move_result_markdown(outcome: Outcome, after: ClusterState | None, *, pinned: bool | None = None) -> str:
    """Seed 002 step 5 for one move: its success with the VM's status read back, or its failure with
    the common causes and troubleshooting. ``pinned`` (cold moves): whether the node affinity was kept."""
    move = outcome.move
    if outcome.status is not MoveStatus.SUCCEEDED:
        return move_failure_markdown(outcome)
    live = move.method is MigrationMethod.LIVE
    title = "✓ Live Migration Successful" if live else "✓ Cold Migration Successful"
    duration = f"{outcome.duration_seconds:.0f} seconds" if outcome.duration_seconds is not None else "unknown"
    out = [f"## {title}", "", "**VM Details:**"]
    out += [f"- **Name**: {code(move.vm)}", f"- **Namespace**: {code(move.namespace)}"]
    out.append(f"- **Migration Type**: {'Live (zero downtime)' if live else 'Cold (with downtime)'}")
    out += ["", "**Migration Summary:**"]
    out += [
        f"- **Source Node**: {code(move.source if move.running else '-')}",
        f"- **Target Node**: {code(move.target)}",
    ]
    out.append(f"- **{'Duration' if live else 'Downtime'}**: {'' if live else '~'}{duration}")
    out += ["- **Status**: Succeeded", ""]
    if live:
        out += [
            "**Impact:**",
            "- ✓ VM remained running throughout migration",
            "- ✓ Applications stayed accessible",
            "- ✓ Brief network pause during cutover (<1 second)",
            "",
        ]
    out += _current(after, move)
    if not live:
        kept = outcome.pinned if pinned is None else pinned
        out.append(
            f"- **Node Affinity**: required on {code(move.target)} (the VM stays on this node)"
            if kept
            else "- **Node Affinity**: none (the VM can reschedule to any suitable node)"
        )
    out += ["", "### Next Steps", ""]
    out.append(f"- Verify application health: `vm-rebalance inventory -n {move.namespace}`")
    if live and outcome.migration_name:
        out.append(
            f"- Migration details: `kubectl get virtualmachineinstancemigration {outcome.migration_name} "
            f"-n {move.namespace}`"
        )
    if not live:
        out.append("- The VM restarted: check that its services are healthy")
        if pinned if pinned is not None else outcome.pinned:
            out.append(
                f"- ⚠️ The VM is pinned to {code(move.target)}: if that node fails it cannot reschedule. "
                f"Remove the pin later with `vm-rebalance unpin {move.namespace}/{move.vm}`"
            )
    return "\n".join(out) + "\n"


_LIVE_CAUSES = [
    "**Insufficient resources** - the target node lacks CPU/memory for the VM",
    "**Network bandwidth** - a slow network keeps the migration from converging",
    "**Timeout exceeded** - the migration took longer than allowed (150 s per GiB by default)",
    "**High memory write rate** - the VM writes to memory faster than it can be copied",
]
_COLD_CAUSES = [
    "**Node not schedulable** - the target node is cordoned, tainted, or lacks resources",
    "**Scheduling constraints** - a nodeSelector or affinity of the VM conflicts with the target",
    "**VM failed to start** - see the VM's events for the scheduling error",
    "**Storage issues** - the PVC is not accessible from the target node",
]


def move_failure_markdown(outcome: Outcome) -> str:
    """Seed 002's failure report: the error, the VM, common causes, troubleshooting, recommended actions."""
    move = outcome.move
    live = move.method is MigrationMethod.LIVE
    ns, vm = move.namespace, move.vm
    out = ["## ❌ Migration Failed", "", f"**Error**: {md(outcome.error or outcome.status.value)}", ""]
    likely = troubleshooting(outcome)
    if likely:
        out += ["**What this means:**"] + [f"- {line}" for line in likely] + [""]  # our own text
    out += ["**VM Details:**", f"- **Name**: {code(vm)}", f"- **Namespace**: {code(ns)}"]
    out += [f"- **Migration Type**: {move.method.value}", f"- **Source Node**: {code(move.source)}"]
    out += [f"- **Target Node**: {code(move.target)}", ""]
    out += ["**Common Causes:**"] + [f"- {c}" for c in (_LIVE_CAUSES if live else _COLD_CAUSES)]
    out += [
        "",
        "**Troubleshooting Steps:**",
        f"1. Check node availability: `vm-rebalance inventory` (is {code(move.target)} Ready and schedulable?)",
        f"2. Check the VM's events: `kubectl describe vm {vm} -n {ns}`",
    ]
    if live:
        out.append(f"3. Check the migration: `kubectl get virtualmachineinstancemigrations -n {ns}`")
    else:
        out.append(f"3. Check where the VM is and whether it is pinned: `kubectl get vmi {vm} -n {ns} -o wide`")
    out += [
        "",
        "**Recommended Actions:**",
        "- If timeout: retry when the VM is less busy, or move it cold",
        "- If resources: choose a different target node with more capacity",
        "- If storage: use cold migration instead (works with RWO)",
        "- If the node is unavailable: check that it is Ready and untainted",
    ]
    return "\n".join(out) + "\n"


def affinity_question_markdown(move: Move) -> str:
    """Seed 002 step 4b.5: after a successful cold move, keep or remove the node affinity."""
    node = code(move.target)
    return (
        "\n".join(
            [
                "**Important: Long-term Resilience**",
                "",
                f"The VM now has a **required node affinity** to {node}. This means:",
                f"- ✓ The VM will stay on {node} (as you requested)",
                f"- ⚠️ If {node} fails or needs maintenance later, the VM **cannot reschedule** to other nodes",
                "",
                "**Recommendation:** remove the node affinity to allow flexible rescheduling in the future.",
                "",
                "Would you like to remove the node affinity now?",
                f"- **yes** - remove it (the VM can reschedule to any healthy node if {node} fails)",
                f"- **no** - keep it (the VM stays pinned to {node})",
                "- **later** - keep it for now; remove it yourself when needed",
            ]
        )
        + "\n"
    )


def affinity_kept_markdown(move: Move) -> str:
    """What keeping the pin means, and how to remove it later."""
    return (
        f"Node affinity kept: {code(move.namespace + '/' + move.vm)} stays on {code(move.target)}. "
        f"To remove it later: `vm-rebalance unpin {move.namespace}/{move.vm}`\n"
    )


# ------------------------------------------------------------------------------ lifecycle (seed 004)

ACTION_IMPACT = {
    Action.START: "start: consumes resources (CPU/memory) on the node it is scheduled to",
    Action.STOP: "stop: graceful shutdown; the VM's services stop until it is started again",
    Action.RESTART: "restart: brief interruption (~1-2 min): stop, verify stopped, start, verify running",
}

_AFTER = {
    Action.START: "Running, consuming resources (CPU/memory). Access: `virtctl console` or SSH. "
    "RunStrategy: Always (restarts on crash)",
    Action.STOP: "Stopped, resources freed. State preserved. RunStrategy: Halted (stays off)",
    Action.RESTART: "Running after stop + start. Brief interruption. Monitor the application's logs. "
    "RunStrategy: Always",
}


def lifecycle_confirmation_markdown(action: Action, rows: Sequence[dict[str, object]]) -> str:
    """Seed 004 step 1: the operation to confirm (rows: namespace, name, status, node of each VM)."""
    if len(rows) == 1:
        row = rows[0]
        out = ["## VM Lifecycle Operation", "", "| Parameter | Value | Impact |", "|-----------|-------|--------|"]
        out.append(f"| VM Name | {code(row['name'])} | current status: {md(row.get('status') or '-')} |")
        out.append(f"| Namespace | {code(row['namespace'])} | |")
        out.append(f"| Action | `{action.value}` | {md(ACTION_IMPACT[action])} |")
    else:
        out = [f"## VM Lifecycle Operation: {action.value} {len(rows)} VMs", ""]
        out += ["| VM | Namespace | Current Status | Node | Action | Impact |", "|---|---|---|---|---|---|"]
        for row in rows:
            out.append(
                f"| {md(row['name'])} | {md(row['namespace'])} | {md(row.get('status') or '-')} | "
                f"{md(row.get('node') or '-')} | {action.value} | {md(ACTION_IMPACT[action].split(': ', 1)[1])} |"
            )
    return "\n".join(out) + "\n"


def lifecycle_result_markdown(result: LifecycleResult) -> str:
    """Seed 004 step 3 for one VM: success with its run strategy and what it means, or the failure with
    causes and troubleshooting."""
    vm, ns, action = code(result.name), code(result.namespace), result.action
    if result.status in (LifecycleStatus.DONE, LifecycleStatus.ALREADY):
        title = action.value.capitalize()
        out = [f"## ✓ VM {title} Successful", ""]
        out.append(
            f"**VM**: {vm} | **Namespace**: {ns} | **Action**: {action.value} | "
            f"**RunStrategy**: {md(result.run_strategy or '-')} | **Status**: {md(result.printable_status or '-')}"
        )
        if result.status is LifecycleStatus.ALREADY:
            out += ["", f"ℹ️ {md(result.message or 'already in the desired state')} (not an error)"]
        out += ["", f"**Impact**: {_AFTER[action]}"]
        out += [
            "",
            f"**Next**: `vm-rebalance inventory -n {result.namespace}` to see its status"
            + ("; use `restart` if you meant to restart it" if result.status is LifecycleStatus.ALREADY else ""),
        ]
        return "\n".join(out) + "\n"
    out = ["## ❌ Lifecycle Operation Failed", "", f"**Error**: {md(result.message or result.status.value)}", ""]
    out.append(f"**VM**: {vm} | **Namespace**: {ns} | **Action**: {action.value}")
    if action is Action.RESTART and result.printable_status == "Stopped":
        out += ["", "⚠️ The stop succeeded but the start did not: **the VM is stopped.**"]
    out += [
        "",
        "**Causes**: VM not found | RBAC denied | VM in transition (wait 30-60s) | Resource constraints (start)",
        "",
        "**Troubleshoot**:",
        f"1. `vm-rebalance inventory -n {result.namespace}` to verify the VM exists and see its status",
        f"2. Check RBAC: `kubectl auth can-i update virtualmachines/start -n {result.namespace}` "
        "(subresources.kubevirt.io)",
        f"3. View the VM's status and events: `kubectl describe vm {result.name} -n {result.namespace}`",
        "4. For a start: check the nodes' capacity (`vm-rebalance inventory`)",
    ]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ the final report (seed 001 step 6)


def _peak(nodes: Sequence[Mapping[str, Any]], when: str) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for node in nodes:
        load = node.get(when)
        if not isinstance(load, dict):
            continue
        values = [v for v in (load.get("cpu"), load.get("memory")) if isinstance(v, int | float)]
        if values and (best is None or max(values) > best[1]):
            best = (str(node["name"]), float(max(values)))
    return best


def _average_headroom(nodes: Sequence[Mapping[str, Any]], when: str) -> float | None:
    rooms = []
    for node in nodes:
        load = node.get(when)
        if not isinstance(load, dict):
            continue
        values = [v for v in (load.get("cpu"), load.get("memory")) if isinstance(v, int | float)]
        if values:
            rooms.append(1.0 - max(values))
    return sum(rooms) / len(rooms) if rooms else None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    if not minutes:
        return f"{secs} seconds"
    return f"{minutes} minute{'s' if minutes != 1 else ''} {secs} seconds"


def improvements_markdown(doc: Mapping[str, Any], *, elapsed_seconds: float | None, resume_hint: str | None) -> str:
    """Seed 001 step 6's "Improvements Achieved" and "Next Steps", from a RebalanceReport document whose
    "after" figures were read back from the cluster. Nothing is claimed that the document does not hold."""
    nodes = [n for n in doc.get("nodes") or [] if isinstance(n, dict)]
    metrics = doc.get("metrics") or {}
    before = metrics.get("before") or {}
    after = metrics.get("after") or {}
    out = ["**Improvements Achieved:**"]
    if not after:
        out.append("- the cluster could not be read back after execution: check it with `vm-rebalance inventory`")
    for key, label in (("cpu_stddev", "CPU"), ("memory_stddev", "Memory")):
        b, a = before.get(key), after.get(key)
        if isinstance(b, int | float) and isinstance(a, int | float):
            mark = "✓" if a <= b else "⚠️"
            out.append(f"- {mark} **{label} balance**: std dev {a:.1f} % (was {b:.1f} %)")
    peak_before, peak_after = _peak(nodes, "before"), _peak(nodes, "after")
    if peak_after is not None:
        was = f" (was {peak_before[1] * 100:.0f} % max, {md(peak_before[0])})" if peak_before else ""
        if peak_after[1] < 0.70:
            out.append(f"- ✓ **No node exceeding 70 % utilization**{was}")
        else:
            out.append(f"- ⚠️ **Highest node**: {md(peak_after[0])} at {peak_after[1] * 100:.0f} %{was}")
    # With the same total load the average headroom barely moves; what a move buys is room on the
    # tightest node, so that is what is reported.
    room_after = _average_headroom(nodes, "after")
    if peak_after is not None and room_after is not None:
        was = f" (was {(1 - peak_before[1]) * 100:.0f} %)" if peak_before else ""
        out.append(
            f"- ✓ **Cluster capacity headroom**: at least {(1 - peak_after[1]) * 100:.0f} % free on every node{was}, "
            f"{room_after * 100:.0f} % on average"
        )
    if elapsed_seconds is not None:
        out.append(f"- ✓ **Total execution time**: {_duration(elapsed_seconds)}")
    out += ["", "**Next Steps:**"]
    if doc.get("complete"):
        out.append("- Monitor the cluster for 24-48 hours to make sure the improvement holds")
    elif resume_hint:
        out.append(f"- Fix the cause shown above, then {resume_hint}")
    pinned = [str(p) for p in doc.get("pinned") or []]
    for ref in pinned:
        out.append(f"- {md(ref)} is pinned to its new node: `vm-rebalance unpin {ref}` for long-term flexibility")
    out.append("- `vm-rebalance inventory` to verify that every VM is healthy")
    return "\n".join(out) + "\n"
