"""The simulator's in-memory object store: what etcd plus the generic registry are to kube-apiserver.

It assigns uid, creationTimestamp, generation and resourceVersion, applies the finalizer and
deletionTimestamp rules, keeps a bounded event history for watches and notifies subscribers.
It knows nothing of HTTP, admission or controllers. Stored objects are never mutated in place:
every write stores a fresh dict, so event objects and ``copy=False`` reads can be shared safely
as long as callers do not mutate them.
"""

import contextlib
import gc
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]
Obj = dict[str, Any]

#: Kinds whose status is only written through the ``/status`` subresource (VMI has none: kubevirt-api.md §2.1).
STATUS_SUBRESOURCE_KINDS: frozenset[Key] = frozenset(
    {
        ("", "nodes"),
        ("", "pods"),
        ("", "persistentvolumeclaims"),
        ("", "namespaces"),
        ("kubevirt.io", "virtualmachines"),
        ("kubevirt.io", "virtualmachineinstancemigrations"),
        ("kubevirt.io", "kubevirts"),
        ("cdi.kubevirt.io", "datavolumes"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "services"),
        ("apps", "deployments"),
        ("policy", "poddisruptionbudgets"),
    }
)

#: Groups that cannot be watched (metrics-server has no watch); their writes stay out of the history so that
#: frequent metric refreshes do not push watchable events out of it.
UNWATCHED_GROUPS: frozenset[str] = frozenset({"metrics.k8s.io"})

DEFAULT_HISTORY_SIZE = 20_000
_log = logging.getLogger(__name__)

_KeyList = list[Key]
_EventList = list["WatchEvent"]
_SubscriberList = list[Callable[["WatchEvent"], None]]  # Store.list shadows the builtin inside the class body


class StoreError(Exception):
    """Base of the store's errors."""


class NotFoundError(StoreError):
    """The object does not exist."""

    def __init__(self, key: Key, namespace: str | None, name: str) -> None:
        super().__init__(f"{_resource(key)} {name!r} not found")
        self.key = key
        self.namespace = namespace
        self.name = name


class AlreadyExistsError(StoreError):
    """An object with this namespace and name already exists."""

    def __init__(self, key: Key, namespace: str | None, name: str) -> None:
        super().__init__(f"{_resource(key)} {name!r} already exists")
        self.key = key
        self.namespace = namespace
        self.name = name


class ConflictError(StoreError):
    """The update carried a stale metadata.resourceVersion."""

    def __init__(self, key: Key, namespace: str | None, name: str) -> None:
        super().__init__(f"{_resource(key)} {name!r}: the object has been modified")
        self.key = key
        self.namespace = namespace
        self.name = name


class GoneError(StoreError):
    """The requested resourceVersion is older than the kept event history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change of one object, as a watch reports it."""

    type: str
    key: Key
    obj: Obj
    resource_version: int


def _resource(key: Key) -> str:
    group, plural = key
    return f"{plural}.{group}" if group else plural


def copy_obj(value: Any) -> Any:
    """Deep-copy a JSON-like value (dicts, lists, scalars); several times faster than copy.deepcopy."""
    t = type(value)
    if t is dict:
        return {k: copy_obj(v) for k, v in value.items()}
    if t is list:
        return [copy_obj(v) for v in value]
    return value


