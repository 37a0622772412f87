"""Every bad value of every option: exit code 2 and one line saying what is wrong (no traceback).

The table below names, for every option and argument of every command, the bad values tried.
`test_every_option_is_in_the_table` walks the command tree, so a new option without a bad-value
case here fails the suite.
"""

import json
from pathlib import Path

import pytest
import typer

from fakeapi import FakeApi
from rawobjects import as_list, small_cluster
from vm_rebalance.cli.main import _register, app, run

# (command path, option or argument name): the argv lists (after the command) to try.
# Placeholders: {snap} a snapshot file, {plan} a valid plan file, {kc} a kubeconfig of a fake
# cluster (small_cluster), {tmp} a temporary folder.
CASES: dict[tuple[str, str], list[list[str]]] = {
    ("", "--kubeconfig"): [["--kubeconfig", "{tmp}/missing.yaml", "inventory"]],
    ("", "--context"): [["--kubeconfig", "{kc}", "--context", "nope", "inventory"]],
    ("", "--from-file"): [["--from-file", "{tmp}/missing.json", "inventory"], ["--from-file", "{tmp}", "inventory"]],
    ("inventory", "--namespace"): [
        ["--from-file", "{snap}", "inventory", "-n", ""],
        ["--from-file", "{snap}", "inventory", "-n", "Bad_NS"],
    ],
    ("inventory", "--output"): [["--from-file", "{snap}", "inventory", "-o", "xml"]],
    ("snapshot", "--output"): [["--from-file", "{snap}", "snapshot", "-o", "{tmp}/no/such/dir/s.json"]],
    ("plan", "--goal"): [["--from-file", "{snap}", "plan", "--goal", "fastest"]],
    ("plan", "--node"): [
        ["--from-file", "{snap}", "plan", "--goal", "drain", "--node", "nope"],
        ["--from-file", "{snap}", "plan", "--goal", "cpu", "--node", "w1"],
    ],
    ("plan", "--weights"): [
        ["--from-file", "{snap}", "plan", "--weights", "cpu=x"],
        ["--from-file", "{snap}", "plan", "--weights", "cpu=nan"],
        ["--from-file", "{snap}", "plan", "--weights", "disk=1"],
        ["--from-file", "{snap}", "plan", "--weights", "cpu=-1"],
    ],
    ("plan", "--max-migrations"): [
        ["--from-file", "{snap}", "plan", "--max-migrations", "-1"],
        ["--from-file", "{snap}", "plan", "--max-migrations", "many"],
    ],
    ("plan", "--basis"): [["--from-file", "{snap}", "plan", "--basis", "vibes"]],
    ("plan", "--namespace"): [["--from-file", "{snap}", "plan", "-n", ""]],
    ("plan", "--headroom"): [
        ["--from-file", "{snap}", "plan", "--headroom", "100"],
        ["--from-file", "{snap}", "plan", "--headroom", "-5"],
        ["--from-file", "{snap}", "plan", "--headroom", "nan"],
    ],
    ("plan", "--cooldown"): [
        ["--from-file", "{snap}", "plan", "--cooldown", "-1"],
        ["--from-file", "{snap}", "plan", "--cooldown", "inf"],
    ],
    ("plan", "--min-gain"): [
        ["--from-file", "{snap}", "plan", "--min-gain", "-1"],
        ["--from-file", "{snap}", "plan", "--min-gain", "nan"],
        ["--from-file", "{snap}", "plan", "--min-gain", "lots"],
    ],
    ("plan", "--output"): [["--from-file", "{snap}", "plan", "-o", "xml"]],
    ("plan", "--save"): [["--from-file", "{snap}", "plan", "--save", "{tmp}/no/such/dir/p.json"]],
    ("plan", "--html"): [["--from-file", "{snap}", "plan", "--html", "{tmp}/no/such/dir/p.html"]],
    ("report", "--output"): [["--from-file", "{snap}", "report", "-o", "xml"]],
    ("report", "--html"): [["--from-file", "{snap}", "report", "--html", "{tmp}/no/such/dir/r.html"]],
    ("report", "--plan"): [
        ["--from-file", "{snap}", "report", "--plan", "{tmp}/missing.json"],
        ["--from-file", "{snap}", "report", "--plan", "{snap}"],
    ],
    ("report", "--basis"): [["--from-file", "{snap}", "report", "--basis", "vibes"]],
    ("apply", "plan_file"): [
        ["--kubeconfig", "{kc}", "apply", "{tmp}/missing.json", "--yes"],
        ["--kubeconfig", "{kc}", "apply", "{snap}", "--yes"],
    ],
    ("apply", "--skip"): [
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--skip", "0", "--yes"],
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--skip", "x", "--yes"],
    ],
    ("apply", "--retarget"): [
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--retarget", "1", "--yes"],
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--retarget", "=w2", "--yes"],
    ],
    ("apply", "--timeout-per-gib"): [
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--timeout-per-gib", "0", "--yes"],
        ["--kubeconfig", "{kc}", "apply", "{plan}", "--timeout-per-gib", "nan", "--yes"],
    ],
    ("apply", "--output"): [["--kubeconfig", "{kc}", "apply", "{plan}", "-o", "xml", "--yes"]],
    ("move", "vms"): [["--kubeconfig", "{kc}", "move", "ghost", "--to", "w2", "--yes"]],
    ("move", "--to"): [["--kubeconfig", "{kc}", "move", "db", "--to", "nope", "--yes"]],
    ("move", "--namespace"): [["--kubeconfig", "{kc}", "move", "db", "-n", "nope", "--to", "w2", "--yes"]],
    ("move", "--method"): [["--kubeconfig", "{kc}", "move", "db", "--to", "w2", "--method", "teleport", "--yes"]],
    ("move", "--output"): [["--kubeconfig", "{kc}", "move", "db", "--to", "w2", "-o", "xml", "--yes"]],
    ("drain", "node"): [["--kubeconfig", "{kc}", "drain", "nope", "--yes"]],
    ("drain", "--output"): [["--kubeconfig", "{kc}", "drain", "w2", "-o", "xml", "--yes"]],
    ("start", "vms"): [["--kubeconfig", "{kc}", "start", "ghost", "--yes"]],
    ("start", "--namespace"): [["--kubeconfig", "{kc}", "start", "off", "-n", "nope", "--yes"]],
    ("start", "--output"): [["--kubeconfig", "{kc}", "start", "off", "-o", "xml", "--yes"]],
    ("stop", "vms"): [["--kubeconfig", "{kc}", "stop", "ghost", "--yes"]],
    ("stop", "--namespace"): [["--kubeconfig", "{kc}", "stop", "db", "-n", "nope", "--yes"]],
    ("stop", "--output"): [["--kubeconfig", "{kc}", "stop", "db", "-o", "xml", "--yes"]],
    ("restart", "vms"): [["--kubeconfig", "{kc}", "restart", "ghost", "--yes"]],
    ("restart", "--namespace"): [["--kubeconfig", "{kc}", "restart", "db", "-n", "nope", "--yes"]],
    ("restart", "--output"): [["--kubeconfig", "{kc}", "restart", "db", "-o", "xml", "--yes"]],
    ("unpin", "vm"): [["--kubeconfig", "{kc}", "unpin", "ghost"]],
    ("unpin", "--namespace"): [["--kubeconfig", "{kc}", "unpin", "db", "-n", "nope"]],
    ("status", "--output"): [["status", "-o", "xml"]],
    ("status", "--clear"): [["status", "--clear", "no-such-execution"]],
    ("apply", "--wait-lock"): [["--kubeconfig", "{kc}", "apply", "{plan}", "--wait-lock", "-1", "--yes"]],
    ("move", "--wait-lock"): [["--kubeconfig", "{kc}", "move", "db", "--to", "w2", "--wait-lock", "nan", "--yes"]],
    ("drain", "--wait-lock"): [["--kubeconfig", "{kc}", "drain", "w2", "--wait-lock", "soon", "--yes"]],
    ("start", "--wait-lock"): [["--kubeconfig", "{kc}", "start", "off", "--wait-lock", "-5", "--yes"]],
    ("stop", "--wait-lock"): [["--kubeconfig", "{kc}", "stop", "db", "--wait-lock", "inf", "--yes"]],
    ("restart", "--wait-lock"): [["--kubeconfig", "{kc}", "restart", "db", "--wait-lock", "-1", "--yes"]],
    ("resume", "execution"): [["--kubeconfig", "{kc}", "resume", "no-such-execution", "--yes"]],
    ("resume", "--output"): [["--kubeconfig", "{kc}", "resume", "x", "-o", "xml", "--yes"]],
    ("resume", "--wait-lock"): [["--kubeconfig", "{kc}", "resume", "x", "--wait-lock", "-1", "--yes"]],
    ("simulator serve", "--scenario"): [["simulator", "serve", "--scenario", "nope"]],
    ("simulator serve", "--port"): [
        ["simulator", "serve", "--port", "70000"],
        ["simulator", "serve", "--port", "-1"],
    ],
    ("simulator serve", "--kubeconfig-out"): [["simulator", "serve", "--kubeconfig-out", "{tmp}/no/such/dir/kc"]],
    ("simulator serve", "--time-scale"): [
        ["simulator", "serve", "--time-scale", "0"],
        ["simulator", "serve", "--time-scale", "nan"],
        ["simulator", "serve", "--time-scale", "fast"],
    ],
    ("simulator serve", "--policy"): [["simulator", "serve", "--policy", "{tmp}/missing.yaml"]],
    ("simulator serve", "--faults"): [["simulator", "serve", "--faults", "{tmp}/missing.yaml"]],
    ("demo", "--scenario"): [["demo", "--scenario", "nope", "--yes"]],
    ("demo", "--time-scale"): [
        ["demo", "--time-scale", "-1", "--yes"],
        ["demo", "--time-scale", "inf", "--yes"],
    ],
    ("demo", "--goal"): [["demo", "--goal", "nonsense", "--yes"], ["demo", "--goal", "drain", "--yes"]],
    ("mcp", "--transport"): [["mcp", "--transport", "pigeon"]],
    ("mcp", "--host"): [["mcp", "--transport", "http", "--host", "no such host!", "--port", "1"]],
    ("mcp", "--port"): [["mcp", "--port", "0"], ["mcp", "--port", "65536"]],
    ("controller", "--namespace"): [["controller", "--namespace", "Bad_NS"]],
    ("controller", "--lease"): [["controller", "--lease", "Not A Name"]],
    ("controller", "--identity"): [["controller", "--identity", " "]],
    ("controller", "--host"): [["controller", "--host", "no such host!"]],
    ("controller", "--port"): [["controller", "--port", "0"], ["controller", "--port", "65536"]],
    ("controller", "--resync"): [["controller", "--resync", "0"], ["controller", "--resync", "nan"]],
    ("controller", "--lease-duration"): [["controller", "--lease-duration", "-1"]],
    ("controller", "--renew-deadline"): [["controller", "--renew-deadline", "20"]],
    ("controller", "--retry-period"): [["controller", "--retry-period", "inf"]],
    ("controller", "--shutdown-grace"): [["controller", "--shutdown-grace", "0"]],
    ("controller", "--poll-interval"): [["controller", "--poll-interval", "nan"]],
    ("controller", "--log-level"): [["controller", "--log-level", "loud"]],
    ("approve", "plan"): [["--kubeconfig", "{kc}", "approve", "ghost", "--yes"]],
    ("approve", "--hash"): [["--kubeconfig", "{kc}", "approve", "ghost", "--hash", "abc"]],
}
# The usage-source options of plan, inventory, report, snapshot and mcp (cli/usage.py).
for _command in ("inventory", "snapshot", "plan", "report", "mcp"):
    _prefix = [] if _command == "mcp" else ["--from-file", "{snap}"]
    CASES[(_command, "--usage")] = [
        [*_prefix, _command, "--usage", "telepathy"],
        *([] if _command == "mcp" else [[*_prefix, _command, "--usage", "prometheus"]]),  # not on a snapshot
    ]
    CASES[(_command, "--prometheus-url")] = [
        [*_prefix, _command, "--prometheus-url", "ftp://prometheus:9090"],
        [*_prefix, _command, "--prometheus-url", "prometheus:9090"],
    ]
    CASES[(_command, "--window")] = [
        [*_prefix, _command, "--window", "2x"],
        [*_prefix, _command, "--window", "10s"],
        [*_prefix, _command, "--window", "200d"],
    ]
    CASES[(_command, "--percentile")] = [
        [*_prefix, _command, "--percentile", "0"],
        [*_prefix, _command, "--percentile", "101"],
        [*_prefix, _command, "--percentile", "nan"],
    ]

