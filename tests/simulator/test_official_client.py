"""The official ``kubernetes`` Python client against a real SimulatorServer over HTTPS."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e

KV = ("kubevirt.io", "v1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, Path]]:
    cluster = small_cluster(seed=3)
    with SimulatorServer(cluster) as srv:
        path = tmp_path_factory.mktemp("kube") / "config"
        srv.write_kubeconfig(path)
        yield srv, path


@pytest.fixture(scope="module")
def api(server: tuple[SimulatorServer, Path]) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(server[1]), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield api_client


def running_migratable_vmi(custom: client.CustomObjectsApi, exclude: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        vmis = custom.list_cluster_custom_object(*KV, "virtualmachineinstances")["items"]
        for vmi in vmis:
            conds = {c["type"]: c["status"] for c in vmi.get("status", {}).get("conditions", [])}
            if (
                vmi.get("status", {}).get("phase") == "Running"
                and conds.get("LiveMigratable") == "True"
                and not vmi.get("status", {}).get("migrationState")
                and vmi["metadata"]["name"] not in exclude
            ):
                return vmi  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("no running live-migratable VMI in the test cluster")


def test_list_nodes_and_vms(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node()
    assert len(nodes.items) >= 3
    assert all(n.metadata.resource_version for n in nodes.items)
    vms = client.CustomObjectsApi(api).list_cluster_custom_object(*KV, "virtualmachines")
    assert vms["kind"] == "VirtualMachineList" and len(vms["items"]) == 6
    assert vms["items"][0]["apiVersion"] == "kubevirt.io/v1"


def test_create_migration_and_watch_it_until_succeeded(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    vmi = running_migratable_vmi(custom, set())
    ns, name, source = vmi["metadata"]["namespace"], vmi["metadata"]["name"], vmi["status"]["nodeName"]
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"generateName": f"mig-{name}-"},
        "spec": {"vmiName": name},
    }
    created = custom.create_namespaced_custom_object(*KV, ns, "virtualmachineinstancemigrations", body)
    mig = created["metadata"]["name"]
    assert created["metadata"]["labels"]["kubevirt.io/vmi-name"] == name
    phases: list[str] = []
    w = watch.Watch()
    for event in w.stream(
        custom.list_namespaced_custom_object,
        *KV,
        ns,
        "virtualmachineinstancemigrations",
        field_selector=f"metadata.name={mig}",
        timeout_seconds=30,
    ):
        phase = event["object"].get("status", {}).get("phase")
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
        if phase in ("Succeeded", "Failed"):
            w.stop()
    assert phases[-1] == "Succeeded", phases
    after = custom.get_namespaced_custom_object(*KV, ns, "virtualmachineinstances", name)
    assert after["status"]["nodeName"] != source


def test_stale_update_is_409_with_the_exact_message(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    vm = custom.list_cluster_custom_object(*KV, "virtualmachines")["items"][0]
    ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    first = json.loads(json.dumps(vm))
    first["metadata"].setdefault("labels", {})["touched"] = "1"
    custom.replace_namespaced_custom_object(*KV, ns, "virtualmachines", name, first)
    vm["metadata"].setdefault("labels", {})["touched"] = "2"
    with pytest.raises(ApiException) as info:
        custom.replace_namespaced_custom_object(*KV, ns, "virtualmachines", name, vm)
    assert info.value.status == 409
    status = json.loads(info.value.body)
    assert status["message"] == (
        f'Operation cannot be fulfilled on virtualmachines.kubevirt.io "{name}": the object has been '
        "modified; "
        "please apply your changes to the latest version and try again"
    )
    assert status["reason"] == "Conflict"


def test_patches_through_the_client(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    vm = custom.list_cluster_custom_object(*KV, "virtualmachines")["items"][-1]
    ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    patched = custom.patch_namespaced_custom_object(
        *KV, ns, "virtualmachines", name, {"metadata": {"labels": {"patched": "yes"}}}
    )
    assert patched["metadata"]["labels"]["patched"] == "yes"
    core = client.CoreV1Api(api)
    node = core.list_node().items[0].metadata.name
    out = core.patch_node(node, {"metadata": {"labels": {"sim-test": "smp"}}})  # dict body → strategic merge
    assert out.metadata.labels["sim-test"] == "smp"
    with pytest.raises(ApiException) as info:
        custom.get_namespaced_custom_object(*KV, ns, "virtualmachines", "does-not-exist")
    assert info.value.status == 404


def test_raw_list_with_preload_content_false(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    raw = custom.list_cluster_custom_object(*KV, "virtualmachines", _preload_content=False)
    body = json.loads(raw.data)
    assert body["metadata"]["resourceVersion"]


@pytest.mark.slow
def test_deployment_kinds_rbac_and_a_service_account_token(
    server: tuple[SimulatorServer, Path], api: client.ApiClient
) -> None:
    """The typed APIs of what a deployment applies decode (the models refuse missing required fields), and a
    TokenRequest token authenticates as its ServiceAccount."""
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="oc")))
    core.create_namespaced_service_account("oc", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="bot")))
    labels = {"app": "oc"}
    apps.create_namespaced_deployment(
        "oc",
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="oc"),
            spec=client.V1DeploymentSpec(
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="quay.io/x/y:2")]),
                ),
            ),
        ),
    )
    service = core.create_namespaced_service(
        "oc",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="oc"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=9090)])
        ),
    )
    assert service.spec.cluster_ip and service.spec.ports[0].target_port == 9090
    core.create_namespaced_config_map("oc", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"}))
    assert core.read_namespaced_config_map("c", "oc").data == {"k": "v"}
    roles = {r.metadata.name: r for r in rbac.list_cluster_role().items}
    assert roles["system:basic-user"].rules[0].resources == ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
    bindings = {b.metadata.name: b for b in rbac.list_cluster_role_binding().items}
    assert bindings["cluster-admin"].subjects[0].name == "system:masters"
    deadline = time.monotonic() + 20
    while not (apps.read_namespaced_deployment_status("oc", "oc").status.available_replicas or 0):
        assert time.monotonic() < deadline, "the Deployment never became available"
        time.sleep(0.05)
    request = core.create_namespaced_service_account_token(
        "bot",
        "oc",
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=900)),
    )
    assert request.status.token and request.spec.expiration_seconds == 900
    as_bot_config = server[0].kubeconfig()
    as_bot_config["users"][0]["user"]["token"] = request.status.token
    cfg = client.Configuration()
    config.load_kube_config_from_dict(as_bot_config, client_configuration=cfg)
    with client.ApiClient(cfg) as as_bot:
        review = client.AuthenticationV1Api(as_bot).create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status.user_info.username == "system:serviceaccount:oc:bot"
    core.delete_namespaced_service_account("bot", "oc")
    with client.ApiClient(cfg) as as_bot, pytest.raises(ApiException) as err:
        client.CoreV1Api(as_bot).list_namespace()
    assert err.value.status == 401
