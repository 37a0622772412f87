"""Patch semantics: JSON merge (RFC 7386), strategic merge, JSON patch (RFC 6902) and server-side apply.

Server-side apply keeps a simplified field ownership: every manager owns a set of leaf paths
(lists are atomic leaves), stored in ``metadata.managedFields`` in the FieldsV1 shape. Conflicts,
``force`` and the error text follow kubevirt-api.md §8.7 / Appendix A.2.
"""

import copy
import json
from typing import Any

from .status import ApiError

Obj = dict[str, Any]
Path = tuple[str, ...]

_MISSING = object()


# -- JSON merge patch (RFC 7386) -------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; returns a new value (``target`` is not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -------------------------------------------------------------------------------

#: Lists merged by a key in strategic merge patches (the built-in types' ``patchMergeKey`` tags).
SMP_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "taints": "key",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "readinessGates": "conditionType",
    "hostAliases": "ip",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
#: Lists of scalars merged as sets.
SMP_SET_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (a subset: merge keys, ``$patch``, ``$deleteFromPrimitiveList``)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$retainKeys", "$patch")):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    return result


def _smp_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    merge_key = SMP_MERGE_KEYS.get(field)
    if merge_key is not None and all(isinstance(p, dict) for p in patch):
        if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
            return [copy.deepcopy(p) for p in patch if p.get("$patch") != "replace"]
        items = [copy.deepcopy(i) for i in current] if isinstance(current, list) else []
        for p in patch:
            ident = p.get(merge_key)
            index = next((n for n, i in enumerate(items) if isinstance(i, dict) and i.get(merge_key) == ident), None)
            if p.get("$patch") == "delete":
                if index is not None:
                    items.pop(index)
                continue
            if index is None:
                items.append(strategic_merge_patch({}, p))
            else:
                items[index] = strategic_merge_patch(items[index], p)
        return items
    if field in SMP_SET_LISTS and isinstance(current, list):
        return list(current) + [v for v in patch if v not in current]
    return copy.deepcopy(patch)


# -- JSON patch (RFC 6902) -------------------------------------------------------------------------------


class JsonPatchError(Exception):
    """A JSON patch that cannot be applied (bad op, missing path, failed test)."""


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise JsonPatchError(f"invalid array index {token!r}")
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise JsonPatchError(f"array index {idx} out of bounds")
    return idx