# Options whose every value is acceptable (a name to look for, a path to write), with why.
FREE_FORM = {
    ("", "--install-completion"): "a shell name; typer's own",
}


def _commands() -> list[tuple[str, str]]:
    """(command path, option or argument name) of every non-flag parameter in the tree."""
    _register()
    found: list[tuple[str, str]] = []

    def walk(command: object, path: list[str]) -> None:
        for param in getattr(command, "params", []):
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                continue
            opts = getattr(param, "opts", None) or []
            is_option = getattr(param, "param_type_name", "") == "option"
            name = max(opts, key=len) if is_option and opts else str(param.name)
            found.append((" ".join(path), name))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_option_is_in_the_table() -> None:
    missing = [key for key in _commands() if key not in CASES and key not in FREE_FORM]
    assert not missing, f"add bad-value cases for: {missing}"


@pytest.fixture
def placeholders(
    tmp_path: Path, fake_api: FakeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "state"))
    fake_api.load(small_cluster())
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    plan = tmp_path / "plan.json"
    with pytest.raises(SystemExit) as info:
        run(["--from-file", str(snap), "plan", "--goal", "cpu", "--save", str(plan), "-o", "json"])
    assert info.value.code in (0, None) and plan.is_file()
    return {"{snap}": str(snap), "{plan}": str(plan), "{kc}": str(kubeconfig), "{tmp}": str(tmp_path)}


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(argv, id=f"{cmd or 'global'} {opt} {i}")
        for (cmd, opt), cases in CASES.items()
        for i, argv in enumerate(cases)
    ],
)
def test_bad_value_exits_2_with_one_line(
    argv: list[str], placeholders: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = []
    for arg in argv:
        for key, value in placeholders.items():
            arg = arg.replace(key, value)
        resolved.append(arg)
    with pytest.raises(SystemExit) as info:
        run(resolved)
    out, err = capsys.readouterr()
    assert info.value.code == 2, f"exit {info.value.code}\nstdout: {out[-500:]}\nstderr: {err[-1500:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert all(line.startswith(("error:", "hint:", "  - ")) for line in lines), err
    assert "Traceback" not in err
    assert placeholders["{kc}"] not in err
