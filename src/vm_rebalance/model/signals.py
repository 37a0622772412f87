"""How usage was observed: the window, the statistic, pressure stall information, the series (pure data).

A usage source (sources/) says *what* nodes and VMs used; these types say *how* it was seen:
one instant reading or a window of history (mean or a percentile), pressure stall information
(PSI, the kernel's share of time tasks waited for CPU, memory or I/O), and the utilisation over
the window for charts. The cluster state carries them (`ClusterState.observation`,
`Node.pressure`), so the planner, the report and the renderers say which signal they acted on.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


def _fraction(value: float | None, name: str) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a fraction from 0 to 1, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pressure:
    """Pressure stall information of a node over the observation's pressure window.

    Fractions of time (0–1): ``cpu`` — some runnable task waited for a CPU; ``memory`` — some task
    stalled on memory (reclaim, swap-in, thrashing); ``memory_full`` — all tasks stalled at once;
    ``io`` — some task waited for I/O. None: not measured.
    """

    cpu: float | None = None
    memory: float | None = None
    memory_full: float | None = None
    io: float | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory", "memory_full", "io"):
            _fraction(getattr(self, name), f"pressure.{name}")

    def to_document(self) -> dict[str, float | None]:
        """The fractions as a JSON object (``cpu``, ``memory``, ``memory_full``, ``io``)."""
        return {"cpu": self.cpu, "memory": self.memory, "memory_full": self.memory_full, "io": self.io}


@dataclass(frozen=True, slots=True)
class UtilisationSeries:
    """A node's utilisation over the window: sample times (unix seconds) and CPU / memory fractions of capacity."""

    times: tuple[float, ...]
    cpu: tuple[float, ...]
    memory: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.times) == len(self.cpu) == len(self.memory):
            raise ValueError("a utilisation series needs as many CPU and memory values as times")


_NO_SERIES: Mapping[str, UtilisationSeries] = MappingProxyType({})


def duration_text(seconds: float) -> str:
    """``3600`` → ``1h``, ``5400`` → ``90m``, ``90`` → ``90s``, ``86400`` → ``1d``: the form the flags take."""
    s = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """How the usage in a cluster state was observed."""

    source: str
    """What measured it, for people: ``Prometheus``, ``Thanos querier``, ``kubelet stats summary``,
    ``metrics.k8s.io``."""
    window_seconds: float | None = None
    """The window the usage summarises; None for one instant reading."""
    percentile: float | None = None
    """The percentile over the window (e.g. 95); None for the mean."""
    pressure_window_seconds: float | None = None
    """The window PSI is averaged over (the stats summary: 300 s); None when there is no PSI."""
    end: datetime | None = None
    """The end of the window (when it was read)."""
    series: Mapping[str, UtilisationSeries] = field(default_factory=lambda: _NO_SERIES)
    """Per node: utilisation over the window (for charts), when the source keeps history."""

    def __post_init__(self) -> None:
        if self.window_seconds is not None and not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ValueError("an observation window must be a positive number of seconds")
        if self.percentile is not None and not 0.0 < self.percentile <= 100.0:
            raise ValueError("a percentile must be above 0 and at most 100")

    @property
    def sustained(self) -> bool:
        """Whether the usage summarises a window (rather than one reading)."""
        return self.window_seconds is not None

    @property
    def statistic(self) -> str:
        """``mean over 1h``, ``p95 over 1h`` or ``one instant reading``."""
        if self.window_seconds is None:
            return "one instant reading"
        stat = "mean" if self.percentile is None else f"p{self.percentile:g}"
        return f"{stat} over {duration_text(self.window_seconds)}"

    def describe(self) -> str:
        """The basis line: what was used and for which window (e.g. ``Prometheus: mean over 1h ending
        10:00 UTC; PSI over the same window``)."""
        text = f"{self.source}: {self.statistic}"
        if self.end is not None and self.window_seconds is not None:
            text += f" ending {self.end.strftime('%Y-%m-%d %H:%M UTC')}"
        if self.pressure_window_seconds is None:
            text += "; no pressure (PSI)"
        elif self.pressure_window_seconds == self.window_seconds:
            text += "; PSI over the same window"
        else:
            text += f"; PSI averaged over {duration_text(self.pressure_window_seconds)}"
        return text
