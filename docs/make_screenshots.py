"""Regenerate the README's screenshots: the demo scenario's capacity report (with its balanced plan) and plan page.

Run from the repository root: ``python docs/make_screenshots.py`` (needs Chromium: ``apt-get install chromium``).
The simulator serves the demo scenario on 127.0.0.1; the tool reads it over HTTPS like a real cluster,
makes the plan and the report, and headless Chromium (tests/headless.py) renders and photographs them.
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from headless import open_page  # noqa: E402
from vm_rebalance import service  # noqa: E402
from vm_rebalance.render.html import plan_html  # noqa: E402
from vm_rebalance.render.report import capacity_html  # noqa: E402
from vm_rebalance.simulator.cluster import SimCluster  # noqa: E402
from vm_rebalance.simulator.server import SimulatorServer  # noqa: E402


def main() -> None:
    """Write docs/capacity-report.png and docs/plan-html.png."""
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(SimCluster.from_scenario("demo")) as server:
        kubeconfig = Path(tmp) / "kubeconfig"
        server.write_kubeconfig(str(kubeconfig))
        state = service.read_state(service.Target(kubeconfig=str(kubeconfig)))
        view = service.plan(state, service.PlanSpec(goal="balanced"))
        report = service.report_of(state, service.ReportSpec(), plan=view.plan).report
        pages = {
            "capacity-report": capacity_html(report),
            "plan-html": plan_html(view.plan, limits=view.limits, alternatives=view.alternatives),
        }
        for name, html in pages.items():
            page_file = Path(tmp) / f"{name}.html"
            page_file.write_text(html, encoding="utf-8")
            # The report's top: the overview, bands, the plan's before → after bars and N+1.
            result = open_page(page_file, screenshot=True, max_height=1900 if name == "capacity-report" else None)
            if result.problems or result.screenshot is None:
                raise SystemExit(f"{name}: {result.problems}")
            (ROOT / "docs" / f"{name}.png").write_bytes(result.screenshot)
            print(f"docs/{name}.png: {len(result.screenshot) // 1024} KiB")


if __name__ == "__main__":
    main()
