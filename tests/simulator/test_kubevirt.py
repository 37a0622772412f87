"""What KubeVirt derives from a VM spec, and the migration duration model."""

from vm_rebalance.simulator.kubevirt import launcher_requests, memory_overhead_bytes, run_strategy, vcpus
from vm_rebalance.simulator.migration import migration_seconds

GIB = 2**30
MIB = 2**20


def test_vcpus_multiply_topology_and_skip_zeros() -> None:
    assert vcpus({"domain": {"cpu": {"cores": 2, "sockets": 2, "threads": 0}}}) == 4
    assert vcpus({"domain": {"resources": {"requests": {"cpu": "1500m"}}}}) == 2
    assert vcpus({}) == 1


def test_overhead_of_a_4gi_one_vcpu_guest_matches_kubevirt_docs() -> None:
    spec = {"domain": {"cpu": {"cores": 1}, "memory": {"guest": "4Gi"}}}
    assert memory_overhead_bytes(spec) == 8 * MIB + 240 * MIB + 8 * MIB + 8 * MIB + 32 * MIB


def test_explicit_requests_win() -> None:
    spec = {
        "domain": {
            "cpu": {"cores": 8},
            "memory": {"guest": "4Gi"},
            "resources": {"requests": {"cpu": "2", "memory": "6Gi"}, "overcommitGuestOverhead": True},
        }
    }
    assert launcher_requests(spec) == {"cpu": 2000, "memory": 6 * GIB, "devices.kubevirt.io/kvm": 1}


def test_run_strategy_from_running() -> None:
    assert run_strategy({"spec": {"running": True}}) == "Always"
    assert run_strategy({"spec": {"running": False}}) == "Halted"
    assert run_strategy({"spec": {"runStrategy": "Manual"}}) == "Manual"


def test_precopy_model() -> None:
    assert migration_seconds(4 * GIB, GIB, 0, 900) == 4.0
    slow = migration_seconds(4 * GIB, GIB, 300 * MIB, 900)
    assert slow is not None and 4.0 < slow < 7.0
    assert migration_seconds(4 * GIB, GIB, 2 * GIB, 900) is None
