"""The human in the loop: show a plan, then approve / modify / explain N / cancel.

Modify accepts ``skip N``, ``change target N to NODE``, ``reorder 3,1,2`` and ``done``; every
edit goes through the planner's edit functions, so the re-shown plan has its waves,
after-state and improvements recomputed. Without a terminal the caller must pass --yes.
"""

import re
import sys
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from vm_rebalance.errors import ConfirmationRequiredError, RebalanceError
from vm_rebalance.model import ClusterState, Plan
from vm_rebalance.planner import reorder_moves, retarget_move, skip_move
from vm_rebalance.planner.explain import explain_move
from vm_rebalance.render.plan import render_plan

Ask = Callable[[str], str]


def require_terminal(yes: bool, what: str) -> None:
    """Refuse (exit 2) when a change needs confirmation and there is no terminal to ask."""
    if not yes and not sys.stdin.isatty():
        raise ConfirmationRequiredError(
            f"{what} changes the cluster and needs your approval, but there is no terminal to ask",
            hint="review it interactively, or pass --yes to approve without asking",
        )


def ask_with(console: Console) -> Ask:
    """Read one answer from the terminal (the prompt goes to stderr)."""

    def ask(prompt: str) -> str:
        try:
            return console.input(prompt).strip()
        except EOFError:
            return "cancel"

    return ask


def confirm(console: Console, question: str, *, yes: bool, ask: Ask | None = None) -> bool:
    """A yes/no question (True at once with --yes)."""
    if yes:
        return True
    ask = ask or ask_with(console)
    while True:
        answer = ask(f"{question} [yes/no]: ").lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no", "cancel", "q", "quit"):
            return False
        console.print("please answer yes or no")


def approve_plan(
    console: Console,
    state: ClusterState,
    plan: Plan,
    *,
    yes: bool,
    ask: Ask | None = None,
    show: bool = True,
) -> Plan | None:
    """The approved (possibly modified) plan, or None when the user cancels."""
    if yes:
        return plan
    ask = ask or ask_with(console)
    if show:
        console.print(render_plan(plan, limits=state.limits))
    while True:
        answer = ask(
            "\n[bold]approve[/bold] / [bold]modify[/bold] / [bold]explain N[/bold] / [bold]cancel[/bold]: "
        ).lower()
        if answer in ("approve", "a", "yes", "y"):
            return plan
        if answer in ("cancel", "c", "no", "n", "q", "quit"):
            return None
        m = re.fullmatch(r"(?:explain|e)\s+#?(\d+)", answer)
        if m:
            try:
                for line in explain_move(state, plan, int(m.group(1))):
                    console.print(line, markup=False, highlight=False)
            except KeyError:
                console.print(f"there is no move #{m.group(1)}", highlight=False)
            continue
        if answer in ("modify", "m"):
            plan = modify_plan(console, state, plan, ask)
            console.print(render_plan(plan, limits=state.limits))
            continue
        console.print("answer approve, modify, explain N or cancel")


def modify_plan(console: Console, state: ClusterState, plan: Plan, ask: Ask) -> Plan:
    """The modify sub-loop; returns the edited plan when the user says done."""
    console.print(
        "Edit the plan: [bold]skip N[/bold], [bold]change target N to NODE[/bold], "
        "[bold]reorder 3,1,2[/bold], [bold]done[/bold]"
    )
    while True:
        answer = ask("modify> ").strip()
        low = answer.lower()
        if low in ("done", "d", ""):
            return plan
        try:
            if m := re.fullmatch(r"skip\s+#?(\d+)", low):
                plan = skip_move(state, plan, int(m.group(1)))
                console.print(f"skipped move #{m.group(1)}")
            elif m := re.fullmatch(r"(?:change\s+target|retarget)\s+#?(\d+)\s+(?:to\s+)?(\S+)", answer, re.I):
                plan = retarget_move(state, plan, int(m.group(1)), m.group(2))
                console.print(f"move #{m.group(1)} now goes to {escape(m.group(2))}", highlight=False)
            elif m := re.fullmatch(r"reorder\s+([\d,\s]+)", low):
                order = [int(x) for x in re.split(r"[,\s]+", m.group(1).strip()) if x]
                plan = reorder_moves(state, plan, order)
                console.print(f"new order: {', '.join(str(i) for i in order)} first")
            else:
                console.print("unknown edit; use skip N, change target N to NODE, reorder 3,1,2 or done")
                continue
        except (RebalanceError, ValueError) as exc:
            console.print(f"[red]cannot do that:[/red] {escape(str(exc))}", highlight=False)
