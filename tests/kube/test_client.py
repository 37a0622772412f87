"""The raw-JSON client: kubeconfig loading, listing, error translation, never leaking secrets."""

import logging
from pathlib import Path

import pytest

from fakeapi import TOKEN, FakeApi, free_port, write_kubeconfig
from rawobjects import node_obj, small_cluster
from vm_rebalance.errors import (
    ClusterConfigError,
    ClusterError,
    ClusterUnreachableError,
    ResourceNotFoundError,
)
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient, _sanitize, load_configuration


@pytest.mark.parametrize(
    ("res", "namespace", "name", "sub", "path"),
    [
        pytest.param(r.NODES, None, None, None, "/api/v1/nodes", id="core-cluster"),
        pytest.param(r.NODES, "ns", "w1", None, "/api/v1/nodes/w1", id="cluster-scoped-ignores-namespace"),
        pytest.param(r.PODS, "ns", None, None, "/api/v1/namespaces/ns/pods", id="core-namespaced"),
        pytest.param(r.VMS, None, None, None, "/apis/kubevirt.io/v1/virtualmachines", id="group-all-namespaces"),
        pytest.param(
            r.VM_SUBRESOURCES,
            "ns",
            "db",
            "start",
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/db/start",
            id="subresource",
        ),
        pytest.param(r.NODE_METRICS, None, None, None, "/apis/metrics.k8s.io/v1beta1/nodes", id="metrics"),
    ],
)
def test_resource_paths(
    res: r.ApiResource, namespace: str | None, name: str | None, sub: str | None, path: str
) -> None:
    assert res.path(namespace, name, sub) == path


def test_resource_names() -> None:
    assert (r.PODS.group_version, r.PODS.qualified) == ("v1", "pods")
    assert (r.VMS.group_version, r.VMS.qualified) == ("kubevirt.io/v1", "virtualmachines.kubevirt.io")


def test_list_fills_kind_and_api_version(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load([node_obj("w1"), node_obj("w2")])
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        nodes = client.list(r.NODES)
        assert client.list(r.VMS) == []
    assert [(n["kind"], n["apiVersion"], n["metadata"]["name"]) for n in nodes] == [
        ("Node", "v1", "w1"),
        ("Node", "v1", "w2"),
    ]


def test_list_passes_selectors(fake_api: FakeApi, kubeconfig: Path) -> None:
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        client.list(r.PODS, label_selector="kubevirt.io=virt-launcher", field_selector="spec.nodeName=w1")
    ((_, query, _),) = fake_api.requests
    assert query == {
        "limit": "500",
        "labelSelector": "kubevirt.io=virt-launcher",
        "fieldSelector": "spec.nodeName=w1",
    }


def test_paging_with_one_item_per_page(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        names = [n["metadata"]["name"] for n in client.iter_list(r.NODES, page_size=1)]
    assert names == ["w1", "w2", "w3", "cp1"]
    assert len(fake_api.requests) == 4


def test_get_missing_object(fake_api: FakeApi, kubeconfig: Path) -> None:
    with (
        KubeClient.from_kubeconfig(str(kubeconfig)) as client,
        pytest.raises(ResourceNotFoundError, match="nodes 'w9' not found") as info,
    ):
        client.get(r.NODES, "w9")
    assert info.value.exit_code == 3


def test_unreadable_answer(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.garbage.add(r.NODES.path())
    with (
        KubeClient.from_kubeconfig(str(kubeconfig)) as client,
        pytest.raises(ClusterError, match="the API server sent an unreadable answer to list nodes"),
    ):
        client.list(r.NODES)


def test_unreachable_server_message(tmp_path: Path) -> None:
    port = free_port()
    kc = write_kubeconfig(tmp_path / "kc.yaml", f"http://127.0.0.1:{port}")
    with KubeClient.from_kubeconfig(str(kc)) as client, pytest.raises(ClusterUnreachableError) as info:
        client.list(r.NODES)
    assert str(info.value) == (
        f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}: "
        "the connection was refused or the host is unreachable"
    )
    assert TOKEN not in str(info.value) and str(kc) not in str(info.value)


def test_timeout_is_unreachable(tmp_path: Path) -> None:
    import socket

    # A listening socket that never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        kc = write_kubeconfig(tmp_path / "kc.yaml", f"http://127.0.0.1:{silent.getsockname()[1]}")
        client = KubeClient(load_configuration(str(kc)), timeout_seconds=0.2)
        with pytest.raises(ClusterUnreachableError, match="timed out"):
            client.list(r.NODES)
        client.close()


def test_configuration_never_debug(kubeconfig: Path) -> None:
    configuration = load_configuration(str(kubeconfig))
    assert configuration.debug is False
    assert configuration.host.startswith("http://127.0.0.1:")


def test_token_never_logged(fake_api: FakeApi, kubeconfig: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_api.forbidden.add(r.NODES.path())
    with (
        caplog.at_level(logging.DEBUG),
        KubeClient.from_kubeconfig(str(kubeconfig)) as client,
        pytest.raises(ClusterError),
    ):
        client.list(r.NODES)
    assert TOKEN not in caplog.text


def test_in_cluster_configuration_incomplete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ClusterConfigError, match="in-cluster configuration is incomplete") as info:
        load_configuration()
    assert "/var/run/secrets" not in str(info.value)


def test_kubeconfig_list_in_env_is_merged(
    fake_api: FakeApi, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "absent.yaml"), str(kubeconfig)]))
    assert load_configuration().host.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        pytest.param(
            "Invalid kube-config file /home/a/.kube/config",
            "Invalid kube-config file <kubeconfig>",
            id="known-path",
        ),
        pytest.param("bad file /etc/other/file.yaml here", "bad file <path> here", id="any-path"),
        pytest.param("x" * 500, "x" * 256, id="cut"),
    ],
)
def test_sanitize(text: str, clean: str) -> None:
    assert _sanitize(text, ["/home/a/.kube/config"]) == clean


