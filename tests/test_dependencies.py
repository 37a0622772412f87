"""Every top-level module that src/ imports is the standard library, the package itself, or a
distribution that pyproject.toml declares — even one another dependency happens to pull in.

A missing declaration passes on a machine where the package was installed by hand and fails on
a fresh one; this test makes it fail everywhere.
"""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "vm_rebalance"

# Optional extras and the part of the package that may use them (imported lazily elsewhere).
EXTRA_SCOPES = {"mcp": ("mcp_server/",), "controller": ("controller/",)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _norm(re.split(r"[ <>=!~\[;(]", requirement.strip(), maxsplit=1)[0])


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports() -> dict[str, list[str]]:
    """Top-level imported module -> the files (relative to the package) that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"vm_rebalance", "__future__"}:
                    continue
                found.setdefault(top, []).append(path.relative_to(SRC).as_posix())
    return found


def _distributions(module: str) -> set[str]:
    return {_norm(dist) for dist in packages_distributions().get(module, [])}


def test_every_third_party_import_is_declared():
    project = _project()
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {name: {_requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    problems = []
    for module, files in sorted(_imports().items()):
        dists = _distributions(module)
        if not dists:
            problems.append(f"{module} (imported by {files[0]}) is not installed: declare it and reinstall")
            continue
        for file in sorted(set(files)):
            allowed = set(core)
            for extra, scopes in EXTRA_SCOPES.items():
                if file.startswith(scopes):
                    allowed |= extras.get(extra, set())
            if not dists & allowed:
                problems.append(f"{module} (distribution {'/'.join(sorted(dists))}) imported by {file} is not declared")
    assert not problems, "\n".join(problems)


def test_the_checkers_are_pinned_and_runtime_dependencies_are_ranges():
    project = _project()
    pinned = {"mypy", "ruff", "import-linter", "pytest", "pytest-asyncio", "hypothesis"}
    test_reqs = {_requirement_name(r): r for r in project["optional-dependencies"]["test"]}
    for name in pinned:
        assert name in test_reqs, f"{name} missing from the test extra"
        assert "==" in test_reqs[name], f"{name} must be pinned exactly: {test_reqs[name]}"
    for requirement in project["dependencies"]:
        assert "==" not in requirement, f"runtime dependency pinned exactly: {requirement}"
