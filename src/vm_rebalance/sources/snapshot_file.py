"""Snapshot files (design.md §3): a Kubernetes List in JSON or YAML, or concatenated JSON documents.

Reading is tolerant of what `kubectl get -o json` produces (Lists nested in Lists, single
objects, several documents back to back) and strict about what it cannot read: a
malformed or truncated file is a ConfigError naming the file's problem and position.
"""

import gc
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.convert import snapshot_object, state_from_objects
from vm_rebalance.model import ClusterState
from vm_rebalance.sources.usage import UsageSource

SNAPSHOT_API_VERSION = "v1"
SNAPSHOT_KIND = "List"


def _flatten(doc: Any, where: str) -> Iterator[dict[str, Any]]:
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield from _flatten(item, where)
        return
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected Kubernetes objects, found {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        item_kind = kind[: -len("List")] if kind != "List" else None
        for item in doc["items"]:
            if item_kind and isinstance(item, dict) and "kind" not in item:
                item = {**item, "kind": item_kind, "apiVersion": doc.get("apiVersion")}
            yield from _flatten(item, where)
        return
    yield doc


def _json_documents(text: str, where: str) -> list[Any]:
    """One or several JSON documents back to back."""
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    docs: list[Any] = []  # untyped JSON documents, converted by kube.convert
    pos = 0
    length = len(text)
    while True:
        while pos < length and text[pos].isspace():
            pos += 1
        if pos >= length:
            return docs
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{where} is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                + (" (the file looks truncated)" if exc.pos >= length - 1 else "")
            ) from exc
        docs.append(doc)


def _yaml_loader(yaml: Any) -> Any:
    """A safe loader that keeps timestamps as strings, as the API serves them (and JSON can write them back)."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]  # base is chosen at run time (C loader if built)
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    return Loader


def parse_snapshot_text(text: str, *, where: str = "snapshot") -> list[dict[str, Any]]:
    """The objects of a snapshot file's text.

    Raises:
        ConfigError: malformed or truncated content, or no objects at all.
    """
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError(f"{where} is empty")
    if stripped[0] in "{[":
        docs = _json_documents(text, where)
    else:
        import yaml

        loader = _yaml_loader(yaml)
        try:
            docs = list(yaml.load_all(text, Loader=loader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
    objects = [obj for doc in docs for obj in _flatten(doc, where)]
    if not objects:
        raise ConfigError(f"{where} holds no Kubernetes objects")
    return objects


def load_snapshot_objects(path: str | Path) -> list[dict[str, Any]]:
    """Read a snapshot file's objects.

    Raises:
        ConfigError: unreadable, malformed, nested too deeply or empty file.
    """
    where = f"snapshot file '{Path(path).name}'"
    try:
        return _load_snapshot_objects(Path(path), where)
    except RecursionError:
        # JSON nested deeper than the parsers (or the flattening of nested Lists) can follow.
        raise ConfigError(f"{where} is nested too deeply to be a snapshot") from None


def _load_snapshot_objects(p: Path, where: str) -> list[dict[str, Any]]:
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{where} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{where} is a directory") from exc
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from exc
    if raw.lstrip()[:1] in (b"{", b"["):
        # Fast path for the common case (one JSON document): parse the bytes directly,
        # without a decoded copy of a file that can be hundreds of MiB.
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            del raw
            objects = list(_flatten(doc, where))
            if not objects:
                raise ConfigError(f"{where} holds no Kubernetes objects")
            return objects
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text") from exc
    del raw
    return parse_snapshot_text(text, where=where)


def snapshot_document(objects: list[dict[str, Any]], *, taken_at: datetime | None = None) -> dict[str, Any]:
    """The List document `vm-rebalance snapshot` writes.

    Objects are slimmed to what reading them back needs (`snapshot_object`): no pod env
    values, commands or mounts, no managedFields. The inputs are not modified.
    """
    when = (taken_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": SNAPSHOT_API_VERSION,
        "kind": SNAPSHOT_KIND,
        "metadata": {"annotations": {"vm-rebalance.io/snapshot-taken-at": when}},
        "items": [snapshot_object(obj) for obj in objects],
    }


class SnapshotFileSource:
    """A ClusterState read from a snapshot file.

    Usage comes from the file's own NodeMetrics / PodMetrics unless a `UsageSource` is given.
    """

    def __init__(self, path: str | Path, *, usage: UsageSource | None = None) -> None:
        self._path = Path(path)
        self._usage = usage
        self._objects: list[dict[str, Any]] | None = None

    def raw_objects(self) -> list[dict[str, Any]]:
        """The file's objects (read once)."""
        if self._objects is None:
            self._objects = load_snapshot_objects(self._path)
        return self._objects

    def read(self) -> ClusterState:
        """The state the file describes."""
        usage = self._usage.read_usage() if self._usage is not None else None
        if self._objects is not None:
            return state_from_objects(self._objects, source="snapshot", usage=usage)
        # Not cached: a 100,000-VM file's raw objects are freed as soon as the state is built.
        # The cyclic GC is paused meanwhile: millions of fresh acyclic dicts only make it
        # rescan the heap over and over (a third of the time on large files).
        enabled = gc.isenabled()
        gc.disable()
        try:
            return state_from_objects(load_snapshot_objects(self._path), source="snapshot", usage=usage)
        finally:
            if enabled:
                gc.enable()