def test_transient_errors_are_retried_for_reads_but_not_for_writes(monkeypatch):
    from vm_rebalance.errors import ClusterError
    from vm_rebalance.kube import client as kc

    calls: list[str] = []
    answers: list[int] = []

    def once(self, method, path, **kwargs):
        calls.append(method)
        status = answers.pop(0)
        if status >= 400:
            raise ClusterError(f"HTTP {status}", status=status)
        return {"ok": True}

    monkeypatch.setattr(kc.KubeClient, "_request_once", once)
    client = kc.KubeClient.__new__(kc.KubeClient)
    client.retry_delays = (0.0, 0.0, 0.0)
    answers[:] = [503, 500, 200]
    assert client.request("GET", "/api/v1/nodes", verb="list", resource="nodes") == {"ok": True}
    assert calls == ["GET"] * 3
    calls.clear()
    answers[:] = [503]
    with pytest.raises(ClusterError):
        client.request("POST", "/x", body={}, verb="create", resource="x")
    assert calls == ["POST"]  # a write that may have happened is not repeated blindly
    calls.clear()
    answers[:] = [429, 200]
    assert client.request("POST", "/x", body={}, verb="create", resource="x") == {"ok": True}
    assert calls == ["POST", "POST"]  # 429: the server did not act
    calls.clear()
    answers[:] = [503, 503, 503, 503]
    with pytest.raises(ClusterError):
        client.request("GET", "/x", verb="get", resource="x")
    assert len(calls) == 4  # bounded


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param(
            "exec: process returned 7. exec failed, token=abc",
            "the kubeconfig's credential plugin (exec) failed with exit code 7; what it printed is not shown",
            id="exec-exit",
        ),
        pytest.param(
            "cmd-path: process returned 1\nCmd: gcloud\nStderr: token=abc",
            "the kubeconfig's auth-provider command (cmd-path) failed with exit code 1; what it printed is not shown",
            id="cmd-path",
        ),
        pytest.param(
            "exec: failed to decode process output: token=abc",
            "the kubeconfig's credential plugin gave an unusable answer; what it printed is not shown",
            id="exec-output",
        ),
        pytest.param(
            "Invalid kube-config file. Expected key server in kube-config/clusters[name=x]/cluster\nmore",
            "the kubeconfig cannot be used: Invalid kube-config file. Expected key server in kube-config<path>",
            id="first-line-only",
        ),
    ],
)
def test_client_config_errors_never_carry_what_a_plugin_printed(text: str, shown: str) -> None:
    from kubernetes.config.config_exception import ConfigException

    from vm_rebalance.kube.client import _config_problem

    assert _config_problem(ConfigException(text), []) == shown
