"""The simulator's own quantity parsing and formatting."""

import pytest

from vm_rebalance.simulator.quantity import (
    cpu_millicores,
    format_cpu_nanocores,
    format_memory_bytes,
    format_memory_ki,
    memory_bytes,
)


@pytest.mark.parametrize(
    ("text", "millicores"), [("100m", 100), ("2", 2000), ("1.5", 1500), ("250000000n", 250), ("1u", 1), (3, 3000)]
)
def test_cpu(text: str, millicores: int) -> None:
    assert cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 2**29),
        ("1k", 1000),
        ("1e3", 1000),
        ("2M", 2_000_000),
        ("1000", 1000),
        ("1Ki", 1024),
    ],
)
def test_memory(text: str, count: int) -> None:
    assert memory_bytes(text) == count


def test_bad_quantity() -> None:
    with pytest.raises(ValueError):
        memory_bytes("lots")


def test_formatting() -> None:
    assert format_cpu_nanocores(250_000_000) == "250m"
    assert format_cpu_nanocores(2_000_000_000) == "2"
    assert format_cpu_nanocores(123_456_789) == "123456789n"
    assert format_memory_ki(2048) == "2Ki"
    assert format_memory_ki(1000) == "1000"
    assert format_memory_bytes(4 * 2**30) == "4Gi"
    assert format_memory_bytes(1500) == "1500"