@contextlib.contextmanager
def pause_gc() -> Iterator[None]:
    """Suspend the cyclic GC while allocating many acyclic dicts (halves the cost of big copies and loads)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _copy_dict(obj: Obj) -> Obj:
    return {k: copy_obj(v) for k, v in obj.items()}


_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet: no vowels, no 0/1/3


class Store:
    """Thread-safe object store keyed by (group, plural), then (namespace, name)."""

    def __init__(
        self,
        clock: Callable[[], str] | None = None,
        *,
        seed: int = 0,
        history_size: int = DEFAULT_HISTORY_SIZE,
    ) -> None:
        self.lock = threading.RLock()
        self._clock = clock or _wall_clock_iso
        self._rng = random.Random(seed)
        self._objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        # RV of the newest event dropped from the history (0 = nothing dropped yet).
        self._dropped_rv = 0
        self._subscribers: _SubscriberList = []
        self.status_kinds: set[Key] = set(STATUS_SUBRESOURCE_KINDS)
        """Kinds whose status only the ``/status`` subresource writes (CRDs add theirs)."""
        self.spec_finalizer_kinds: set[Key] = {("", "namespaces")}
        """Kinds whose ``spec.finalizers`` also hold a deletion back (Namespaces: ``kubernetes``)."""
        self.custom_kinds: set[Key] = set()
        """Kinds served for a CustomResourceDefinition: generation counts every change but metadata and status."""
        self.subscriber_errors = 0
        """How many subscriber callbacks raised (they are logged and skipped)."""

    # -- reads ---------------------------------------------------------------------------------------------------

    def get(self, key: Key, namespace: str | None, name: str, *, copy: bool = True) -> Obj:
        """The object; a deep copy unless ``copy=False`` (then the caller must not mutate it)."""
        with self.lock:
            obj = self._objects.get(key, {}).get((namespace or "", name))
            if obj is None:
                raise NotFoundError(key, namespace, name)
            return _copy_dict(obj) if copy else obj

    def try_get(self, key: Key, namespace: str | None, name: str, *, copy: bool = True) -> Obj | None:
        """The object, or None when it does not exist."""
        with self.lock:
            obj = self._objects.get(key, {}).get((namespace or "", name))
            if obj is None:
                return None
            return _copy_dict(obj) if copy else obj

    def list(self, key: Key, namespace: str | None = None, *, copy: bool = True) -> tuple[list[Obj], int]:
        """Objects sorted by (namespace, name) and the store's current resourceVersion.

        ``namespace=None`` lists all namespaces. With ``copy=False`` the stored dicts are returned
        (read-only: the API layer serialises them, it never needs copies).
        """
        with self.lock:
            bucket = self._objects.get(key, {})
            if namespace is None:
                ids = sorted(bucket)
            else:
                ids = sorted(i for i in bucket if i[0] == namespace)
            if copy:
                with pause_gc():
                    return [_copy_dict(bucket[i]) for i in ids], self._rv
            return [bucket[i] for i in ids], self._rv

    def iter_objects(self, key: Key) -> Iterator[Obj]:
        """Stored objects of a kind in no particular order, uncopied (a snapshot taken under the lock)."""
        with self.lock:
            return iter(tuple(self._objects.get(key, {}).values()))

    def count(self, key: Key) -> int:
        """Number of stored objects of a kind."""
        with self.lock:
            return len(self._objects.get(key, {}))

    def keys(self) -> "_KeyList":
        """Kinds that have (or had) objects."""
        with self.lock:
            return list(self._objects)

    def resource_version(self) -> int:
        """The newest resourceVersion handed out."""
        with self.lock:
            return self._rv

    # -- writes --------------------------------------------------------------------------------------------------

    def create(self, key: Key, obj: Obj, *, keep_identity: bool = False) -> Obj:
        """Store a new object as kube-apiserver would and return a copy of it.

        ``keep_identity`` keeps a given uid and creationTimestamp (loading a snapshot, where owner
        references and labels point at those uids).

        Raises:
            AlreadyExistsError: the namespace/name is taken.
            ValueError: neither metadata.name nor metadata.generateName is set.
        """
        with self.lock:
            return _copy_dict(self.load(key, _copy_dict(obj), keep_identity=keep_identity))

    def load(self, key: Key, new: Obj, *, keep_identity: bool = True) -> Obj:
        """Like :meth:`create` but takes ownership of ``new`` and returns the stored dict (bulk loading).

        Raises:
            AlreadyExistsError: the namespace/name is taken.
        """
        with self.lock:
            meta = new.setdefault("metadata", {})
            bucket = self._objects.setdefault(key, {})
            ns = meta.get("namespace") or ""
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise ValueError("metadata.name or metadata.generateName is required")
                for _ in range(100):
                    candidate = prefix + "".join(self._rng.choice(_ALNUM) for _ in range(5))
                    if (ns, candidate) not in bucket:
                        break
                meta["name"] = candidate
            name = meta["name"]
            if (ns, name) in bucket:
                raise AlreadyExistsError(key, ns or None, name)
            if not ns:
                meta.pop("namespace", None)
            if not (keep_identity and meta.get("uid")):
                meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if not (keep_identity and meta.get("creationTimestamp")):
                meta["creationTimestamp"] = self._clock()
            meta["generation"] = 1
            meta.pop("deletionTimestamp", None)
            meta.pop("deletionGracePeriodSeconds", None)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[(ns, name)] = new
            self._emit("ADDED", key, new)
            return new

    def update(self, key: Key, obj: Obj, *, subresource: str | None = None) -> Obj:
        """Replace an object (PUT semantics) and return a copy of the result.

        Raises:
            NotFoundError: the object does not exist.
            ConflictError: ``obj`` carries a resourceVersion that is not the stored one.
        """
        with self.lock:
            meta_in = obj.get("metadata") or {}
            ns = meta_in.get("namespace") or ""
            name = meta_in.get("name") or ""
            bucket = self._objects.get(key, {})
            old = bucket.get((ns, name))
            if old is None:
                raise NotFoundError(key, ns or None, name)
            rv_in = meta_in.get("resourceVersion")
            if rv_in not in (None, "") and str(rv_in) != old["metadata"]["resourceVersion"]:
                raise ConflictError(key, ns or None, name)
            if subresource == "status":
                new = {k: v for k, v in old.items() if k != "status"}
                if "status" in obj:
                    new["status"] = copy_obj(obj["status"])
                new["metadata"] = dict(old["metadata"])
            else:
                new = copy_obj(obj)
                if key in self.status_kinds:
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = old["status"]
            return self._commit(key, old, new, bump_generation=subresource != "status")

    def put(self, key: Key, obj: Obj) -> None:
        """Create or unconditionally replace, taking ownership of ``obj`` (no copies; metrics refreshes)."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            old = self._objects.get(key, {}).get((meta.get("namespace") or "", meta.get("name", "")))
            if old is None:
                self.load(key, obj, keep_identity=False)
            else:
                self._commit(key, old, obj, bump_generation=True, copy_result=False)

    def set_fields(self, key: Key, namespace: str | None, name: str, fields: Obj) -> Obj:
        """Replace top-level fields (e.g. ``{"status": {...}}``) without deep-copying the rest; cheap for
        controllers. Takes ownership of the values; returns the stored object (read-only).

        Raises:
            NotFoundError: the object does not exist.
        """
        with self.lock:
            old = self._objects.get(key, {}).get((namespace or "", name))
            if old is None:
                raise NotFoundError(key, namespace, name)
            new = dict(old)
            new.update(fields)
            new["metadata"] = dict(fields.get("metadata") or old["metadata"])
            return self._commit(key, old, new, bump_generation=True, copy_result=False)

    def mutate(self, key: Key, namespace: str | None, name: str, fn: Callable[[Obj], None]) -> Obj:
        """Atomic read-modify-write: ``fn`` edits a copy in place (spec, status, metadata).

        Raises:
            NotFoundError: the object does not exist.
        """
        with self.lock:
            old = self._objects.get(key, {}).get((namespace or "", name))
            if old is None:
                raise NotFoundError(key, namespace, name)
            new = _copy_dict(old)
            fn(new)
            return self._commit(key, old, new, bump_generation=True)

    def delete(self, key: Key, namespace: str | None, name: str) -> Obj:
        """Delete now, or mark for deletion when finalizers remain; return the object's last state.

        Raises:
            NotFoundError: the object does not exist.
        """
        with self.lock:
            ns = namespace or ""
            bucket = self._objects.get(key, {})
            old = bucket.get((ns, name))
            if old is None:
                raise NotFoundError(key, namespace, name)
            if old["metadata"].get("finalizers") or self._spec_finalizers(key, old):
                if old["metadata"].get("deletionTimestamp"):
                    return _copy_dict(old)
                new = dict(old)
                new["metadata"] = dict(old["metadata"])
                new["metadata"]["deletionTimestamp"] = self._clock()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                return self._commit(key, old, new, bump_generation=False, marking=True)
            return _copy_dict(self._remove(key, ns, name))

    def _commit(
        self, key: Key, old: Obj, new: Obj, *, bump_generation: bool, marking: bool = False, copy_result: bool = True
    ) -> Obj:
        """Store ``new`` in place of ``old``, keeping the identity fields; removes it when finalised."""
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        new["metadata"] = meta
        old_meta = old["metadata"]
        fields: tuple[str, ...] = ("name", "generateName", "namespace", "uid", "creationTimestamp")
        if not marking:
            fields += ("deletionTimestamp", "deletionGracePeriodSeconds")
        for field in fields:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        generation = old_meta.get("generation", 1)
        if bump_generation and self._spec_changed(key, old, new):
            generation += 1
        meta["generation"] = generation
        ns = old_meta.get("namespace") or ""
        name = old_meta["name"]
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._spec_finalizers(key, new):
            self._objects[key][(ns, name)] = new
            self._rv -= 1  # the removal below takes the RV
            return _copy_dict(self._remove(key, ns, name))
        self._objects[key][(ns, name)] = new
        self._emit("MODIFIED", key, new)
        return _copy_dict(new) if copy_result else new

    def _spec_finalizers(self, key: Key, obj: Obj) -> bool:
        if key not in self.spec_finalizer_kinds:
            return False
        spec = obj.get("spec")
        return isinstance(spec, dict) and bool(spec.get("finalizers"))

    def _spec_changed(self, key: Key, old: Obj, new: Obj) -> bool:
        if key not in self.custom_kinds:
            return bool(new.get("spec") != old.get("spec"))
        skip = ("metadata", "status") if key in self.status_kinds else ("metadata",)
        return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}

    def _remove(self, key: Key, ns: str, name: str) -> Obj:
        obj = self._objects[key].pop((ns, name))
        self._rv += 1
        last = dict(obj)
        last["metadata"] = dict(obj["metadata"])
        last["metadata"]["resourceVersion"] = str(self._rv)
        self._emit("DELETED", key, last)
        return last

    # -- watch ---------------------------------------------------------------------------------------------------

    def _emit(self, type_: str, key: Key, obj: Obj) -> None:
        event = WatchEvent(type_, key, obj, self._rv)
        if key[0] not in UNWATCHED_GROUPS:
            if len(self._history) == self._history.maxlen:
                self._dropped_rv = self._history[0].resource_version
            self._history.append(event)
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:  # one broken watcher must not starve the others (indexes, controllers)
                self.subscriber_errors += 1
                _log.exception("store subscriber failed on %s %s", event.type, event.key)

    def oldest_resource_version(self) -> int:
        """The oldest resourceVersion a watch may still start from."""
        with self.lock:
            return self._dropped_rv

    def events_since(self, key: Key, resource_version: int, namespace: str | None = None) -> "_EventList":
        """Events of one kind after ``resource_version`` (optionally one namespace), oldest first.

        Raises:
            GoneError: events after ``resource_version`` were already dropped from the history.
        """
        with self.lock:
            if resource_version < self._dropped_rv:
                raise GoneError(resource_version, self._dropped_rv)
            out: _EventList = []
            for event in reversed(self._history):
                if event.resource_version <= resource_version:
                    break
                if event.key != key:
                    continue
                if namespace is not None and (event.obj["metadata"].get("namespace") or "") != namespace:
                    continue
                out.append(event)
            out.reverse()
            return out

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously, under the lock, after every change; returns the unsubscriber."""
        with self.lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self.lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe


def _wall_clock_iso() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
