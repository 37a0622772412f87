"""What every failure-path test asserts: the invariants of issues 11 and 16, checked against the
simulator's own state (an independent implementation) and the tool's journal and report.

* nothing lost: no VM that was running is left stopped (unless the test says a human chose so);
* no duplicate migration: never two unfinished migrations of one VMI at any moment;
* limits never exceeded (KubeVirt's running count and every unfinished migration, ours or not);
* no pin left unreported: every VM carrying vm-rebalance's pin is one the report names as pinned
  (or the test expects);
* journal == cluster: every move the journal records as succeeded is where it says, and a finished
  journal has no move left in progress;
* the message says what state the cluster is in: every attempted move of the report carries the
  state read from the cluster, and it matches the simulator.
"""

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from executor.simhelpers import VMIMS, Sim
from vm_rebalance.cli import execute as execute_cli
from vm_rebalance.cli.main import run
from vm_rebalance.executor.journal import Journal, RecordStatus
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION

Obj = dict[str, Any]


@pytest.fixture
def fast_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI with a private state directory and quick polling; yields the state directory."""
    state = tmp_path / "state"
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(state))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    orig = execute_cli._options
    monkeypatch.setattr(execute_cli, "_options", lambda *a: dataclasses.replace(orig(*a), poll_interval_seconds=0.05))
    import functools

    from vm_rebalance.executor import lifecycle

    monkeypatch.setattr(
        "vm_rebalance.service.vms.run_lifecycle", functools.partial(lifecycle.run_lifecycle, poll_interval_seconds=0.05)
    )
    yield state


def cli(sim: Sim, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process; (exit code, stdout + stderr). No kubeconfig path may appear in the output."""
    with pytest.raises(SystemExit) as info:
        run(["--kubeconfig", str(sim.kubeconfig), *args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert str(sim.kubeconfig) not in text and "secret-dir" not in text
    return int(info.value.code or 0), text


def json_doc(text: str) -> Obj:
    """The JSON document printed on stdout (after any progress lines)."""
    assert "{" in text, f"no JSON document in the output:\n{text}"
    doc, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    return dict(doc)


def report_json(sim: Sim, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Obj]:
    code, text = cli(sim, *args, "-o", "json", capsys=capsys)
    return code, json_doc(text)


def vm_pinned_by_us(sim: Sim) -> list[str]:
    """VMs whose template carries vm-rebalance's (annotated) pin."""
    out = []
    for vm in sim.cluster.store.iter_objects(("kubevirt.io", "virtualmachines")):
        if PIN_ANNOTATION in (vm["metadata"].get("annotations") or {}):
            out.append(vm["metadata"]["name"])
    return sorted(out)


def journals(state_dir: Path) -> list[Journal]:
    return (
        [Journal.open(p.stem, directory=state_dir) for p in sorted(state_dir.glob("*.json"))]
        if state_dir.exists()
        else []
    )


def no_duplicate_migrations(sim: Sim) -> None:
    """Never two unfinished migrations of one VMI at once (KubeVirt would refuse the second: a duplicate)."""
    assert all(n <= 1 for n in sim.inflight.peak_per_vmi.values()), sim.inflight.peak_per_vmi
    unfinished: dict[str, int] = {}
    for m in sim.cluster.store.iter_objects(VMIMS):
        if (m.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            key = f"{m['metadata'].get('namespace')}/{m['spec']['vmiName']}"
            unfinished[key] = unfinished.get(key, 0) + 1
    assert all(n <= 1 for n in unfinished.values()), unfinished


def journal_matches_cluster(sim: Sim, state_dir: Path) -> None:
    """Every move a journal calls succeeded is where it says; a finished journal has nothing in progress."""
    for journal in journals(state_dir):
        for rec in journal.moves.values():
            if rec.status is RecordStatus.SUCCEEDED and rec.method == "live":
                assert sim.node_of(rec.vm, rec.namespace) == rec.target, (journal.plan_id, rec)
            if journal.finished:
                assert rec.status is not RecordStatus.RUNNING, (journal.plan_id, rec)


def report_states_match(sim: Sim, report: Obj) -> None:
    """Every attempted move's reported state was read from the cluster and agrees with it."""
    for m in report.get("moves") or ():
        if m["status"] in ("not attempted", "pending"):
            continue
        state = m.get("state")
        assert state, f"move {m['id']} reported without reading the cluster: {m}"
        node = sim.node_of(m["vm"], m["namespace"])
        if sim.running(m["vm"], m["namespace"]):
            assert f"Running on {node}" in state, (state, node)
        else:
            assert state.startswith(("not running", "the VM does not exist")), state


def assert_invariants(
    sim: Sim,
    state_dir: Path,
    *,
    report: Obj | None = None,
    pinned: Sequence[str] = (),
    stopped_by_choice: Sequence[str] = (),
    per_cluster: int = 5,
    per_node: int = 2,
) -> None:
    """The invariants of the fault campaign (see the module docstring)."""
    rec = sim.cluster.recorder
    left_stopped = [v for v in rec.vms_left_stopped() if v.split("/", 1)[1] not in stopped_by_choice]
    assert left_stopped == [], left_stopped
    assert rec.migrations_left_non_final() == [], rec.migrations_left_non_final()
    assert rec.peak_running_migrations <= per_cluster, rec.summary()
    assert all(n <= per_node for n in rec.peak_outbound_per_node.values()), rec.summary()
    assert sim.inflight.peak_total <= per_cluster, sim.inflight
    assert all(n <= per_node for n in sim.inflight.peak_per_source.values()), sim.inflight.peak_per_source
    assert rec.capacity_overruns == []
    no_duplicate_migrations(sim)
    reported = {p.split("/", 1)[1] for p in (report or {}).get("pinned", ())}
    unreported = [v for v in vm_pinned_by_us(sim) if v not in reported and v not in pinned]
    assert unreported == [], f"pins nobody was told about: {unreported}"
    journal_matches_cluster(sim, state_dir)
    if report is not None:
        report_states_match(sim, report)


def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: private state and home, no real kubeconfig."""
    out = dict(os.environ)
    out.update(VM_REBALANCE_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path / "home"), COLUMNS="250", TERM="dumb")
    out.pop("KUBECONFIG", None)
    return out
