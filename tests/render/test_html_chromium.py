"""The HTML report and plan opened in a real headless Chromium: no script, console or CSP errors; charts in the DOM.

Skipped, with the reason in the summary, when Chromium is not installed (Debian: ``apt-get install
chromium``). With ``VM_REBALANCE_REQUIRE_CHROMIUM=1`` (CI) a missing Chromium fails instead.
"""

import os
from pathlib import Path

import pytest

from factories import make_node, make_state, make_vm
from headless import ChromiumError, find_chromium, open_page
from vm_rebalance.model import Basis, Goal, GoalType, MigrationMethod, Move, NodeChange, NodeLoad, Plan
from vm_rebalance.render.html import plan_html
from vm_rebalance.render.report import capacity_html
from vm_rebalance.service.capacity import WORKLOAD_ANNOTATION, capacity_report

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Would set the title and add an element if it ever ran as markup.
EVIL = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"

DOM = {
    "title": "document.title",
    "charts": "Array.from(document.querySelectorAll('svg.chart')).map(s => s.dataset.chart)",
    "bars": "document.querySelectorAll('svg.chart rect.bar').length",
    "drawn": "Array.from(document.querySelectorAll('svg.chart')).every(s => s.getBoundingClientRect().height > 20)",
    "widest_bar": "Math.max(...Array.from(document.querySelectorAll('rect.bar')).map(r => r.getBBox().width))",
    "scripts": "document.querySelectorAll('script').length",
    "images": "document.images.length",
    "tables": "document.querySelectorAll('table').length",
}


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        if os.environ.get("VM_REBALANCE_REQUIRE_CHROMIUM") == "1":
            pytest.fail("VM_REBALANCE_REQUIRE_CHROMIUM=1 but no Chromium on PATH (apt-get install chromium)")
        pytest.skip(
            "Chromium is not installed (Debian: apt-get install chromium): the HTML was not opened in a browser"
        )
    return exe


def _open(path: Path, exe: str) -> tuple[list[str], dict[str, object]]:
    try:
        page = open_page(path, expressions=DOM, executable=exe)
    except ChromiumError as exc:
        pytest.fail(f"Chromium did not render {path.name}: {exc}")
    return page.problems, page.values


def _plan() -> Plan:
    return Plan(
        goal=Goal(type=GoalType.BALANCED),
        basis=Basis.USAGE,
        moves=(Move(id=1, vm="hot", namespace="prod", source="w1", target="w3", method=MigrationMethod.LIVE),),
        nodes=(
            NodeChange("w1", NodeLoad(2, 0.93, 0.40), NodeLoad(1, 0.60, 0.30)),
            NodeChange("w3", NodeLoad(1, 0.10, 0.08), NodeLoad(2, 0.45, 0.18)),
        ),
    )


def test_capacity_report_renders_without_errors_and_draws_its_charts(tmp_path: Path, chromium: str) -> None:
    nodes = [
        make_node("w1", cpu=10, memory_gi=64, usage_cpu=9.3, usage_memory_gi=26),
        make_node("w2", cpu=10, memory_gi=64, usage_cpu=7.5, usage_memory_gi=20),
        make_node("w3", cpu=10, memory_gi=64, usage_cpu=1, usage_memory_gi=5),
    ]
    vms = [
        make_vm("hot", namespace="prod", node="w1", vcpus=4, usage_cpu=3.9, usage_memory_gi=3),
        make_vm("idle", namespace="prod", node="w2", vcpus=8, usage_cpu=0.1, usage_memory_gi=1, memory_gi=16),
        make_vm("evil", node="w3", annotations={WORKLOAD_ANNOTATION: EVIL}, usage_cpu=0.5, usage_memory_gi=2),
    ]
    path = tmp_path / "report.html"
    path.write_text(capacity_html(capacity_report(make_state(nodes, vms, metrics=True), plan=_plan())), "utf-8")
    problems, dom = _open(path, chromium)
    assert problems == []
    assert dom["title"] == "Capacity report"  # the injected markup never ran
    assert dom["charts"] == ["node-utilisation", "plan-before-after", "n-plus-one", "migration-slots"]
    assert dom["drawn"] is True and isinstance(dom["bars"], int) and dom["bars"] >= 8
    assert isinstance(dom["widest_bar"], int | float) and dom["widest_bar"] > 50
    assert (dom["scripts"], dom["images"]) == (0, 0)


def test_plan_page_renders_without_errors(tmp_path: Path, chromium: str) -> None:
    path = tmp_path / "plan.html"
    path.write_text(plan_html(_plan()), "utf-8")
    problems, dom = _open(path, chromium)
    assert problems == []
    assert dom["title"] == "VM Rebalance Plan"
    assert dom["charts"] == ["plan-before-after"] and dom["bars"] == 8  # 2 nodes × CPU/memory × now/after
    assert dom["tables"] == 2  # the seeds' two tables


def test_a_broken_page_is_caught(tmp_path: Path, chromium: str) -> None:
    """The check can fail: a script error and a blocked fetch are both reported."""
    path = tmp_path / "broken.html"
    path.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        "<script>undefinedFunction()</script><img src='http://127.0.0.1:9/x.png'></body></html>",
        "utf-8",
    )
    problems, _ = _open(path, chromium)
    assert any("undefinedFunction" in p for p in problems)
