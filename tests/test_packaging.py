"""Packaging as a user meets it: `python -m build` makes an sdist and a wheel (the wheel built from
the sdist), the wheel holds the package data and both console scripts, declares its
dependencies and the `mcp` extra, and — installed into an environment of its own — prints its
version and runs the demo.
"""

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import vm_rebalance

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools writes its egg-info and the sdist's staging folder into the
    # source tree, and two builds there at once (pytest-xdist workers) collide.
    tree = tmp_path_factory.mktemp("source") / "vm-rebalance"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "build", "dist"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_the_wheel_has_the_data_scripts_and_dependencies(dist: Path) -> None:
    wheel = _one(dist, "vm_rebalance-*.whl")
    assert f"-{vm_rebalance.__version__}-" in wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "vm_rebalance/py.typed" in names
        assert "vm_rebalance/data/mcp_skill.md" in names
        assert "vm_rebalance/simulator/app.py" in names
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(zf.read(info))
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert metadata["Version"] == vm_rebalance.__version__
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("orjson") for r in requires)
    assert any(r.startswith("mcp") and 'extra == "mcp"' in r for r in requires)
    assert "mcp" in (metadata.get_all("Provides-Extra") or [])
    assert any(r.startswith("kopf") and 'extra == "controller"' in r for r in requires)
    assert "controller" in (metadata.get_all("Provides-Extra") or [])
    assert "vm-rebalance = vm_rebalance.cli.main:run" in entry_points
    assert "kubectl-vm_rebalance = vm_rebalance.cli.main:run" in entry_points


def test_the_sdist_holds_what_a_build_needs(dist: Path) -> None:
    sdist = _one(dist, "vm_rebalance-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "src/vm_rebalance/__init__.py", "src/vm_rebalance/data/mcp_skill.md"):
        assert needed in names


def test_the_installed_wheel_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    wheel = _one(dist, "vm_rebalance-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from the test environment (a plain path entry: its .pth files, among
    # them the editable install of this checkout, are not processed); the package from the wheel.
    (purelib / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "VM_REBALANCE_", "PYTHONPATH"))}
    env["HOME"] = str(tmp_path)
    where = subprocess.run(
        [str(python), "-c", "import vm_rebalance; print(vm_rebalance.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(purelib)), where
    script = venv / "bin" / "vm-rebalance"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, check=True)
    assert version.stdout.strip() == f"vm-rebalance {vm_rebalance.__version__}"
    demo = subprocess.run(
        [str(script), "demo", "--yes", "--time-scale", "40"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Traceback" not in demo.stderr
    assert "Rebalancing Complete" in demo.stdout
