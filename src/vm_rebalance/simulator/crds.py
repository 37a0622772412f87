"""CustomResourceDefinitions: validation of the definition, registration of the served types (at once,
in the same write that stores the CRD), the CRD's status, and cleanup when it is deleted.

What apiextensions-apiserver does, simplified: a valid CRD is ``NamesAccepted`` and ``Established``
as soon as it is stored; its served versions appear in discovery and in ``/openapi/v3`` and are served
(cluster-scoped or namespaced, with the status subresource when the version asks for it). Deleting a
CRD stops serving it and removes its objects (the ``customresourcecleanup.apiextensions.k8s.io``
finalizer), then the CRD itself goes.
"""

import contextlib
from typing import TYPE_CHECKING, Any

from . import crdschema
from .resources import ALL_VERBS, ResourceType
from .store import NotFoundError, WatchEvent

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _cause(reason: str, field: str, message: str) -> Obj:
    return {"reason": reason, "message": message, "field": field}


def validate_crd(crd: Obj) -> list[Obj]:
    """kube-apiserver's main checks of a CustomResourceDefinition; the causes of a 422 (empty when valid)."""
    causes: list[Obj] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name") or ""
    if not group:
        causes.append(_cause("FieldValueRequired", "spec.group", "Required value"))
    elif "." not in group:
        causes.append(
            _cause(
                "FieldValueInvalid", "spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'
            )
        )
    if not plural:
        causes.append(_cause("FieldValueRequired", "spec.names.plural", "Required value"))
    if not names.get("kind"):
        causes.append(_cause("FieldValueRequired", "spec.names.kind", "Required value"))
    if plural and group and name != f"{plural}.{group}":
        causes.append(
            _cause(
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            _cause(
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{scope or ""}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(
            _cause(
                "FieldValueRequired",
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        )
        return causes
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.versions",
                f"Invalid value: {json_list([v.get('name') for v in versions if isinstance(v, dict)])}: "
                "must have exactly one version marked as storage version",
            )
        )
    for i, version in enumerate(versions):
        where = f"spec.versions[{i}]"
        if not isinstance(version, dict) or not version.get("name"):
            causes.append(_cause("FieldValueRequired", f"{where}.name", "Required value"))
            continue
        schema = (
            ((version.get("schema") or {}).get("openAPIV3Schema")) if isinstance(version.get("schema"), dict) else None
        )
        if schema is None:
            causes.append(
                _cause("FieldValueRequired", f"{where}.schema.openAPIV3Schema", "Required value: schemas are required")
            )
        else:
            causes.extend(crdschema.structural_problems(schema, f"{where}.schema.openAPIV3Schema"))
    return causes


def json_list(values: list[Any]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def served_types(crd: Obj) -> list[ResourceType]:
    """The resource types a (valid) CRD serves, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = names.get("kind") or ""
    out: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not isinstance(version, dict) or not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        out.append(
            ResourceType(
                spec.get("group") or "",
                str(version.get("name")),
                names.get("plural") or "",
                names.get("singular") or kind.lower(),
                kind,
                spec.get("scope") == "Namespaced",
                verbs=ALL_VERBS,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                builtin=False,
                crd=(crd.get("metadata") or {}).get("name") or "",
                schema=((version.get("schema") or {}).get("openAPIV3Schema")),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            )
        )
    return out


def crd_status(crd: Obj, now_iso: str, previous: Obj | None = None) -> Obj:
    """The status apiextensions-apiserver's controllers give an accepted CRD."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", (names.get("kind") or "").lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    old = previous or {}
    old_conditions = {c.get("type"): c for c in old.get("conditions") or []}

    def condition(ctype: str, reason: str, message: str) -> Obj:
        kept = old_conditions.get(ctype)
        if kept and kept.get("status") == "True":
            return dict(kept)
        return {"type": ctype, "status": "True", "lastTransitionTime": now_iso, "reason": reason, "message": message}

    stored = list(old.get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if isinstance(version, dict) and version.get("storage") and version.get("name") not in stored:
            stored.append(version["name"])
    return {
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    }


class CrdController:
    """Keeps the cluster's registry in step with the stored CRDs; the cluster ticks it with the lock held."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.terminating: set[str] = set()
        self.stale_status: set[str] = set()
        self.store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        if event.key != CRDS:
            return
        name = event.obj["metadata"]["name"]
        if event.type == "DELETED" or event.obj["metadata"].get("deletionTimestamp"):
            self._unserve(name)
            if event.type != "DELETED":
                self.terminating.add(name)
            return
        types = served_types(event.obj)
        previous = {r.key for r in self.cluster.registry.types() if r.crd == name}
        accepted = self.cluster.registry.register(name, types)
        self._sync_store_kinds(previous, accepted)
        status = event.obj.get("status") or {}
        if status.get("acceptedNames") != crd_status(event.obj, "", status)["acceptedNames"] or not status.get(
            "conditions"
        ):
            self.stale_status.add(name)

    def _sync_store_kinds(self, previous: set[tuple[str, str]], accepted: list[ResourceType]) -> None:
        for key in previous:
            self.store.status_kinds.discard(key)
            self.store.custom_kinds.discard(key)
        for r in accepted:
            self.store.custom_kinds.add(r.key)
            if r.status_subresource:
                self.store.status_kinds.add(r.key)

    def _unserve(self, name: str) -> None:
        gone = self.cluster.registry.unregister(name)
        self._sync_store_kinds({r.key for r in gone}, [])

    def tick(self, now: float) -> None:
        if self.stale_status:
            names, self.stale_status = sorted(self.stale_status), set()
            now_iso = self.cluster.clock.iso(now)
            for name in names:
                crd = self.store.try_get(CRDS, None, name, copy=False)
                if crd is None or crd["metadata"].get("deletionTimestamp"):
                    continue
                status = crd_status(crd, now_iso, crd.get("status"))
                if status != crd.get("status"):
                    self.store.set_fields(CRDS, None, name, {"status": status})
        if self.terminating:
            names, self.terminating = sorted(self.terminating), set()
            for name in names:
                self._cleanup(name)

    def _cleanup(self, name: str) -> None:
        crd = self.store.try_get(CRDS, None, name, copy=False)
        if crd is None:
            return
        spec = crd.get("spec") or {}
        key = (spec.get("group") or "", (spec.get("names") or {}).get("plural") or "")
        for obj in list(self.store.iter_objects(key)):
            meta = obj["metadata"]
            with contextlib.suppress(NotFoundError):
                if meta.get("finalizers"):
                    self.store.mutate(
                        key, meta.get("namespace"), meta["name"], lambda o: o["metadata"].pop("finalizers")
                    )
                self.store.delete(key, meta.get("namespace"), meta["name"])
        with contextlib.suppress(NotFoundError):
            self.store.mutate(
                CRDS,
                None,
                name,
                lambda o: o["metadata"].__setitem__(
                    "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
                ),
            )
        self.cluster.recorder.record("crd-deleted", name)
