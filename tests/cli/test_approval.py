"""The approval loop prints user input and error texts verbatim, never as rich markup."""

import io
from collections.abc import Iterator

from rich.console import Console

from rawobjects import small_cluster
from vm_rebalance.cli.approval import approve_plan, modify_plan
from vm_rebalance.kube.convert import state_from_objects
from vm_rebalance.model import ClusterState, Goal, GoalType, Plan
from vm_rebalance.planner import PlanRequest, propose_plan


def _setup() -> tuple[Console, io.StringIO, ClusterState, Plan]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    state = state_from_objects(small_cluster())
    plan = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.BALANCED)))
    assert plan.moves
    return console, out, state, plan


def _answers(*answers: str) -> Iterator[str]:
    yield from answers


def test_markup_in_a_retarget_node_is_shown_verbatim() -> None:
    console, out, state, plan = _setup()
    answers = _answers(f"change target {plan.moves[0].id} to [/bold]", "retarget 1 to [red]x[/red]", "done")
    edited = modify_plan(console, state, plan, lambda _prompt: next(answers))
    assert edited == plan
    text = out.getvalue()
    assert "node '[/bold]' does not exist" in text
    assert "node '[red]x[/red]' does not exist" in text


def test_markup_in_an_edit_error_is_shown_verbatim() -> None:
    console, out, state, plan = _setup()
    answers = _answers("modify", "skip 999", "done", "cancel")
    assert approve_plan(console, state, plan, yes=False, ask=lambda _prompt: next(answers), show=False) is None
    assert "cannot do that:" in out.getvalue()


def test_an_offered_alternative_is_accepted_at_the_prompt() -> None:
    from vm_rebalance import service

    console, out, state, _ = _setup()
    view = service.plan(state, service.PlanSpec(goal="balanced"))
    live = view.alternative_plans.get("live-only")
    answers = _answers("live only", "sequential", "approve")
    approved = approve_plan(
        console,
        state,
        view.plan,
        yes=False,
        ask=lambda _p: next(answers),
        show=False,
        alternatives=view.alternative_plans,
    )
    assert approved is not None and approved.sequential
    if live is not None:
        assert "Using the live-only alternative" in out.getvalue()
        assert all(m.method.value == "live" or not m.running for m in approved.moves)
    else:
        assert "offers no 'live-only' alternative" in out.getvalue()
    assert "Execution is now sequential" in out.getvalue()
