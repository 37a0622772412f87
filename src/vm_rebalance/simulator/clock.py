"""Simulated time: seconds since the simulation began, scaled from wall time or advanced by hand.

Controllers read only this clock, so tests advance a manual clock and never sleep.
"""

import datetime
import math
import threading
import time

#: The epoch of a manual clock, fixed so that timestamps are reproducible.
DEFAULT_MANUAL_EPOCH = datetime.datetime(2026, 8, 1, 10, 0, 0, tzinfo=datetime.UTC)


def format_rfc3339(moment: datetime.datetime) -> str:
    """RFC3339 with second precision and a Z suffix, as metav1.Time serialises."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    """Parse a metav1.Time string (``2026-08-01T10:00:00Z``, fractions and offsets accepted)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class SimClock:
    """Simulated seconds (a float that starts at 0) mapped to RFC3339 wall-like timestamps.

    ``manual=True`` gives a clock that only moves through :meth:`advance`; otherwise simulated time is
    wall time since construction multiplied by ``time_scale`` (simulated seconds per wall second), plus
    whatever :meth:`advance` added.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        manual: bool = False,
        epoch: datetime.datetime | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.manual = manual
        if epoch is None:
            epoch = DEFAULT_MANUAL_EPOCH if manual else datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.epoch = epoch
        self._lock = threading.Lock()
        self._offset = 0.0
        self._wall_start = time.monotonic()
        self._iso_cache: tuple[int, str] = (-(2**62), "")

    def now(self) -> float:
        """Simulated seconds since the start."""
        with self._lock:
            if self.manual:
                return self._offset
            return (time.monotonic() - self._wall_start) * self.time_scale + self._offset

    def advance(self, seconds: float) -> float:
        """Move simulated time forward; returns the new now()."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def datetime_at(self, sim_seconds: float) -> datetime.datetime:
        """The wall-like moment of a simulated time."""
        return self.epoch + datetime.timedelta(seconds=sim_seconds)

    def iso(self, sim_seconds: float) -> str:
        """RFC3339 timestamp of a simulated time."""
        whole = math.floor(sim_seconds)
        cached = self._iso_cache
        if cached[0] == whole:
            return cached[1]
        text = format_rfc3339(self.datetime_at(whole))
        self._iso_cache = (whole, text)
        return text

    def now_iso(self) -> str:
        """RFC3339 timestamp of now."""
        return self.iso(self.now())

    def sim_seconds_of(self, timestamp: str) -> float:
        """The simulated time of an RFC3339 timestamp (negative before the epoch)."""
        return (parse_rfc3339(timestamp) - self.epoch).total_seconds()

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take on the wall clock."""
        return sim_seconds / self.time_scale
