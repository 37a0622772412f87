"""What the executor decides about KubeVirt: version parsing, deterministic migration names."""

from vm_rebalance.executor.kubevirt import migration_name, parse_version, supports_added_node_selector


def test_versions() -> None:
    assert parse_version("v1.6.2") == (1, 6) and parse_version("1.10.0-rc.1") == (1, 10)
    assert parse_version(None) is None and parse_version("garbage") is None
    assert supports_added_node_selector("v1.6.0") and supports_added_node_selector("v2.0.0")
    assert not supports_added_node_selector("v1.5.3") and not supports_added_node_selector(None)


def test_migration_name_is_deterministic_and_dns_safe() -> None:
    name = migration_name("0123456789abcdef", 12, 3)
    assert name == migration_name("0123456789abcdef", 12, 3) == "vmr-0123456789-12-3"
    assert name != migration_name("0123456789abcdef", 12, 4)
