"""Kubernetes resource quantities, parsed and formatted independently of the tool's own parser.

Only what the simulator needs: CPU in millicores or nanocores, memory in bytes.
"""

from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}

GIB = 2**30
MIB = 2**20


def parse_quantity(value: str | int | float) -> Decimal:
    """A quantity as an exact decimal number of base units.

    Raises:
        ValueError: not a Kubernetes quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = value.strip()
    if not text:
        raise ValueError("empty quantity")
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], value) * factor
    suffix = text[-1]
    if suffix.isalpha() and suffix in _DECIMAL:
        return _number(text[:-1], value) * _DECIMAL[suffix]
    return _number(text, value)  # plain number or scientific notation (1e3)


def _number(text: str, original: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {original!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a quantity: {original!r}")
    return number


def cpu_millicores(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as the kubelet does."""
    milli = parse_quantity(value) * 1000
    return int(milli.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes, rounded up."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu_millicores(millicores: int) -> str:
    """Canonical CPU quantity: ``2`` for whole cores, else ``250m``."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_cpu_nanocores(nanocores: int) -> str:
    """metrics-server style CPU usage: ``250m`` when exact in millicores, else ``123456789n``."""
    if nanocores % 1_000_000 == 0:
        return format_cpu_millicores(nanocores // 1_000_000)
    return f"{nanocores}n"


def format_memory_bytes(count: int) -> str:
    """Canonical binary memory quantity: the largest exact Ki/Mi/Gi/Ti suffix, else bytes."""
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        factor = _BINARY[suffix]
        if count and count % factor == 0:
            return f"{count // factor}{suffix}"
    return str(count)


def format_memory_ki(count: int) -> str:
    """metrics-server style memory usage: ``1419920Ki`` when divisible by 1024, else bytes."""
    return f"{count // 1024}Ki" if count % 1024 == 0 else str(count)