def _resolve(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for tok in tokens:
        if isinstance(cur, dict):
            if tok not in cur:
                raise JsonPatchError(f"missing path segment {tok!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, allow_end=False)]
        else:
            raise JsonPatchError(f"cannot traverse into a scalar at {tok!r}")
    return cur


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise JsonPatchError("add: parent is not a container")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise JsonPatchError("remove: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"remove: missing key {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, allow_end=False))
    raise JsonPatchError("remove: parent is not a container")


def json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch; returns a new document.

    Raises:
        JsonPatchError: invalid operation, missing path or a failed ``test``.
    """
    if not isinstance(ops, list):
        raise JsonPatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise JsonPatchError(f"invalid operation {op!r}")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, tokens)
        elif kind == "replace":
            if not tokens:
                doc = copy.deepcopy(op.get("value"))
                continue
            _resolve(doc, tokens)
            parent = _resolve(doc, tokens[:-1])
            if isinstance(parent, list):
                parent[_index(parent, tokens[-1], allow_end=False)] = copy.deepcopy(op.get("value"))
            else:
                parent[tokens[-1]] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            value = _remove(doc, _pointer(op["from"]))
            doc = _add(doc, tokens, value)
        elif kind == "copy":
            doc = _add(doc, tokens, copy.deepcopy(_resolve(doc, _pointer(op["from"]))))
        elif kind == "test":
            try:
                have = _resolve(doc, tokens)
            except JsonPatchError:
                have = _MISSING
            if have is _MISSING or have != op.get("value"):
                raise JsonPatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise JsonPatchError(f"Unexpected kind: {kind}")
    return doc


# -- managed fields and server-side apply ----------------------------------------------------------------

#: Metadata fields that field management tracks; the rest (name, uid, resourceVersion…) belong to the server.
_TRACKED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


def leaf_paths(obj: Any, *, include_status: bool) -> dict[Path, Any]:
    """Leaf paths of an object with their values; lists are atomic leaves, empty maps are leaves."""
    out: dict[Path, Any] = {}

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, (*path, k))
        else:
            out[path] = value

    if not isinstance(obj, dict):
        return out
    for top, value in obj.items():
        if top in ("apiVersion", "kind"):
            continue
        if top == "metadata":
            if isinstance(value, dict):
                for field in _TRACKED_METADATA:
                    if field in value:
                        walk(value[field], ("metadata", field))
            continue
        if top == "status" and not include_status:
            continue
        walk(value, (top,))
    return out


def path_string(path: Path) -> str:
    return "".join(f".{p}" for p in path)


def fields_v1(paths: set[Path]) -> Obj:
    """The FieldsV1 encoding (``{"f:spec": {"f:runStrategy": {}}}``) of a set of leaf paths."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def paths_from_fields_v1(fields: Any) -> set[Path]:
    """Leaf paths of a FieldsV1 tree (``k:``/``v:``/``i:`` list entries are folded into their list)."""
    out: set[Path] = set()

    def walk(node: Any, path: Path) -> None:
        if not isinstance(node, dict):
            return
        children = {k: v for k, v in node.items() if k != "."}
        if not children:
            if path:
                out.add(path)
            return
        for k, v in children.items():
            if k.startswith("f:"):
                walk(v, (*path, k[2:]))
            elif path:
                out.add(path)  # an associative/set list entry: the whole list counts as one leaf here

    walk(fields, ())
    return out


def _entry_identity(entry: Obj) -> tuple[str, str, str, str]:
    operation = entry.get("operation", "Update")
    api_version = entry.get("apiVersion", "") if operation == "Update" else ""
    return (entry.get("manager", ""), operation, api_version, entry.get("subresource", ""))


def _display_manager(entry: Obj) -> str:
    text = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        text += f' with subresource "{entry["subresource"]}"'
    if entry.get("operation", "Update") == "Update" and entry.get("apiVersion"):
        text += f" using {entry['apiVersion']}"
    return text


def _covers(owned: Path, path: Path) -> bool:
    """Whether an owned leaf and a path overlap (one is a prefix of the other)."""
    n = min(len(owned), len(path))
    return owned[:n] == path[:n]


def _set_entry(entries: list[Obj], identity_entry: Obj, paths: set[Path], now: str) -> list[Obj]:
    ident = _entry_identity(identity_entry)
    out = [e for e in entries if _entry_identity(e) != ident]
    if paths:
        entry = dict(identity_entry)
        entry["time"] = now
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fields_v1(paths)
        out.append(entry)
    return out


def _strip_paths(entries: list[Obj], except_ident: tuple[str, str, str, str] | None, paths: set[Path]) -> list[Obj]:
    """Remove ``paths`` (and overlapping leaves) from all entries but ``except_ident``; drop empty ones."""
    out: list[Obj] = []
    for e in entries:
        if _entry_identity(e) == except_ident:
            out.append(e)
            continue
        owned = paths_from_fields_v1(e.get("fieldsV1"))
        kept = {o for o in owned if not any(_covers(o, p) for p in paths)}
        if kept == owned:
            out.append(e)
        elif kept:
            e2 = dict(e)
            e2["fieldsV1"] = fields_v1(kept)
            out.append(e2)
    return out


def record_update(old: Obj | None, new: Obj, *, manager: str, api_version: str, subresource: str, now: str) -> None:
    """Record an Update operation (create, PUT, non-apply PATCH) in ``new``'s managedFields, in place.

    The manager takes the leaves whose value changed (all of them on create); other managers lose them.
    """
    include_status = subresource == "status"
    new_leaves = leaf_paths(new, include_status=include_status)
    if include_status:
        new_leaves = {p: v for p, v in new_leaves.items() if p[0] == "status"}
    old_leaves = leaf_paths(old, include_status=include_status) if old is not None else {}
    changed = {p for p, v in new_leaves.items() if old_leaves.get(p, _MISSING) != v}
    meta = new.setdefault("metadata", {})
    entries: list[Obj] = list(meta.get("managedFields") or [])
    identity: Obj = {"manager": manager, "operation": "Update", "apiVersion": api_version}
    if subresource:
        identity["subresource"] = subresource
    ident = _entry_identity(identity)
    entries = _strip_paths(entries, ident, changed)
    current = next((e for e in entries if _entry_identity(e) == ident), None)
    owned = paths_from_fields_v1(current.get("fieldsV1")) if current else set()
    owned = {p for p in owned if p in new_leaves or any(_covers(p, q) for q in new_leaves)}
    if changed or current:
        entries = _set_entry(entries, identity, owned | changed, now)
    # prune leaves that no longer exist in the object from every entry
    meta["managedFields"] = [e for e in entries if paths_from_fields_v1(e.get("fieldsV1"))] or None
    if meta["managedFields"] is None:
        del meta["managedFields"]


def _conflict_error(conflicts: list[tuple[Obj, Path]]) -> ApiError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {_display_manager(e)}",
            "field": path_string(p),
        }
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_display_manager(e)}: {path_string(p)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for e, p in conflicts:
            by_manager.setdefault(_display_manager(e), []).append(path_string(p))
        lines: list[str] = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {p}" for p in by_manager[manager])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def _delete_path(obj: Obj, path: Path) -> None:
    parents: list[tuple[Obj, str]] = []
    cur: Any = obj
    for part in path[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return
        parents.append((cur, part))
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # drop maps emptied by the removal (but never the top-level sections)
    for parent, part in reversed(parents):
        if isinstance(parent.get(part), dict) and not parent[part] and len(parents) > 1:
            parent.pop(part)
        else:
            break


def _apply_merge(live: Any, applied: Any) -> Any:
    """Merge an applied configuration into the live object: maps merge, lists and scalars replace."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            out[k] = _apply_merge(live.get(k), v) if v is not None else None
        return {k: v for k, v in out.items() if v is not None}
    return copy.deepcopy(applied)


def server_side_apply(
    live: Obj | None,
    applied: Obj,
    *,
    manager: str,
    force: bool,
    subresource: str,
    now: str,
) -> Obj:
    """Apply ``applied`` as ``manager`` onto ``live`` (None = create); returns the new object.

    Raises:
        ApiError: 409 Conflict with FieldManagerConflict causes when another manager owns a leaf
            set to a different value and ``force`` is false.
    """
    include_status = subresource == "status"
    applied_leaves = leaf_paths(applied, include_status=include_status)
    if include_status:
        applied_leaves = {p: v for p, v in applied_leaves.items() if p[0] == "status"}
    base: Obj = copy.deepcopy(live) if live is not None else {}
    entries: list[Obj] = list((base.get("metadata") or {}).get("managedFields") or [])
    identity: Obj = {"manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion", "")}
    if subresource:
        identity["subresource"] = subresource
    ident = _entry_identity(identity)

    conflicts: list[tuple[Obj, Path]] = []
    for e in entries:
        if _entry_identity(e) == ident:
            continue
        if (e.get("subresource") or "") != (subresource or ""):
            continue
        for owned in sorted(paths_from_fields_v1(e.get("fieldsV1"))):
            for path, value in applied_leaves.items():
                if not _covers(owned, path):
                    continue
                live_value = _live_value(base, path)
                if live_value is _MISSING or not _same_but_defaults(live_value, value):
                    conflicts.append((e, owned))
                    break
    if conflicts and not force:
        raise _conflict_error(conflicts)
    if force and conflicts:
        entries = _strip_paths(entries, ident, {p for _, p in conflicts})

    previous = next((e for e in entries if _entry_identity(e) == ident), None)
    previously_owned = paths_from_fields_v1(previous.get("fieldsV1")) if previous else set()

    result: Obj = _apply_merge(base, {k: v for k, v in applied.items() if k != "metadata"})
    meta = result.setdefault("metadata", {})
    applied_meta = applied.get("metadata") or {}
    for k, v in applied_meta.items():
        if k in _TRACKED_METADATA and isinstance(v, dict) and isinstance(meta.get(k), dict):
            meta[k] = _apply_merge(meta[k], v)
        elif k not in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"):
            meta[k] = copy.deepcopy(v)

    # fields this manager applied before, no longer applies and nobody else owns are removed
    others: set[Path] = set()
    for e in entries:
        if _entry_identity(e) != ident:
            others |= paths_from_fields_v1(e.get("fieldsV1"))
    for dropped in previously_owned - set(applied_leaves):
        if not any(_covers(dropped, p) for p in applied_leaves) and dropped not in others:
            _delete_path(result, dropped)
    entries = _set_entry(entries, identity, set(applied_leaves), now)
    meta["managedFields"] = entries
    return result


def _same_but_defaults(live: Any, applied: Any) -> bool:
    """Whether ``live`` is ``applied`` plus fields the server defaulted (e.g. a Service port's ``protocol``).

    Lists are atomic leaves here, so a list the server defaulted into differs from the applied one; real
    server-side apply merges such lists by key and sees no conflict. Equal-length lists whose live items
    only add fields count as the same value, so re-applying a manifest another manager applied first is
    not a conflict.
    """
    if isinstance(applied, dict) and isinstance(live, dict):
        return all(k in live and _same_but_defaults(live[k], v) for k, v in applied.items())
    if isinstance(applied, list) and isinstance(live, list):
        return len(applied) == len(live) and all(_same_but_defaults(a, b) for a, b in zip(live, applied, strict=True))
    return bool(live == applied)


def _live_value(obj: Obj, path: Path) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur
