"""Snapshot files: every accepted shape, and every malformed one as a ConfigError."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rawobjects import SECRET, as_list, node_obj, small_cluster, vm_obj, with_secrets
from vm_rebalance.errors import ConfigError
from vm_rebalance.render.inventory import inventory_document
from vm_rebalance.sources.snapshot_file import (
    SnapshotFileSource,
    load_snapshot_objects,
    parse_snapshot_text,
    snapshot_document,
)


def _names(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


EXPECTED = _names(small_cluster())


def _concatenated(objects: list[dict[str, Any]]) -> str:
    half = len(objects) // 2
    return json.dumps(as_list(objects[:half]), indent=2) + "\n" + json.dumps(as_list(objects[half:]))


def _nested(objects: list[dict[str, Any]]) -> str:
    # `kubectl get nodes,vms -o json` style: a List of Lists.
    return json.dumps(as_list([as_list(objects[:3]), as_list(objects[3:])]))


def _json_array(objects: list[dict[str, Any]]) -> str:
    return json.dumps(objects)


def _single_objects(objects: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(o) for o in objects)


def _yaml_docs(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects)


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda objs: json.dumps(as_list(objs)), id="json-list"),
        pytest.param(lambda objs: json.dumps(as_list(objs), indent=2), id="json-list-indented"),
        pytest.param(lambda objs: yaml.safe_dump(as_list(objs)), id="yaml-list"),
        pytest.param(_yaml_docs, id="yaml-multi-document"),
        pytest.param(_concatenated, id="concatenated-json-documents"),
        pytest.param(_single_objects, id="concatenated-single-objects"),
        pytest.param(_nested, id="nested-lists"),
        pytest.param(_json_array, id="json-array"),
    ],
)
def test_accepted_shapes(render: Any, tmp_path: Path) -> None:
    path = tmp_path / "snap"
    path.write_text(render(small_cluster()), encoding="utf-8")
    assert _names(load_snapshot_objects(path)) == EXPECTED


def test_every_shape_gives_the_same_state(tmp_path: Path) -> None:
    docs = []
    for i, text in enumerate(
        [
            json.dumps(as_list(small_cluster())),
            yaml.safe_dump(as_list(small_cluster())),
            _concatenated(small_cluster()),
            _nested(small_cluster()),
        ]
    ):
        path = tmp_path / f"s{i}"
        path.write_text(text, encoding="utf-8")
        docs.append(inventory_document(SnapshotFileSource(path).read()))
    assert all(d == docs[0] for d in docs)
    assert docs[0]["source"] == "snapshot"


def test_typed_lists_give_their_items_a_kind(tmp_path: Path) -> None:
    vms = [vm_obj("a"), vm_obj("b")]
    for vm in vms:
        del vm["kind"], vm["apiVersion"]
    doc = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineList", "items": vms}
    nodes = {
        "apiVersion": "v1",
        "kind": "NodeList",
        "items": [{k: v for k, v in node_obj("w1").items() if k not in ("kind", "apiVersion")}],
    }
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(doc) + json.dumps(nodes), encoding="utf-8")
    objects = load_snapshot_objects(path)
    assert _names(objects) == [("VirtualMachine", "a"), ("VirtualMachine", "b"), ("Node", "w1")]
    assert objects[0]["apiVersion"] == "kubevirt.io/v1"
    state = SnapshotFileSource(path).read()
    assert [v.name for v in state.vms] == ["a", "b"] and [n.name for n in state.nodes] == ["w1"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"  \n\t\n", "is empty", id="whitespace-only"),
        pytest.param(
            b'{"kind": "List", "items": [{"kind": "Node", "metadata": {"name": "w1"}}',
            r"not valid JSON at line 1 column \d+.*truncated",
            id="truncated-json",
        ),
        pytest.param(
            b'{"kind": "List",\n "items": [\n  {"kind": "Node", "metadata": {"name": "w1"}}\n',
            r"not valid JSON at line \d+ column \d+.*truncated",
            id="truncated-json-multiline",
        ),
        pytest.param(
            b'{"kind": "List", "items": [{"kind": "No',
            r"not valid JSON at line 1 column \d+",
            id="truncated-mid-string",
        ),
        pytest.param(b'{"kind": "List", "items": [}', r"not valid JSON at line 1 column 28", id="invalid-json"),
        pytest.param(
            b"kind: List\nitems:\n  - kind: Node\n   bad: [\n",
            r"not valid YAML at line \d+ column \d+",
            id="invalid-yaml",
        ),
        pytest.param(b'{"kind": "List", "items": []}', "holds no Kubernetes objects", id="empty-list"),
        pytest.param(
            b'{"kind": "List", "items": [1, 2]}',
            "expected Kubernetes objects, found int",
            id="non-object-items",
        ),
        pytest.param(b'["a"]', "expected Kubernetes objects, found str", id="array-of-strings"),
        pytest.param(b"just some text\n", "expected Kubernetes objects, found str", id="plain-text"),
        pytest.param(b"---\n---\n", "holds no Kubernetes objects", id="empty-yaml-documents"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
        pytest.param(b'{"kind": "List", "items": [{"kind": "\xff"}]}', "not UTF-8", id="not-utf8-inside-json"),
    ],
)
def test_malformed_files(content: bytes, match: str, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_snapshot_objects(path)
    assert "snapshot file 'snap.json'" in str(info.value)
    assert str(tmp_path) not in str(info.value)
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"snapshot file 'nope.json' does not exist") as info:
        SnapshotFileSource(tmp_path / "nope.json").read()
    assert str(tmp_path) not in str(info.value)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory|cannot be read"):
        load_snapshot_objects(tmp_path)


def test_malformed_quantity_in_file_names_object(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list([node_obj("w1", memory="1e30")])), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Node w1: status.capacity.memory"):
        SnapshotFileSource(path).read()


def test_parse_text_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^stdin is empty"):
        parse_snapshot_text("", where="stdin")


def test_snapshot_document_is_a_list_that_reads_back(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    doc = snapshot_document(small_cluster(), taken_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    assert doc["metadata"]["annotations"]["vm-rebalance.io/snapshot-taken-at"] == "2026-01-02T03:04:05Z"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert _names(load_snapshot_objects(path)) == EXPECTED


def test_snapshot_document_holds_no_pod_secrets_and_reads_back_the_same(tmp_path: Path) -> None:
    objects = with_secrets(small_cluster())
    doc = snapshot_document(objects)
    text = json.dumps(doc)
    assert SECRET not in text and "managedFields" not in text and "last-applied-configuration" not in text
    assert any(o["kind"] == "Pod" and "env" in o["spec"]["containers"][0] for o in objects)  # inputs untouched
    path = tmp_path / "s.json"
    path.write_text(text, encoding="utf-8")
    full = tmp_path / "full.json"
    full.write_text(json.dumps(as_list(objects)), encoding="utf-8")
    assert inventory_document(SnapshotFileSource(path).read()) == inventory_document(SnapshotFileSource(full).read())


def test_objects_are_read_once(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    source = SnapshotFileSource(path)
    first = source.raw_objects()
    path.unlink()
    assert source.raw_objects() is first


def test_yaml_timestamps_stay_strings(tmp_path: Path) -> None:
    from rawobjects import launcher_pod_obj, migration_obj, vmi_obj

    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    objects = [node_obj("w1"), vm, vmi, launcher_pod_obj(vmi), migration_obj("m", "a", end="2026-11-21T11:50:00Z")]
    text = yaml.safe_dump(as_list(objects)).replace("'2026-11-21T11:50:00Z'", "2026-11-21T11:50:00Z")
    assert "endTimestamp: 2026-11-21T11:50:00Z" in text  # unquoted, as people write it by hand
    path = tmp_path / "snap.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_snapshot_objects(path)
    assert loaded[-1]["status"]["migrationState"]["endTimestamp"] == "2026-11-21T11:50:00Z"
    json.dumps(loaded)  # a snapshot of it can be written back as JSON
    assert SnapshotFileSource(path).read().vm("default", "a").last_migration_seconds_ago is not None
