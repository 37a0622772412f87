"""events.k8s.io/v1 Events are core/v1 Events seen through another schema (one storage, two APIs).

The field mapping is kube-apiserver's (``pkg/apis/events/v1/conversion.go``): ``note`` ⇔ ``message``,
``regarding`` ⇔ ``involvedObject``, ``reportingController`` ⇔ ``reportingComponent``,
``deprecatedSource`` ⇔ ``source``, ``deprecatedFirstTimestamp`` / ``deprecatedLastTimestamp`` /
``deprecatedCount`` ⇔ ``firstTimestamp`` / ``lastTimestamp`` / ``count``; ``eventTime``, ``series``,
``action``, ``reason``, ``related``, ``reportingInstance`` and ``type`` keep their names.
"""

from typing import Any

Obj = dict[str, Any]

_RENAMED = (
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_SAME = ("metadata", "eventTime", "series", "action", "reason", "related", "reportingInstance", "type")
_EMPTY: tuple[Any, ...] = (None, "", 0, {})


def to_events_v1(core: Obj) -> Obj:
    """An events.k8s.io/v1 Event from a stored core/v1 Event."""
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for field in _SAME:
        if field in core:
            out[field] = core[field]
    out.setdefault("eventTime", None)  # a legacy event has none; the real API serialises null too
    for new, old in _RENAMED:
        value = core.get(old)
        if value not in _EMPTY:
            out[new] = value
    return out


def from_events_v1(event: Obj) -> Obj:
    """The core/v1 Event stored for an events.k8s.io/v1 one."""
    out: Obj = {"apiVersion": "v1", "kind": "Event"}
    for field in _SAME:
        if field in event:
            out[field] = event[field]
    for new, old in _RENAMED:
        if event.get(new) not in _EMPTY:
            out[old] = event[new]
    out.setdefault("involvedObject", {})
    return out
