"""The live source against a fake Kubernetes API: same state as the snapshot of the same objects."""

import json
from pathlib import Path
from typing import Any

import pytest

from fakeapi import TOKEN, FakeApi, free_port, write_kubeconfig
from rawobjects import SECRET, as_list, small_cluster, with_secrets
from vm_rebalance import service
from vm_rebalance.errors import (
    ClusterConfigError,
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ConfigError,
    RebalanceError,
)
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.render.inventory import inventory_document
from vm_rebalance.sources.kubernetes import KubernetesSource
from vm_rebalance.sources.snapshot_file import SnapshotFileSource


def read_live(kubeconfig: Path, **kwargs: Any) -> Any:
    with KubeClient.from_kubeconfig(str(kubeconfig), **kwargs) as client:
        return KubernetesSource(client).read()


def inventory_from_file(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(objects)), encoding="utf-8")
    return inventory_document(SnapshotFileSource(path).read())


def assert_clean(error: RebalanceError, kubeconfig: Path) -> None:
    """Neither the kubeconfig path (nor its name) nor the token leak into what users see."""
    for text in (str(error), error.hint or ""):
        assert str(kubeconfig) not in text
        assert kubeconfig.name not in text
        assert TOKEN not in text
        assert "\n" not in text


def test_live_equals_snapshot(fake_api: FakeApi, kubeconfig: Path, tmp_path: Path) -> None:
    fake_api.load(small_cluster())
    live = read_live(kubeconfig)
    live_doc = inventory_document(live)
    file_doc = inventory_from_file(small_cluster(), tmp_path)
    assert live_doc["source"] == "cluster" and file_doc["source"] == "snapshot"
    assert {**live_doc, "source": None} == {**file_doc, "source": None}
    assert live.notes == ()
    assert live.metrics_available
    assert [n.name for n in live.nodes] == ["cp1", "w1", "w2", "w3"]


def test_snapshot_is_slim_but_live_reads_keep_full_objects(fake_api: FakeApi, kubeconfig: Path, tmp_path: Path) -> None:
    fake_api.load(with_secrets(small_cluster()))
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        raw = KubernetesSource(client).raw_objects()
    # Planning reads the objects as served (nothing is dropped on that path) …
    assert any(o["kind"] == "Pod" and o["spec"]["containers"][0].get("env") for o in raw)
    # … while the snapshot keeps none of the pods' env values, managedFields or last-applied copies.
    doc = service.take_snapshot(service.Target(kubeconfig=str(kubeconfig)))
    text = json.dumps(doc)
    assert SECRET not in text and "managedFields" not in text
    path = tmp_path / "snap.json"
    path.write_text(text, encoding="utf-8")
    live_doc = inventory_document(read_live(kubeconfig))
    file_doc = inventory_document(SnapshotFileSource(path).read())
    assert {**live_doc, "source": None} == {**file_doc, "source": None}


def test_pagination_is_followed(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        pods = client.list(r.PODS, page_size=2)
        nodes = list(client.iter_list(r.NODES, page_size=3))
    assert len(pods) == 6
    assert [p["metadata"]["name"] for p in pods] == [
        o["metadata"]["name"] for o in small_cluster() if o["kind"] == "Pod"
    ]
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in pods)
    assert len(nodes) == 4
    pod_requests = [q for path, q, _ in fake_api.requests if path == "/api/v1/pods"]
    assert [q.get("continue") for q in pod_requests] == [None, "2", "4"]
    assert all(q["limit"] == "2" for q in pod_requests)
    # Every request carried the bearer token from the kubeconfig.
    assert {auth for _, _, auth in fake_api.requests} == {f"Bearer {TOKEN}"}


