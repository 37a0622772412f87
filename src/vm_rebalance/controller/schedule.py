"""When a policy plans and when plans may execute: schedules (interval or cron) and maintenance windows.

Pure functions of the time given to them (no clock inside), unit-tested alone.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vm_rebalance.errors import ConfigError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MIN_INTERVAL_SECONDS = 10
UTC_ZONE = ZoneInfo("UTC")


def parse_duration(text: str, *, field: str) -> timedelta:
    """``1h30m``, ``15m``, ``90s`` (Go's duration syntax, hours / minutes / seconds) → timedelta.

    Raises:
        ConfigError: not such a duration, or under ten seconds.
    """
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ConfigError(f"{field}: '{text}' is not a duration such as 30m, 1h30m or 90s")
    hours, minutes, seconds = (int(g or 0) for g in m.groups())
    delta = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if delta.total_seconds() < MIN_INTERVAL_SECONDS:
        raise ConfigError(f"{field}: {text} is too short (at least {MIN_INTERVAL_SECONDS}s)")
    return delta


def zone(name: str | None, *, field: str) -> ZoneInfo:
    """An IANA time zone (default UTC).

    Raises:
        ConfigError: an unknown zone.
    """
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{field}: unknown time zone '{name}' (use an IANA name such as Europe/Berlin)") from exc


@dataclass(frozen=True, slots=True)
class Schedule:
    """Plan every ``interval``, or at the times of a ``cron`` expression in ``tz``."""

    interval: timedelta | None = None
    cron: str | None = None
    tz: ZoneInfo = UTC_ZONE

    def describe(self) -> str:
        """For status messages."""
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.tz.key})"
        assert self.interval is not None
        return f"every {_human(self.interval)}"

    def next_after(self, last: datetime | None, now: datetime) -> datetime:
        """When the next plan is due, given the last scheduled time (None: never planned).

        An interval policy plans at once the first time, then ``interval`` after the last run; a
        cron policy plans at the cron expression's next time after the last run (or after now).
        """
        if self.cron is not None:
            from croniter import croniter

            start = (last or now).astimezone(self.tz)
            nxt: datetime = croniter(self.cron, start).get_next(datetime)
            return nxt
        assert self.interval is not None
        return now if last is None else last + self.interval


def parse_schedule(spec: object) -> Schedule:
    """The ``schedule`` of a policy: ``{interval: 30m}`` or ``{cron: "0 2 * * *", timeZone: …}``.

    Raises:
        ConfigError: neither or both, a bad duration, a bad cron expression or an unknown zone.
    """
    if spec is None:
        return Schedule(interval=timedelta(hours=1))
    if not isinstance(spec, dict):
        raise ConfigError("schedule must be an object with interval or cron")
    interval, cron = spec.get("interval"), spec.get("cron")
    if interval and cron:
        raise ConfigError("schedule: give interval or cron, not both")
    tz = zone(spec.get("timeZone"), field="schedule.timeZone")
    if cron:
        from croniter import croniter

        if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ConfigError(f"schedule.cron: '{cron}' is not a cron expression (five fields: m h dom mon dow)")
        return Schedule(cron=cron, tz=tz)
    if not interval:
        return Schedule(interval=timedelta(hours=1), tz=tz)
    return Schedule(interval=parse_duration(str(interval), field="schedule.interval"), tz=tz)


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly maintenance window: ``days`` from ``start`` to ``end`` (over midnight when end ≤ start)."""

    days: tuple[int, ...]
    """0 = Monday … 6 = Sunday: the days the window *starts* on."""
    start: time
    end: time
    tz: ZoneInfo

    def _span(self) -> timedelta:
        s = timedelta(hours=self.start.hour, minutes=self.start.minute)
        e = timedelta(hours=self.end.hour, minutes=self.end.minute)
        return e - s if e > s else e - s + timedelta(days=1)

    def open_at(self, when: datetime) -> datetime | None:
        """If the window is open at ``when``, when it closes; else None."""
        local = when.astimezone(self.tz)
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            begin = datetime.combine(day, self.start, tzinfo=self.tz)
            close = begin + self._span()
            if begin <= local < close:
                return close
        return None

    def next_open(self, when: datetime) -> datetime:
        """The next time the window opens after ``when``."""
        local = when.astimezone(self.tz)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() in self.days:
                begin = datetime.combine(day, self.start, tzinfo=self.tz)
                if begin > local:
                    return begin
        raise AssertionError("a weekly window opens within eight days")  # pragma: no cover


_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def parse_windows(spec: object) -> tuple[Window, ...]:
    """``maintenanceWindows``: ``[{days: [Sat, Sun], start: "22:00", end: "04:00", timeZone: …}]``.

    Raises:
        ConfigError: a malformed window (names it by index).
    """
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise ConfigError("maintenanceWindows must be a list")
    out = []
    for i, item in enumerate(spec):
        where = f"maintenanceWindows[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object with start and end")
        times = []
        for key in ("start", "end"):
            m = _HHMM.fullmatch(str(item.get(key) or ""))
            if m is None:
                raise ConfigError(f"{where}.{key}: '{item.get(key)}' is not a time HH:MM (24 h)")
            times.append(time(int(m.group(1)), int(m.group(2))))
        if times[0] == times[1]:
            raise ConfigError(f"{where}: start and end are the same time")
        days = item.get("days") or list(DAYS)
        if not isinstance(days, list) or any(d not in DAYS for d in days):
            raise ConfigError(f"{where}.days: use {', '.join(DAYS)}")
        out.append(
            Window(
                days=tuple(sorted({DAYS.index(d) for d in days})),
                start=times[0],
                end=times[1],
                tz=zone(item.get("timeZone"), field=f"{where}.timeZone"),
            )
        )
    return tuple(out)


def window_state(windows: Sequence[Window], now: datetime) -> tuple[bool, datetime | None]:
    """(open now, and then when it closes; or closed, and then when the next one opens).

    No windows: always open, never closing (None).
    """
    if not windows:
        return True, None
    closes = [c for c in (w.open_at(now) for w in windows) if c is not None]
    if closes:
        return True, max(closes)
    return False, min(w.next_open(now) for w in windows)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"
