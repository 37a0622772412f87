"""`vm-rebalance inventory` and `snapshot` end to end through the run() error boundary."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakeapi import TOKEN, FakeApi, free_port, write_kubeconfig
from rawobjects import SECRET, as_list, migration_obj, node_obj, small_cluster, with_secrets
from vm_rebalance.cli.main import run
from vm_rebalance.kube import resources as r


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        run(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VM_REBALANCE_KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_inventory_json_reports_every_node_and_vm(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "inventory", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == "snapshot" and doc["basis"] == "usage"
    assert [n["name"] for n in doc["nodes"]] == ["cp1", "w1", "w2", "w3"]
    assert [v["name"] for v in doc["vms"]] == ["big", "cache", "db", "off", "web"]
    node_keys = {
        "name",
        "eligible",
        "flags",
        "vms",
        "cpu_usage",
        "memory_usage",
        "cpu_requests",
        "memory_requests",
        "health",
        "allocatable",
        "requested",
        "taints",
    }
    vm_keys = {
        "namespace",
        "name",
        "node",
        "status",
        "instance_type",
        "vcpus",
        "memory_bytes",
        "storage",
        "move_method",
        "move_reason",
        "requests",
        "volumes",
        "live_migratable",
    }
    assert all(node_keys <= set(n) for n in doc["nodes"])
    assert all(vm_keys <= set(v) for v in doc["vms"])
    web = next(v for v in doc["vms"] if v["name"] == "web")
    assert (web["node"], web["storage"], web["move_method"]) == ("w1", "RWO", "cold")
    assert doc["totals"]["headroom"]["target"] == 0.2


def test_inventory_yaml_carries_the_same_facts(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    _, as_json, _ = cli(capsys, "--from-file", str(snapshot_file), "inventory", "-o", "json")
    code, as_yaml, _ = cli(capsys, "--from-file", str(snapshot_file), "inventory", "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_inventory_table(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "-f", str(snapshot_file), "inventory")
    assert code == 0 and err == ""
    for name in ("cp1", "w1", "w2", "w3", "big", "cache", "db", "off", "web"):
        assert name in out
    assert "Nodes" in out and "Virtual machines" in out and "Headroom" in out


@pytest.mark.parametrize(
    ("args", "vms"),
    [
        pytest.param(["-n", "prod"], ["a"], id="one-namespace"),
        pytest.param(["-n", "prod", "-n", "dev"], ["b", "a"], id="two-namespaces"),
        pytest.param(["-A"], ["b", "a"], id="all-namespaces"),
        pytest.param([], ["b", "a"], id="default-all"),
        pytest.param(["--namespace", "none"], [], id="no-match"),
    ],
)
def test_namespace_filters_vms_not_nodes(
    args: list[str], vms: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rawobjects import launcher_pod_obj, vm_obj, vmi_obj

    objs: list[dict[str, Any]] = [node_obj("w1"), node_obj("w2")]
    for name, ns, node in (("a", "prod", "w1"), ("b", "dev", "w2")):
        vm = vm_obj(name, namespace=ns, container_disk=True)
        vmi = vmi_obj(vm, node)
        objs += [vm, vmi, launcher_pod_obj(vmi)]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(as_list(objs)), encoding="utf-8")
    code, out, err = cli(capsys, "--from-file", str(path), "inventory", "-o", "json", *args)
    assert code == 0, err
    doc = json.loads(out)
    assert [v["name"] for v in doc["vms"]] == vms
    assert [(n["name"], n["vms"]) for n in doc["nodes"]] == [("w1", 1), ("w2", 1)]


def test_live_inventory_and_snapshot_round_trip(
    capsys: pytest.CaptureFixture[str], fake_api: FakeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_api.load(small_cluster())
    code, live_out, err = cli(capsys, "--kubeconfig", str(kubeconfig), "inventory", "-o", "json")
    assert code == 0, err
    saved = tmp_path / "saved.json"
    code, out, err = cli(capsys, "--kubeconfig", str(kubeconfig), "snapshot", "-o", str(saved))
    assert code == 0 and out == ""
    assert "wrote" in err
    text = saved.read_text()
    assert TOKEN not in text and str(kubeconfig) not in text
    code, file_out, err = cli(capsys, "--from-file", str(saved), "inventory", "-o", "json")
    assert code == 0, err
    live, offline = json.loads(live_out), json.loads(file_out)
    assert (live["source"], offline["source"]) == ("cluster", "snapshot")
    assert {**live, "source": None} == {**offline, "source": None}


def test_snapshot_holds_no_pod_env_values(
    capsys: pytest.CaptureFixture[str], fake_api: FakeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_api.load(with_secrets(small_cluster()))
    code, live_out, err = cli(capsys, "--kubeconfig", str(kubeconfig), "inventory", "-o", "json")
    assert code == 0, err
    saved = tmp_path / "saved.json"
    code, _, err = cli(capsys, "--kubeconfig", str(kubeconfig), "snapshot", "-o", str(saved))
    assert code == 0, err
    text = saved.read_text()
    assert SECRET not in text and "PASSWORD" not in text and "managedFields" not in text
    code, file_out, err = cli(capsys, "--from-file", str(saved), "inventory", "-o", "json")
    assert code == 0, err
    assert {**json.loads(live_out), "source": None} == {**json.loads(file_out), "source": None}
    # Re-snapshotting a snapshot file slims it too.
    full = tmp_path / "full.json"
    full.write_text(json.dumps(as_list(with_secrets(small_cluster()))), encoding="utf-8")
    code, out, err = cli(capsys, "--from-file", str(full), "snapshot")
    assert code == 0, err
    assert SECRET not in out


@pytest.mark.e2e
def test_slim_snapshot_of_the_simulator_demo_loads_back(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from vm_rebalance.simulator.cluster import SimCluster
    from vm_rebalance.simulator.server import SimulatorServer

    pods = ("", "pods")
    vmis = ("kubevirt.io", "virtualmachineinstances")
    cluster = SimCluster.from_scenario("demo", manual_clock=True)
    pod = cluster.store.list(pods)[0][0]

    def add_secret(o: dict[str, Any]) -> None:
        o["spec"]["containers"][0]["env"] = [{"name": "PASSWORD", "value": SECRET}]

    cluster.store.mutate(pods, pod["metadata"].get("namespace"), pod["metadata"]["name"], add_secret)
    saved = tmp_path / "demo.json"
    kubeconfig = tmp_path / "kubeconfig"
    with SimulatorServer(cluster, manage_cluster=False) as srv:  # a frozen cluster: no controller ticks
        srv.write_kubeconfig(kubeconfig)
        code, live_out, err = cli(capsys, "--kubeconfig", str(kubeconfig), "inventory", "-o", "json")
        assert code == 0, err
        code, _, err = cli(capsys, "--kubeconfig", str(kubeconfig), "snapshot", "-o", str(saved))
        assert code == 0, err
    assert SECRET not in saved.read_text()
    code, file_out, err = cli(capsys, "--from-file", str(saved), "inventory", "-o", "json")
    assert code == 0, err
    live, offline = json.loads(live_out), json.loads(file_out)
    assert {**live, "source": None} == {**offline, "source": None}
    reloaded = SimCluster.from_scenario(str(saved), manual_clock=True)
    placement = {(v["metadata"]["uid"], v["status"].get("nodeName")) for v in cluster.store.list(vmis)[0]}
    assert {(v["metadata"]["uid"], v["status"].get("nodeName")) for v in reloaded.store.list(vmis)[0]} == placement
    assert reloaded.store.count(pods) == cluster.store.count(pods)
    assert reloaded.recorder.capacity_overruns == []


def test_snapshot_to_stdout_is_a_list(capsys: pytest.CaptureFixture[str], fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    code, out, _ = cli(capsys, "--kubeconfig", str(kubeconfig), "snapshot")
    assert code == 0
    doc = json.loads(out)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    assert len(doc["items"]) == len(small_cluster())
    assert {o["kind"] for o in doc["items"]} >= {
        "Node",
        "Pod",
        "VirtualMachine",
        "VirtualMachineInstance",
        "PersistentVolumeClaim",
        "KubeVirt",
        "NodeMetrics",
        "PodMetrics",
    }


def test_kubeconfig_from_environment_variable(
    capsys: pytest.CaptureFixture[str], fake_api: FakeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.load(small_cluster())
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, out, err = cli(capsys, "inventory", "-o", "json")
    assert code == 0, err
    assert len(json.loads(out)["nodes"]) == 4


# ------------------------------------------------------------------------------ errors


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert all(line.startswith(("error:", "hint:")) for line in lines), err
    return errors[0]


def _malformed(kind: str, path: tuple[str, ...], value: Any, *, extra: tuple[dict[str, Any], ...] = ()) -> str:
    """A snapshot of the small cluster with ``path`` set to ``value`` in its first object of ``kind``."""
    objects = [*small_cluster(), *extra]
    target: Any = next(o for o in objects if o["kind"] == kind)
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(as_list(objects))


MALFORMED_OBJECTS = [
    pytest.param(
        _malformed("Pod", ("spec", "containers"), [None]),
        "Pod default/virt-launcher-db-abcde: malformed field",
        id="pod-null-container",
    ),
    pytest.param(_malformed("Pod", ("metadata",), "x"), "Pod (object #", id="pod-metadata-string"),
    pytest.param(
        _malformed("VirtualMachineInstanceMigration", ("status",), "weird", extra=(migration_obj("m1", "db"),)),
        "VirtualMachineInstanceMigration default/m1: malformed field",
        id="vmim-status-string",
    ),
    pytest.param(
        _malformed("NodeMetrics", ("usage",), ["1"]), "NodeMetrics w1: malformed field", id="node-metrics-list"
    ),
    pytest.param(
        _malformed("PodMetrics", ("containers",), [3]),
        "PodMetrics default/virt-launcher-db-abcde: malformed field",
        id="pod-metrics-int",
    ),
    pytest.param(
        _malformed("PersistentVolumeClaim", ("status", "accessModes"), "ReadWriteMany"),
        "PersistentVolumeClaim default/db-root: malformed field: accessModes is not a list",
        id="pvc-modes-string",
    ),
]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(None, "does not exist", id="missing-file"),
        pytest.param('{"kind": "List", "items": [', "truncated", id="truncated"),
        pytest.param("kind: List\nitems: [\n", "not valid YAML", id="invalid-yaml"),
        pytest.param("", "is empty", id="empty"),
        pytest.param(
            json.dumps(as_list([node_obj("w1", memory="[lots]")])),
            "Node w1: status.capacity.memory",
            id="malformed-quantity",
        ),
        pytest.param(json.dumps(as_list([node_obj("w1", cpu="1e30")])), "absurd", id="absurd-quantity"),
        *MALFORMED_OBJECTS,
    ],
)
def test_bad_snapshot_exits_2(
    content: str | None, words: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = cli(capsys, "--from-file", str(path), "inventory", "-o", "json")
    assert code == 2
    assert out == ""
    line = _one_error_line(err)
    assert words in line
    assert str(tmp_path) not in err


def test_markup_in_messages_is_shown_verbatim(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(as_list([node_obj("w1", memory="[bold]")])), encoding="utf-8")
    _, _, err = cli(capsys, "--from-file", str(path), "inventory")
    assert "'[bold]'" in _one_error_line(err)


def test_unreachable_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kc = write_kubeconfig(tmp_path / "private-kubeconfig.yaml", f"http://127.0.0.1:{free_port()}")
    code, out, err = cli(capsys, "--kubeconfig", str(kc), "inventory")
    assert code == 3 and out == ""
    assert "cannot reach the Kubernetes API server" in _one_error_line(err)
    assert "private-kubeconfig" not in err and TOKEN not in err


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        pytest.param(
            lambda api: api.forbidden.add(r.VMS.path()),
            "cannot list virtualmachines.kubevirt.io",
            id="forbidden",
        ),
        pytest.param(lambda api: setattr(api, "token", "rotated"), "401", id="unauthorized"),
    ],
)
def test_forbidden_exits_3(
    setup: Any, words: str, capsys: pytest.CaptureFixture[str], fake_api: FakeApi, kubeconfig: Path
) -> None:
    setup(fake_api)
    for command in (["inventory", "-o", "json"], ["snapshot"]):
        code, out, err = cli(capsys, "--kubeconfig", str(kubeconfig), *command)
        assert code == 3 and out == ""
        assert words in _one_error_line(err)
        assert str(kubeconfig) not in err and kubeconfig.name not in err and TOKEN not in err


@pytest.mark.parametrize(
    ("argv", "words", "exit_code"),
    [
        # A bad value of an option is bad usage (2); no kubeconfig anywhere means the cluster cannot be read (3).
        pytest.param(["--kubeconfig", "{tmp}/nowhere.yaml", "inventory"], "does not exist", 2, id="kubeconfig-nowhere"),
        pytest.param(["inventory"], "no kubeconfig found", 3, id="no-kubeconfig"),
        pytest.param(
            ["--kubeconfig", "{kc}", "--context", "nope", "inventory"], "context 'nope'", 2, id="unknown-context"
        ),
    ],
)
def test_cluster_config_errors(
    argv: list[str], words: str, exit_code: int, capsys: pytest.CaptureFixture[str], kubeconfig: Path, tmp_path: Path
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{kc}", str(kubeconfig)) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == exit_code and out == ""
    assert words in _one_error_line(err)
    assert str(tmp_path) not in err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["inventory", "--bogus"], id="unknown-option"),
        pytest.param(["inventory", "-o", "xml"], id="bad-output"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param([], id="no-command"),
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), *argv)
    assert code == 2
    assert out == ""
    assert _one_error_line(err).startswith("error:")
    assert "Traceback" not in err and "internal error" not in err


def test_namespace_and_all_namespaces_conflict(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "inventory", "-n", "x", "-A")
    assert code == 2 and out == ""
    assert "either --namespace or --all-namespaces" in _one_error_line(err)


def test_internal_error_is_exit_1_without_traceback(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vm_rebalance import service

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"secret {TOKEN}")

    monkeypatch.setattr(service, "inventory", boom)
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "inventory")
    assert code == 1 and out == ""
    assert "internal error" in err and "RuntimeError" in err
    assert "Traceback" not in err and TOKEN not in err


def test_no_arguments_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys)
    assert code in (0, 2)
    assert "inventory" in out + err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "inventory", "--help")
    assert code == 0
    assert "--namespace" in out


def test_snapshot_of_a_yaml_snapshot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    text = yaml.safe_dump(as_list(small_cluster()))
    source.write_text(text.replace("'2026-11-21T12:00:00Z'", "2026-11-21T12:00:00Z"), encoding="utf-8")
    code, out, err = cli(capsys, "--from-file", str(source), "snapshot")
    assert code == 0, err
    assert len(json.loads(out)["items"]) == len(small_cluster())


def test_malformed_kubeconfig_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kc = tmp_path / "private-kubeconfig.yaml"
    kc.write_text(f"users:\n- name: u\n  user: {{token: {TOKEN}\n", encoding="utf-8")
    code, out, err = cli(capsys, "--kubeconfig", str(kc), "inventory")
    assert code == 3 and out == ""
    assert "kubeconfig is not valid YAML" in _one_error_line(err)
    assert "private-kubeconfig" not in err and TOKEN not in err


def test_ctrl_c_exits_130(capsys):
    from vm_rebalance.cli import main as cli_main

    cli_main._register()

    @cli_main.app.command("test-interrupt", hidden=True)
    def _interrupt() -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(SystemExit) as info:
            cli_main.run(["test-interrupt"])
    finally:
        cli_main.app.registered_commands[:] = [
            c for c in cli_main.app.registered_commands if c.name != "test-interrupt"
        ]
    assert info.value.code == 130
    assert "interrupted" in capsys.readouterr().err
