"""Label and field selectors as the list/watch query parameters spell them (kubevirt-api.md §8.4).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
``k>n``, ``k<n``. Field selectors: ``path=v``, ``path==v``, ``path!=v`` over dotted paths.
"""

import re
from collections.abc import Callable
from typing import Any

from .status import ApiError, bad_request

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _label_requirement(text: str) -> Predicate:
    m = _SET_RE.match(text)
    if m:
        key, op, raw = m.group(1), m.group(3), m.group(4)
        values = frozenset(v.strip() for v in raw.split(",") if v.strip())
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = _OP_RE.match(text)
    if m:
        key, op, value = m.group(1), m.group(3), m.group(4)
        if op in ("=", "=="):
            return lambda labels: labels.get(key) == value
        if op == "!=":
            return lambda labels: labels.get(key) != value
        try:
            bound = int(value)
        except ValueError:
            raise bad_request(
                f"unable to parse requirement: {text!r}: for 'gt', 'lt' operators, exactly one value is required"
            ) from None

        def compare(labels: Obj) -> bool:
            try:
                have = int(labels[key])
            except (KeyError, ValueError):
                return False
            return have > bound if op == ">" else have < bound

        return compare
    m = _EXISTS_RE.match(text)
    if m:
        negate, key = m.group(1) == "!", m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: found {text.strip()!r}, expected: in, notin, =, ==, !=, gt, lt")


def parse_label_selector(selector: str | None) -> Predicate | None:
    """A predicate over an object, or None for the empty selector.

    Raises:
        ApiError: 400 on a malformed selector.
    """
    if not selector or not selector.strip():
        return None
    reqs = [_label_requirement(r) for r in _split_requirements(selector)]

    def match(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def _field_value(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict):
        # e.g. event "source": kube-apiserver compares source.component
        return str(cur.get("component", ""))
    return str(cur)


def _field_requirement(path: str, value: str, *, negate: bool) -> Predicate:
    def match(obj: Obj) -> bool:
        return (_field_value(obj, path) == value) != negate

    return match


def parse_field_selector(selector: str | None, allowed: tuple[str, ...]) -> Predicate | None:
    """A predicate for a field selector; metadata.name and metadata.namespace are always allowed.

    Raises:
        ApiError: 400 ``field label not supported: <f>`` for a field the resource does not index.
    """
    if not selector or not selector.strip():
        return None
    permitted = {"metadata.name", "metadata.namespace", *allowed}
    reqs: list[Predicate] = []
    for raw in _split_requirements(selector):
        text = raw.strip()
        for op in ("!=", "==", "="):
            if op in text:
                path, value = (s.strip() for s in text.split(op, 1))
                break
        else:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{text}'")
        if path not in permitted:
            raise bad_request(f"field label not supported: {path}")
        reqs.append(_field_requirement(path, value, negate=op == "!="))
    return lambda obj: all(r(obj) for r in reqs)


def field_equals(selector: str | None, path: str) -> str | None:
    """The value of a plain ``path=value`` requirement (used to narrow a lookup by name)."""
    if not selector:
        return None
    for raw in _split_requirements(selector):
        text = raw.strip()
        if "!=" in text:
            continue
        for op in ("==", "="):
            if op in text:
                p, v = (s.strip() for s in text.split(op, 1))
                if p == path:
                    return v
                break
    return None


__all__ = ["ApiError", "field_equals", "parse_field_selector", "parse_label_selector"]
