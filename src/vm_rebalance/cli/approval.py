"""The human in the loop: show a plan, then approve / modify / explain N / cancel.

Modify accepts the service's edits (``skip N``, ``change target N to NODE``, ``reorder 3,1,2``,
``sequential`` / ``parallel``) and ``done``; the service recomputes the plan's waves, after-state
and improvements, so the re-shown plan is what would run. This module only asks and shows.
Without a terminal the caller must pass --yes.
"""

import re
import sys
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.markup import escape

from vm_rebalance import service
from vm_rebalance.errors import ConfirmationRequiredError, RebalanceError
from vm_rebalance.model import ClusterState, Plan
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
    alternatives: Mapping[str, Plan] | None = None,
) -> Plan | None:
    """The approved (possibly modified) plan, or None when the user cancels.

    Besides approve / modify / explain N / cancel, an edit typed at the prompt is applied at once
    (e.g. accepting an offered alternative: ``live only``, ``sequential``) and the plan shown again.
    """
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
                for line in service.explain(state, plan, int(m.group(1))):
                    console.print(line, markup=False, highlight=False)
            except RebalanceError:
                console.print(f"there is no move #{m.group(1)}", highlight=False)
            continue
        if answer in ("modify", "m"):
            plan = modify_plan(console, state, plan, ask, alternatives=alternatives)
            console.print(render_plan(plan, limits=state.limits))
            continue
        try:
            edit = service.parse_edit(answer)
        except RebalanceError:
            console.print("answer approve, modify, explain N or cancel (or an edit: " + service.EDIT_HELP + ")")
            continue
        edited = _apply(console, state, plan, edit, alternatives)
        if edited is not None:
            plan = edited
            console.print(render_plan(plan, limits=state.limits))


def modify_plan(
    console: Console, state: ClusterState, plan: Plan, ask: Ask, *, alternatives: Mapping[str, Plan] | None = None
) -> Plan:
    """The modify sub-loop; returns the edited plan when the user says done."""
    console.print(f"Edit the plan: {escape(service.EDIT_HELP)}", highlight=False)
    while True:
        answer = ask("modify> ").strip()
        if answer.lower() in ("done", "d", ""):
            return plan
        try:
            edit = service.parse_edit(answer)
        except RebalanceError as exc:
            console.print(f"[red]cannot do that:[/red] {escape(str(exc))}", highlight=False)
            continue
        plan = _apply(console, state, plan, edit, alternatives) or plan


def _apply(
    console: Console, state: ClusterState, plan: Plan, edit: service.Edit, alternatives: Mapping[str, Plan] | None
) -> Plan | None:
    """The edited plan (its changes said), or None when the edit is refused (the reason said)."""
    try:
        result = service.edit_plan(state, plan, [edit], alternatives=alternatives)
    except RebalanceError as exc:
        console.print(f"[red]cannot do that:[/red] {escape(str(exc))}", highlight=False)
        return None
    for change in result.changes:
        console.print(escape(change), highlight=False)
    return result.plan
