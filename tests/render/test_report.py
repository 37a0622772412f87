"""The capacity report's renderers: rich tables, Markdown and self-contained HTML (escaping, absent sections)."""

import io
from html.parser import HTMLParser

from rich.console import Console

from factories import make_node, make_state, make_vm
from vm_rebalance.model import Basis, Goal, GoalType, MigrationMethod, Move, NodeChange, NodeLoad, Plan
from vm_rebalance.model.capacity import CapacityReport
from vm_rebalance.render.html import CSP, plan_html
from vm_rebalance.render.report import capacity_html, capacity_markdown, render_capacity
from vm_rebalance.service.capacity import WORKLOAD_ANNOTATION, capacity_report

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _report(*, metrics: bool = True, plan: Plan | None = None, evil: bool = False) -> CapacityReport:
    nodes = [
        make_node("w1", cpu=10, memory_gi=64, usage_cpu=9.5, usage_memory_gi=20),
        make_node("w2", cpu=10, memory_gi=64, usage_cpu=2, usage_memory_gi=10),
        make_node("w3", cpu=10, memory_gi=64, usage_cpu=1, usage_memory_gi=5),
    ]
    annotations = {WORKLOAD_ANNOTATION: f"network,{EVIL}" if evil else "network"}
    vms = [
        make_vm("hot", node="w1", vcpus=4, usage_cpu=3.9, usage_memory_gi=2, memory_gi=4),
        make_vm("idle", node="w2", vcpus=8, usage_cpu=0.1, usage_memory_gi=1, memory_gi=16),
        make_vm("stream", node="w3", annotations=annotations, usage_cpu=0.5, usage_memory_gi=2),
    ]
    if not metrics:
        nodes = [make_node(n.name, cpu=10, memory_gi=64) for n in nodes]
        vms = [make_vm(v.name, node=v.node, annotations=v.annotations) for v in vms]
    return capacity_report(make_state(nodes, vms, metrics=metrics), plan=plan)


def _plan() -> Plan:
    return Plan(
        goal=Goal(type=GoalType.CPU),
        basis=Basis.USAGE,
        moves=(Move(id=1, vm="hot", namespace="default", source="w1", target="w2", method=MigrationMethod.LIVE),),
        nodes=(
            NodeChange("w1", NodeLoad(1, 0.95, 0.3), NodeLoad(0, 0.55, 0.2)),
            NodeChange("w2", NodeLoad(1, 0.2, 0.15), NodeLoad(2, 0.6, 0.25)),
        ),
    )


def _console_text(report: CapacityReport) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(render_capacity(report))
    return buffer.getvalue()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(document: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(document)
    return parser.tags


def test_terminal_report_shows_bands_n_plus_one_sizing_classes_slots_and_what_is_absent() -> None:
    text = _console_text(_report())
    assert "Cluster band: healthy (< 70 %)" in text
    assert "w1" in text and "emergency" in text
    assert "✓ The cluster can lose w1" in text
    assert "grow to 6 vCPU" in text and "shrink to 1 vCPU" in text
    assert "Workload classes: cpu 1 · memory 0 · io 0 · network 1" in text
    assert "0 of 5 cluster-wide migration slots in use" in text
    assert "Not in this report:" in text and "Move trade-off curve: no move trade-off curve was given" in text


def test_without_metrics_right_sizing_is_absent_and_says_why() -> None:
    report = _report(metrics=False)
    text = _console_text(report)
    assert "Right-sizing:" in text and "right-sizing needs usage" in text
    html = capacity_html(report)
    assert "<h2>Right-sizing</h2>" not in html and "right-sizing needs usage" in html


def test_markdown_has_the_same_rows() -> None:
    md = capacity_markdown(_report(plan=_plan()))
    assert "## Capacity report" in md and "| w1 | 1 | 95% |" in md
    assert "### Plan (cpu): nodes before → after" in md and "| w1 | 95% | 55% | 30% | 20% |" in md
    assert "**Not in this report:**" in md


def test_html_is_self_contained_with_charts_for_existing_data_only() -> None:
    html = capacity_html(_report())
    tags = _tags(html)
    names = [t for t, _ in tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert any(t == "meta" and a.get("content") == CSP for t, a in tags)
    assert not [a for _, a in tags if any(k in (a.get("src") or "") + (a.get("href") or "") for k in ("http", "//"))]
    charts = [a.get("data-chart") for t, a in tags if t == "svg"]
    assert charts == ["node-utilisation", "n-plus-one", "migration-slots"]  # no plan given: no plan chart
    assert "no plan was given" in html
    with_plan = [a.get("data-chart") for t, a in _tags(capacity_html(_report(plan=_plan()))) if t == "svg"]
    assert "plan-before-after" in with_plan


def test_everything_from_the_cluster_is_escaped() -> None:
    report = _report(evil=True)
    assert any(EVIL.lower() in w for w in report.warnings)  # the unknown class reaches the report…
    html = capacity_html(report)
    assert "<script" not in html.lower() and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in html  # …as text
    assert not [t for t, _ in _tags(html) if t in ("script", "img")]


def test_plan_page_has_the_seed_tables_and_before_after_bars() -> None:
    plan = Plan(
        goal=Goal(type=GoalType.CPU),
        basis=Basis.USAGE,
        moves=(
            Move(
                id=1, vm="a<b>", namespace="default", source="w1", target="w2", method=MigrationMethod.LIVE, reason="r"
            ),
        ),
        nodes=_plan().nodes,
    )
    html = plan_html(plan)
    assert "📋 VM Rebalance Plan" in html and "📊 Node State: Before → After" in html
    assert "Key Improvement:" in html and "Rebalance Summary:" in html
    assert "a&lt;b&gt;" in html and "a<b>" not in html
    tags = _tags(html)
    assert [a.get("data-chart") for t, a in tags if t == "svg"] == ["plan-before-after"]
    assert len([a for t, a in tags if t == "rect" and "after" in (a.get("class") or "")]) == 4  # 2 nodes × CPU, memory