def test_full_read_pages_through_everything(
    fake_api: FakeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = KubeClient.list
    monkeypatch.setattr(KubeClient, "list", lambda self, res, **kw: original(self, res, **{**kw, "page_size": 2}))
    fake_api.load(small_cluster())
    live_doc = inventory_document(read_live(kubeconfig))
    assert {**live_doc, "source": None} == {**inventory_from_file(small_cluster(), tmp_path), "source": None}
    assert any(q.get("continue") for _, q, _ in fake_api.requests)


def test_metrics_not_served_notes_and_requests_basis(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    fake_api.missing |= {r.NODE_METRICS.path(), r.POD_METRICS.path()}
    state = read_live(kubeconfig)
    assert not state.metrics_available
    assert all(n.usage is None for n in state.nodes)
    # Exactly one note about metrics, saying why they are missing.
    assert [n for n in state.notes if "metrics" in n] == [
        "metrics.k8s.io is not served (no metrics-server): utilisation is by requests"
    ]
    doc = inventory_document(state)
    assert doc["basis"] == "requests"
    assert doc["nodes"][1]["cpu_usage"] is None and doc["nodes"][1]["cpu_requests"] is not None


def test_metrics_unavailable_503_degrades(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    fake_api.broken |= {r.NODE_METRICS.path(), r.POD_METRICS.path()}
    state = read_live(kubeconfig)
    assert not state.metrics_available
    assert any("metrics-server not ready" in n for n in state.notes)


@pytest.mark.parametrize(
    ("missing", "note"),
    [
        pytest.param(r.DATAVOLUMES, "DataVolumes: not served", id="no-cdi"),
        pytest.param(r.KUBEVIRTS, "the KubeVirt CR", id="no-kubevirt-cr"),
        pytest.param(r.CLUSTER_INSTANCETYPES, "u1 series sizes assumed", id="no-instancetypes"),
    ],
)
def test_optional_resources_not_served(fake_api: FakeApi, kubeconfig: Path, missing: r.ApiResource, note: str) -> None:
    fake_api.load(small_cluster())
    fake_api.missing.add(missing.path())
    state = read_live(kubeconfig)
    assert any(note in n for n in state.notes)
    assert len(state.vms) == 5


def test_namespaced_instancetypes_missing_is_silent(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    fake_api.missing.add(r.INSTANCETYPES.path())
    assert read_live(kubeconfig).notes == ()


def test_optional_forbidden_is_a_note(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    fake_api.forbidden.add(r.KUBEVIRTS.path())
    state = read_live(kubeconfig)
    assert any("not readable" in n and "kubevirts.kubevirt.io" in n for n in state.notes)
    assert state.limits.parallel_per_cluster == 5


@pytest.mark.parametrize(
    "resource",
    [pytest.param(res, id=res.plural) for res in (r.NODES, r.PODS, r.VMS, r.VMIS)],
)
def test_required_list_forbidden_names_verb_and_resource(
    fake_api: FakeApi, kubeconfig: Path, resource: r.ApiResource
) -> None:
    fake_api.load(small_cluster())
    fake_api.forbidden.add(resource.path())
    with pytest.raises(ClusterForbiddenError) as info:
        read_live(kubeconfig)
    error = info.value
    assert f"cannot list {resource.qualified}" in str(error)
    assert "'list'" in error.hint and resource.qualified in error.hint
    assert error.exit_code == 3 and error.status == 403
    assert_clean(error, kubeconfig)


def test_unauthorized(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.token = "another-token"
    with pytest.raises(ClusterForbiddenError, match="401") as info:
        read_live(kubeconfig)
    assert info.value.exit_code == 3
    assert_clean(info.value, kubeconfig)


def test_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kc = write_kubeconfig(tmp_path / "kc.yaml", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ClusterUnreachableError, match="cannot reach the Kubernetes API server") as info:
        read_live(kc)
    assert info.value.exit_code == 3
    assert_clean(info.value, kc)


def test_required_kind_not_served_is_a_cluster_error(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.missing.add(r.VMS.path())
    with pytest.raises(ClusterError, match=r"virtualmachines.kubevirt.io") as info:
        read_live(kubeconfig)
    assert_clean(info.value, kubeconfig)


def test_server_error_on_required_list(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.broken.add(r.PODS.path())
    with pytest.raises(ClusterError, match="HTTP 503") as info:
        read_live(kubeconfig)
    assert info.value.exit_code == 3


# ------------------------------------------------------------------------------ kubeconfig errors


def _assert_config_error(exc: pytest.ExceptionInfo[RebalanceError], *paths: Path, exit_code: int = 3) -> None:
    assert exc.value.exit_code == exit_code
    for text in (str(exc.value), exc.value.hint or ""):
        for p in paths:
            assert str(p) not in text and p.name not in text
        assert TOKEN not in text


def test_kubeconfig_flag_pointing_nowhere(tmp_path: Path) -> None:
    missing = tmp_path / "missing-kubeconfig.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:  # a bad option value: exit 2
        KubeClient.from_kubeconfig(str(missing))
    _assert_config_error(info, missing, exit_code=2)


@pytest.mark.parametrize("env", [pytest.param(None, id="unset"), pytest.param("", id="empty")])
def test_no_kubeconfig_anywhere(env: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv("KUBECONFIG", raising=False)
    else:
        monkeypatch.setenv("KUBECONFIG", env)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterConfigError, match="no kubeconfig found") as info:
        KubeClient.from_kubeconfig()
    assert "--kubeconfig" in info.value.hint
    _assert_config_error(info, tmp_path)


def test_kubeconfig_env_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope.yaml"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterConfigError, match="no kubeconfig found") as info:
        KubeClient.from_kubeconfig()
    _assert_config_error(info, tmp_path / "nope.yaml")


def test_kubeconfig_from_env_is_used(fake_api: FakeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_api.load(small_cluster())
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with KubeClient.from_kubeconfig() as client:
        assert len(KubernetesSource(client).read().nodes) == 4


def test_kubeconfig_from_home(
    fake_api: FakeApi, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.load(small_cluster())
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(kubeconfig.read_text())
    monkeypatch.setenv("HOME", str(home))
    with KubeClient.from_kubeconfig() as client:
        assert len(KubernetesSource(client).read().vms) == 5


def test_context_selection(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    assert len(read_live(kubeconfig, context="fake").nodes) == 4
    with pytest.raises(ConfigError, match="context 'nope' is not in the kubeconfig") as info:  # bad option: exit 2
        KubeClient.from_kubeconfig(str(kubeconfig), context="nope")
    _assert_config_error(info, kubeconfig, exit_code=2)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("clusters: [\n  - {name: x\n", id="invalid-yaml"),
        pytest.param("apiVersion: v1\nkind: Config\n\tclusters: []\n", id="tab-indent"),
        pytest.param("", id="empty"),
        pytest.param("just a string\n", id="not-a-mapping"),
        pytest.param("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", id="no-context"),
        pytest.param(
            f"apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context:"
            f" {{cluster: missing, user: u}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\n",
            id="dangling-cluster",
        ),
    ],
)
def test_malformed_kubeconfig(content: str, tmp_path: Path) -> None:
    path = tmp_path / "broken-kubeconfig.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ClusterConfigError) as info:
        KubeClient.from_kubeconfig(str(path))
    _assert_config_error(info, path)


def test_raw_objects_are_read_once(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        seen: list[str] = []
        source = KubernetesSource(client, progress=seen.append)
        first = source.raw_objects()
        count = len(fake_api.requests)
        assert source.raw_objects() is first
        assert len(fake_api.requests) == count
    assert seen[0] == "reading nodes" and "reading virtualmachines.kubevirt.io" in seen
