"""kopf (PyPI) as a real client: a tiny operator (operators/widget_operator.py) runs as `kopf run` against a
SimulatorServer over HTTPS, watches a CRD registered in the simulator, patches status, posts events, adds
and removes its finalizer, and takes part in kopf's peering (a KopfPeering custom resource); and the same
operator as a ServiceAccount with only its ClusterRole while the simulator enforces RBAC."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.e2e, pytest.mark.slow]

OPERATOR = Path(__file__).parent / "operators" / "widget_operator.py"
GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"


def crd(group: str, plural: str, kind: str, schema: dict[str, Any], *, status: bool) -> dict[str, Any]:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if status:
        version["subresources"] = {"status": {}}
        version["additionalPrinterColumns"] = [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [version],
        },
    }


WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer", "minimum": 1}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
PEERING_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, dict[str, str], client.ApiClient]]:
    cluster = small_cluster(seed=9)
    with SimulatorServer(cluster) as srv:
        home = tmp_path_factory.mktemp("kopf-home")
        srv.write_kubeconfig(home / "config")
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(home / "config"), client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            ext = client.ApiextensionsV1Api(api)
            ext.create_custom_resource_definition(crd(GROUP, PLURAL, "Widget", WIDGET_SCHEMA, status=True))
            ext.create_custom_resource_definition(
                crd("kopf.dev", "kopfpeerings", "KopfPeering", PEERING_SCHEMA, status=False)
            )
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                "kopf.dev",
                "v1",
                "default",
                "kopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "example"}},
            )
            env = {
                **os.environ,
                "HOME": str(home),
                "KUBECONFIG": str(home / "config"),
                "PYTHONUNBUFFERED": "1",
            }
            yield srv, env, api


def wait_for(what: str, check: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_kopf_operator_handles_a_custom_resource(
    env: tuple[SimulatorServer, dict[str, str], client.ApiClient], tmp_path: Path
) -> None:
    srv, environ, api = env
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    log = (tmp_path / "kopf.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--namespace",
            "default",
            "--peering",
            "example",
            "--verbose",
            str(OPERATOR),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ,
    )
    try:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}},
        )

        def widget() -> dict[str, Any]:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
            return obj

        done = wait_for("the create handler's status", lambda: widget().get("status", {}).get("created"))
        assert done == {"doubled": 6}
        assert widget()["status"]["phase"] == "Handled"
        assert "example.dev/widget-operator" in widget()["metadata"]["finalizers"]

        def events(reason: str) -> list[Any]:
            return [
                e
                for e in core.list_namespaced_event("default").items
                if e.reason == reason and e.involved_object.name == "w1"
            ]

        event = wait_for("kopf's Sized event", lambda: events("Sized"))[0]
        assert event.message == "widget has size 3" and event.involved_object.kind == "Widget"
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1", {"spec": {"size": 5}})
        wait_for("the update handler", lambda: widget().get("status", {}).get("phase") == "Resized to 5")
        assert wait_for("kopf's Resized warning", lambda: events("Resized"))[0].type == "Warning"
        peering = custom.get_namespaced_custom_object("kopf.dev", "v1", "default", "kopfpeerings", "example")
        assert peering.get("status"), peering  # kopf announced itself in the peering object
        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
        wait_for(
            "the finalizer to be released",
            lambda: srv.cluster.store.try_get((GROUP, PLURAL), "default", "w1") is None,
        )
        assert wait_for("kopf's Deleting event", lambda: events("Deleting"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    output = (tmp_path / "kopf.log").read_text()
    assert "Traceback" not in output, output[-3000:]
    assert srv.cluster.controller_errors == []


#: What the widget operator needs, and nothing more: kopf's own runtime observation of CRDs and namespaces
#: (kopf's documented RBAC; without them it retries 403s and never starts), its resources, their status,
#: its peering object and events.
OPERATOR_RULES = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
]


def test_kopf_runs_as_a_service_account_with_only_its_cluster_role(tmp_path: Path) -> None:
    """RBAC on: the operator runs with a ServiceAccount token bound to OPERATOR_RULES only, and works;
    what it may not do (delete a widget) is refused with kube-apiserver's 403."""
    with SimulatorServer(small_cluster(seed=10), rbac=True) as srv:
        srv.write_kubeconfig(tmp_path / "admin")
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(tmp_path / "admin"), client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            ext = client.ApiextensionsV1Api(api)
            ext.create_custom_resource_definition(crd(GROUP, PLURAL, "Widget", WIDGET_SCHEMA, status=True))
            ext.create_custom_resource_definition(
                crd("kopf.dev", "kopfpeerings", "KopfPeering", PEERING_SCHEMA, status=False)
            )
            custom = client.CustomObjectsApi(api)
            custom.create_namespaced_custom_object(
                "kopf.dev",
                "v1",
                "default",
                "kopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "example"}},
            )
            core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
            core.create_namespaced_service_account("default", {"metadata": {"name": "widget-operator"}})
            rbac.create_cluster_role({"metadata": {"name": "widget-operator"}, "rules": OPERATOR_RULES})
            rbac.create_cluster_role_binding(
                {
                    "metadata": {"name": "widget-operator"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "widget-operator",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "widget-operator", "namespace": "default"}],
                }
            )
            srv.write_kubeconfig(tmp_path / "operator", service_account="default/widget-operator")
            environ = {
                **os.environ,
                "HOME": str(tmp_path),
                "KUBECONFIG": str(tmp_path / "operator"),
                "PYTHONUNBUFFERED": "1",
            }
            log = (tmp_path / "kopf.log").open("w")
            proc = subprocess.Popen(
                [sys.executable, "-m", "kopf", "run", "--namespace", "default", "--peering", "example", str(OPERATOR)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
            )
            try:
                custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    "default",
                    PLURAL,
                    {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 2}},
                )
                status = wait_for(
                    "the operator's status",
                    lambda: custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1").get("status"),
                )
                assert status.get("phase") == "Handled", status
                sized = wait_for(
                    "the Sized event",
                    lambda: [e for e in core.list_namespaced_event("default").items if e.reason == "Sized"],
                )
                assert sized[0].involved_object.name == "w1"
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                log.close()
        output = (tmp_path / "kopf.log").read_text()
        assert "Traceback" not in output and "Forbidden" not in output, output[-3000:]
        # the same identity may not delete widgets
        as_operator = client.Configuration()
        config.load_kube_config(config_file=str(tmp_path / "operator"), client_configuration=as_operator)
        with client.ApiClient(as_operator) as api, pytest.raises(client.ApiException) as err:
            client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")
        assert err.value.status == 403
        assert json.loads(err.value.body)["message"] == (
            'widgets.example.dev "w1" is forbidden: User "system:serviceaccount:default:widget-operator" cannot '
            'delete resource "widgets" in API group "example.dev" in the namespace "default"'
        )
