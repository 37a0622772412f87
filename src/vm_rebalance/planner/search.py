"""Search strategies: which VMs move where, in what order. One interface, an explicit registry.

Why steepest descent on an exact objective (and not thresholds or a MIP):

* The objective (population std dev of node utilisation, weighted for `balanced`, plus hot-spot
  and heavy-VM terms for `performance`; see `goals`) changes on only two nodes per move, so the
  objective after *every* (VM, target) pair comes from running sums in O(1) and numpy
  evaluates whole blocks of pairs at once (`Problem.move_deltas`). Each step takes the move
  with the largest net benefit, so every accepted move strictly improves the objective — the
  plan can never make the cluster worse, and it is deterministic (stable sorts, sorted inputs,
  no randomness).
* Net benefit = objective gain expressed as the equivalent drop in the sum of squared
  deviations (``gain x 2 x K x objective``, which does not shrink as the cluster grows) minus
  the move's cost: the minimum gain (the goal's, or ``--min-gain``), a GiB tie-break (smaller
  VMs first when gains are equal) and a large cost for a cold move of a running VM (downtime
  must buy a lot of balance). A move whose benefit does not pay its cost is not made: the
  minimum-gain stop. Each VM moves at most once; the busiest node is never a target.
* Hard constraints are filters, not penalties: static feasibility (eligibility, taints,
  nodeSelector, required node affinity) from the cached class x node matrix; free allocatable
  by requests given every earlier move; pod (anti-)affinity / topology spread checked with
  `eligibility.pod_affinity_violations` for the VMs that take part in such terms. Because each
  move is feasible after all earlier ones, the move sequence itself is a capacity-safe
  execution order, which `waves.assign_waves` then compresses into parallel waves.
* Scale: on small problems (``VMs x nodes`` up to ``SINGLE_MOVE_PAIRS``) `greedy` scores every
  pair each round and takes the best (exactly the classic best-improvement search). On large
  ones it scores each VM on the busier half of the nodes against the most attractive feasible
  targets of its placement class in one vectorised pass, then accepts moves lazily from a
  priority queue (`_lazy_accept`): stale VMs are re-scored in numpy batches; an accepted move
  updates the utilisation and sums of its two nodes only, queues the VMs of the filled node
  for re-scoring, and a candidate is checked against the nodes relieved since it was scored
  before it is accepted. 100,000 VMs on 5,000 nodes plan in well under a minute.
* Under a binding ``max_migrations`` (small problems), `refine_under_budget` chooses the moves
  jointly: a 1-exchange local search that swaps an accepted move for the best single move
  given the others (another VM, or the same VM re-targeted) while the plan's net value rises.
* `exhaustive` is the same search with no pruning and one move per round.
* Drain (`drain`) is first-fit decreasing onto the best-balancing feasible target; a VM that
  fits nowhere gets room made for it (`_make_room`): up to ``MAKE_ROOM_HELPERS`` ordinary moves
  of other VMs off one target, sequenced before it, chosen fewest-cold, fewest, smallest, then
  best balance. If VMs still stay, smallest-first is tried too and the order that gets more VMs
  off the node wins.
"""

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Protocol

import numpy as np

from vm_rebalance.model import StayKind
from vm_rebalance.planner.eligibility import pod_affinity_violations
from vm_rebalance.planner.problem import (
    CPU,
    MEM,
    BoolArray,
    FloatArray,
    IntArray,
    Problem,
    Sums,
    Term,
    objective_from,
)

SINGLE_MOVE_PAIRS = 250_000
"""Up to this many (VM, target) pairs per round, take one best move per round."""
CANDIDATE_TARGETS = 48
"""On large problems, targets evaluated per placement class and round."""
CHUNK_PAIRS = 1_000_000
"""Pairs evaluated per numpy block (bounds temporary memory)."""


@dataclass(slots=True)
class SearchContext:
    """What a strategy needs besides the problem: objective, who may move, costs, limits."""

    terms: tuple[Term, ...]
    movable: BoolArray
    """Per VM of the problem: may the search move it."""
    cost: FloatArray
    """Per VM: the cost of moving it, in squared-deviation units (see module docstring)."""
    is_cold: BoolArray
    """Per VM: it moves cold (`eligibility.move_method`); never inferred from ``cost``."""
    budget: int
    headroom_limit: float
    """Soft ceiling in percentage points for CPU and memory of a target after a move."""
    drain_node: int | None = None
    helper_movable: BoolArray | None = None
    """Drain: VMs that may move to make room for the drained node's VMs (ordinary moves: no
    cooldown exemption); None means ``movable``."""
    failures: dict[int, tuple[StayKind, str]] = field(default_factory=dict)
    """Drain: VMs that could not be placed, with a reason when one is known at search time."""


Step = tuple[int, int]
"""(VM index, target node index) in the problem."""


class Strategy(Protocol):
    """A search: returns moves in a capacity-safe sequential order, applying them to ``problem``."""

    def __call__(self, problem: Problem, ctx: SearchContext) -> list[Step]: ...


def _node_rank(problem: Problem, terms: tuple[Term, ...], util: FloatArray, mask: BoolArray) -> FloatArray:
    """Higher = more loaded relative to the objective (better source, worse target)."""
    thresholds = {t: problem.thresholds(t) for t in terms if t.kind == "hot"}
    score = np.zeros(len(util), dtype=np.float64)
    for t in terms:
        col = util[:, t.column]
        if t.kind == "std":
            ref = col[mask] if mask.any() else col
            std = float(np.std(ref)) if len(ref) else 0.0
            score += t.weight * (col - float(np.mean(ref) if len(ref) else 0.0)) / (std + 1e-9)
        else:
            score += t.weight * np.maximum(col - thresholds[t], 0.0)
    return score


def _headroom_ok(
    problem: Problem, vms: IntArray, targets: IntArray, util: FloatArray, limit: float, *, drain: bool
) -> BoolArray:
    """Targets that stay under the headroom ceiling, or end below where the VM's source was."""
    ok = np.ones((len(vms), len(targets)), dtype=bool)
    src = problem.pos[vms]
    for c in (CPU, MEM):
        b = problem.load[vms, c][:, None] / problem.den[targets, c][None, :]
        post = util[targets, c][None, :] + b
        over = post > limit
        if not drain:
            over &= post >= util[src, c][:, None]
        ok &= ~over
    return ok


def busiest_nodes(problem: Problem, util: FloatArray, terms: tuple[Term, ...]) -> BoolArray:
    """The busiest objective node — highest weighted utilisation over the columns the objective
    spreads — is never a target: no churn onto the hottest node, even where different node sizes
    would make the numbers allow it."""
    out = np.zeros(len(problem.nodes), dtype=bool)
    nodes = np.flatnonzero(problem.obj_mask)
    spread = [t for t in terms if t.kind == "std" and t.weight > 0 and t.column in (CPU, MEM)]
    if len(nodes) == 0 or not spread:
        return out
    load = sum(t.weight * util[nodes, t.column] for t in spread)
    out[nodes[int(np.argmax(load))]] = True
    return out


def _candidate_targets(
    problem: Problem,
    feasible: BoolArray,
    rank: FloatArray,
    util: FloatArray,
    terms: tuple[Term, ...],
    min_req: FloatArray,
    limit: int | None,
) -> IntArray:
    free = problem.free
    nodes = np.flatnonzero(feasible & problem.obj_mask & (free >= min_req).all(axis=1))
    if limit is None or len(nodes) <= limit:
        return nodes
    picked: list[IntArray] = [_lowest(nodes, rank[nodes], limit // 2)]
    columns = sorted({t.column for t in terms})
    per = max(2, (limit - limit // 2) // max(len(columns), 1))
    for c in columns:
        picked.append(_lowest(nodes, util[nodes, c], per))
    return np.unique(np.concatenate(picked))


def _lowest(nodes: IntArray, values: FloatArray, k: int) -> IntArray:
    """The ``k`` nodes with the lowest ``values`` (any order; O(n))."""
    if len(nodes) <= k:
        return nodes
    return np.asarray(nodes[np.argpartition(values, k - 1)[:k]])


def _affinity_ok(problem: Problem, i: int, t: int) -> bool:
    if not problem.dynamic[i]:
        return True
    vm = problem.vms[i]
    node = problem.nodes[t]
    return not pod_affinity_violations(vm, node, node_labels=problem.node_labels, residents=problem.residents_for(vm))


@dataclass(slots=True)
class _Round:
    """One vectorised pass: each candidate VM's best net benefit and target, and the candidate
    targets of each placement class (kept for the lazy acceptance that follows)."""

    best_net: FloatArray
    best_t: IntArray
    class_targets: dict[int, IntArray]
    class_min_req: dict[int, FloatArray]


def _score_round(
    problem: Problem,
    ctx: SearchContext,
    moved: BoolArray,
    banned: dict[int, set[int]],
    *,
    exact: bool,
    target_limit: int | None,
) -> _Round | None:
    """Score every candidate VM against the candidate targets of its class; None when balanced."""
    terms = ctx.terms
    util = problem.utilisation()
    sums = problem.sums(terms, util)
    obj = objective_from(terms, sums.s1, sums.s2, sums.hot, sums.k)
    if obj <= 1e-9:
        return None
    scale = 2.0 * sums.k * obj
    rank = _node_rank(problem, terms, util, problem.obj_mask)
    busiest = busiest_nodes(problem, util, terms)
    cand = ctx.movable & ~moved & problem.obj_mask[problem.pos]
    if not exact:
        # Only VMs on the more loaded half of the nodes are sources.
        cut = float(np.median(rank[problem.obj_mask]))
        cand &= rank[problem.pos] >= cut
    n_vms = len(problem.vms)
    result = _Round(np.full(n_vms, -np.inf), np.full(n_vms, -1, dtype=np.int64), {}, {})
    free = problem.free
    for c in np.unique(problem.vm_class[cand]).tolist():
        vm_ids = np.flatnonzero(cand & (problem.vm_class == c))
        min_req = problem.vm_req[vm_ids].min(axis=0)
        result.class_min_req[c] = min_req
        targets = _candidate_targets(problem, problem.class_feasible[c], rank, util, terms, min_req, target_limit)
        if len(targets) == 0:
            continue
        result.class_targets[c] = targets
        chunk = max(1, CHUNK_PAIRS // len(targets))
        for start in range(0, len(vm_ids), chunk):
            ids = vm_ids[start : start + chunk]
            after = problem.move_deltas(terms, sums, ids, targets, util)
            net = (obj - after) * scale - ctx.cost[ids][:, None]
            ok = (problem.vm_req[ids][:, None, :] <= free[targets][None, :, :]).all(axis=2)
            ok &= problem.pos[ids][:, None] != targets[None, :]
            ok &= after < obj - 1e-12
            ok &= _headroom_ok(problem, ids, targets, util, ctx.headroom_limit, drain=False)
            ok &= ~busiest[targets][None, :]
            if banned:
                for row in np.flatnonzero(np.isin(ids, list(banned))):
                    ok[row] &= ~np.isin(targets, list(banned[int(ids[row])]))
            net = np.where(ok, net, -np.inf)
            j = np.argmax(net, axis=1)
            result.best_net[ids] = net[np.arange(len(ids)), j]
            result.best_t[ids] = targets[j]
    return result


def _accept_best(
    problem: Problem,
    order: IntArray,
    best_t: IntArray,
    moved: BoolArray,
    banned: dict[int, set[int]],
    steps: list[Step],
) -> tuple[int, bool]:
    """Accept the best move of the round that the pod (anti-)affinity rules allow."""
    new_bans = False
    for i_ in order:
        i, t = int(i_), int(best_t[i_])
        if not _affinity_ok(problem, i, t):
            banned.setdefault(i, set()).add(t)
            new_bans = True
            continue
        problem.apply(i, t)
        moved[i] = True
        steps.append((i, t))
        return 1, new_bans
    return 0, new_bans


def _best_improvement(problem: Problem, ctx: SearchContext, *, exact: bool) -> list[Step]:
    """Best-improvement search: one move per round on small problems (exactly the classic
    search), lazy acceptance of many moves per round on large ones (`_lazy_accept`)."""
    steps: list[Step] = []
    moved = np.zeros(len(problem.vms), dtype=bool)
    banned: dict[int, set[int]] = {}
    obj_nodes = int(problem.obj_mask.sum())
    if len(problem.vms) == 0 or obj_nodes < 2 or ctx.budget <= 0:
        return steps
    single = exact or int(ctx.movable.sum()) * obj_nodes <= SINGLE_MOVE_PAIRS
    target_limit = None if single else CANDIDATE_TARGETS
    while len(steps) < ctx.budget:
        scored = _score_round(problem, ctx, moved, banned, exact=single, target_limit=target_limit)
        if scored is None:
            break
        order = np.flatnonzero(scored.best_net > 0)
        order = order[np.argsort(-scored.best_net[order], kind="stable")]
        if single:
            accepted, new_bans = _accept_best(problem, order, scored.best_t, moved, banned, steps)
        else:
            accepted, new_bans = _lazy_accept(
                problem,
                ctx,
                order,
                scored.best_net,
                scored.class_targets,
                moved,
                banned,
                steps,
                min_req=scored.class_min_req,
                target_limit=target_limit,
            )
        if accepted == 0 and not new_bans:
            break
    return steps


ROUND_SHARE = 10
"""A lazy round accepts up to (objective nodes / ROUND_SHARE) moves before a fresh vectorised pass."""
LAZY_BATCH = 32
"""Stale VMs re-evaluated together (one numpy call) in the lazy acceptance phase."""
LAZY_EVALUATIONS = 20
"""A round's lazy phase ends after this many re-evaluations per allowed move (then a fresh
vectorised pass is cheaper than chasing stale values: every VM tends to want the same few
coolest targets, so each accepted move invalidates many fresh values)."""


REPICK_EVERY = 8
"""Lazy acceptance re-picks the candidate targets of every class after this many accepted moves
(nodes relieved in between are checked for each accepted move anyway)."""


def _lazy_accept(
    problem: Problem,
    ctx: SearchContext,
    order: IntArray,
    best_net: FloatArray,
    class_targets: dict[int, IntArray],
    moved: BoolArray,
    banned: dict[int, set[int]],
    steps: list[Step],
    *,
    min_req: dict[int, FloatArray],
    target_limit: int | None,
) -> tuple[int, bool]:
    """Accept a round of moves by lazy re-evaluation (the classic lazy-greedy priority queue).

    The heap holds each candidate VM's benefit, stale (from the round's vectorised pass) or
    fresh. Pop the best: if fresh (evaluated against the current state, neither its source nor
    its target changed since, and no node relieved since offers it more), accept it — it beats
    every other upper bound. If stale, re-evaluate it together with the next stale VMs
    (``LAZY_BATCH`` at a time, one numpy call) against the current sums and the current
    candidate targets of their class (re-picked after every accepted move, so filling the
    coolest nodes does not starve the round), and push them back with their fresh values.
    After each accepted move the VMs on its target (whose benefit grew) are re-evaluated at
    once. Up to a quarter of the nodes' worth of moves per round; then the caller re-evaluates
    everything.
    """
    lazy = _LazyRound(problem, ctx, class_targets, moved, banned, min_req=min_req, target_limit=target_limit)
    lazy.push_all(order, best_net)
    limit = max(8, int(problem.obj_mask.sum()) // ROUND_SHARE)
    while lazy.heap and lazy.accepted < limit and len(steps) < ctx.budget:
        if lazy.drop_outdated():
            continue
        top = lazy.heap[0][1]
        if not lazy.is_fresh(top):
            batch: list[int] = []
            while lazy.heap and len(batch) < LAZY_BATCH and not lazy.is_fresh(lazy.heap[0][1]):
                i = heapq.heappop(lazy.heap)[1]
                if not lazy.moved[i] and i not in batch:
                    batch.append(i)
            lazy.evaluations += len(batch)
            if lazy.accepted and lazy.evaluations > LAZY_EVALUATIONS * limit:
                break  # most stale values are gone: a fresh vectorised round is cheaper
            lazy.evaluate(np.array(batch, dtype=np.int64))
            continue
        if lazy.better_on_relieved(top):
            continue
        _, i = heapq.heappop(lazy.heap)
        t = lazy.fresh.pop(i)[0]
        if not _affinity_ok(problem, i, t):
            banned.setdefault(i, set()).add(t)
            lazy.new_bans = True
            continue
        lazy.accept(i, t)
        steps.append((i, t))
    return lazy.accepted, lazy.new_bans


class _LazyRound:
    """The state of one lazy acceptance round (see `_lazy_accept`)."""

    def __init__(
        self,
        problem: Problem,
        ctx: SearchContext,
        class_targets: dict[int, IntArray],
        moved: BoolArray,
        banned: dict[int, set[int]],
        *,
        min_req: dict[int, FloatArray],
        target_limit: int | None,
    ) -> None:
        self.problem = problem
        self.ctx = ctx
        self.class_targets = class_targets
        self.moved = moved
        self.banned = banned
        self.min_req = min_req
        self.target_limit = target_limit
        self.heap: list[tuple[float, int]] = []
        self.fresh: dict[int, tuple[int, int, float]] = {}
        """VM -> (best target, clock at evaluation, net benefit): the heap entry that counts."""
        self.touched = np.zeros(len(problem.nodes), dtype=np.int64)
        self.relieved: list[tuple[int, int]] = []
        """(clock, node) of every source relieved by an accepted move."""
        self.clock = 0
        self.targets_clock = 0
        self.accepted = 0
        self.evaluations = 0
        self.new_bans = False
        self._cache: tuple[FloatArray, Sums, float, BoolArray] | None = None

    def push_all(self, order: IntArray, best_net: FloatArray) -> None:
        self.heap = list(zip((-best_net[order]).tolist(), order.tolist(), strict=True))
        heapq.heapify(self.heap)

    def is_fresh(self, i: int) -> bool:
        entry = self.fresh.get(i)
        if entry is None:
            return False
        t, stamp, _ = entry
        return bool(self.touched[t] <= stamp and self.touched[self.problem.pos[i]] <= stamp)

    def drop_outdated(self) -> bool:
        """Pop the top entry when it is a superseded duplicate (or its VM already moved)."""
        value, i = self.heap[0]
        entry = self.fresh.get(i)
        if self.moved[i] or (entry is not None and -value != entry[2]):
            heapq.heappop(self.heap)
            return True
        return False

    def current(self) -> tuple[FloatArray, Sums, float, BoolArray]:
        """Utilisation, sums, objective and busiest nodes now (kept up to date by `accept`)."""
        if self._cache is None:
            p, terms = self.problem, self.ctx.terms
            util = p.utilisation()
            sums = p.sums(terms, util)
            obj = objective_from(terms, sums.s1, sums.s2, sums.hot, sums.k)
            self._cache = (util, sums, obj, busiest_nodes(p, util, terms))
        return self._cache

    def _update(self, nodes: tuple[int, int]) -> None:
        """Refresh the cached utilisation rows and running sums of the two nodes a move changed."""
        if self._cache is None:
            return
        p, terms = self.problem, self.ctx.terms
        util, sums, _, _ = self._cache
        hot_terms = [(k, t, p.thresholds(t)) for k, t in enumerate(terms) if t.kind == "hot"]
        for node in nodes:
            if p.obj_mask[node]:
                sums.s1 -= util[node]
                sums.s2 -= util[node] * util[node]
                for k, term, th in hot_terms:
                    sums.hot[k] -= max(float(util[node, term.column]) - float(th[node]), 0.0) ** 2
            util[node] = p.node_load[node] / p.den[node]
            if p.obj_mask[node]:
                sums.s1 += util[node]
                sums.s2 += util[node] * util[node]
                for k, term, th in hot_terms:
                    sums.hot[k] += max(float(util[node, term.column]) - float(th[node]), 0.0) ** 2
        obj = objective_from(terms, sums.s1, sums.s2, sums.hot, sums.k)
        self._cache = (util, sums, obj, busiest_nodes(p, util, terms))

    def _net(self, ids: IntArray, targets: IntArray) -> FloatArray:
        """Net benefit (gain minus cost) of each VM of ``ids`` to each of ``targets``; -inf where not allowed."""
        p, ctx = self.problem, self.ctx
        util, sums, obj, busiest = self.current()
        after = p.move_deltas(ctx.terms, sums, ids, targets, util)
        ok = (p.vm_req[ids][:, None, :] <= p.free[targets][None, :, :]).all(axis=2)
        ok &= targets[None, :] != p.pos[ids][:, None]
        ok &= p.class_feasible[p.vm_class[ids]][:, targets]
        ok &= after < obj - 1e-12
        ok &= _headroom_ok(p, ids, targets, util, ctx.headroom_limit, drain=False)
        ok &= ~busiest[targets][None, :]
        for row, i in enumerate(ids.tolist()):
            if i in self.banned:
                ok[row] &= ~np.isin(targets, list(self.banned[i]))
        gain = (obj - after) * 2.0 * sums.k * obj
        return np.asarray(np.where(ok, gain - ctx.cost[ids][:, None], -np.inf))

    def evaluate(self, ids_all: IntArray) -> None:
        """Re-evaluate VMs against their class's current candidate targets; push the positive ones."""
        p, ctx = self.problem, self.ctx
        ids_all = ids_all[~self.moved[ids_all]]
        if self.clock - self.targets_clock >= REPICK_EVERY:
            util = self.current()[0]
            rank = _node_rank(p, ctx.terms, util, p.obj_mask)
            for c in self.class_targets:
                self.class_targets[c] = _candidate_targets(
                    p, p.class_feasible[c], rank, util, ctx.terms, self.min_req[c], self.target_limit
                )
            self.targets_clock = self.clock
        classes = p.vm_class[ids_all]
        for c in np.unique(classes).tolist():
            ids = ids_all[classes == c]
            targets = self.class_targets.get(c)
            if targets is None or len(targets) == 0:
                continue
            net = self._net(ids, targets)
            j = np.argmax(net, axis=1)
            best = net[np.arange(len(ids)), j]
            for row, i in enumerate(ids.tolist()):
                if best[row] > 0:
                    self.fresh[i] = (int(targets[j[row]]), self.clock, float(best[row]))
                    heapq.heappush(self.heap, (-float(best[row]), i))
                else:
                    self.fresh.pop(i, None)

    def better_on_relieved(self, i: int) -> bool:
        """Whether a node relieved since VM ``i``'s evaluation offers it more (then re-queued)."""
        t, stamp, _ = self.fresh[i]
        nodes = []
        for clock, node in reversed(self.relieved):
            if clock <= stamp:
                break
            if node != t:
                nodes.append(node)
        if not nodes:
            return False
        targets = np.unique(np.array(nodes, dtype=np.int64))
        ids = np.array([i], dtype=np.int64)
        candidates = np.concatenate([np.array([t], dtype=np.int64), targets])
        net = self._net(ids, candidates)[0]
        k = int(np.argmax(net))
        if k == 0 or net[k] <= net[0]:
            return False
        heapq.heappop(self.heap)
        self.fresh[i] = (int(candidates[k]), self.clock, float(net[k]))
        heapq.heappush(self.heap, (-float(net[k]), i))
        return True

    def accept(self, i: int, t: int) -> None:
        """Apply the move; only evaluations involving its two nodes go stale (the mean moved a
        little, which shifts every benefit alike). The target's own VMs gained: re-evaluate them."""
        p = self.problem
        source = int(p.pos[i])
        p.apply(i, t)
        self.moved[i] = True
        self.accepted += 1
        self._update((source, t))
        self.clock += 1
        self.touched[source] = self.clock
        self.touched[t] = self.clock
        self.relieved.append((self.clock, source))
        # The target's own VMs gained: queue them first, to be re-evaluated with the next batch.
        for k in np.flatnonzero((p.pos == t) & self.ctx.movable & ~self.moved).tolist():
            self.fresh.pop(k, None)
            heapq.heappush(self.heap, (-np.inf, k))


def greedy(problem: Problem, ctx: SearchContext) -> list[Step]:
    """Vectorised best-improvement (batched on large problems)."""
    if ctx.drain_node is not None:
        return drain(problem, ctx)
    return _best_improvement(problem, ctx, exact=False)


def exhaustive(problem: Problem, ctx: SearchContext) -> list[Step]:
    """Best-improvement over every (VM, target) pair, one move per round: the reference search."""
    if ctx.drain_node is not None:
        return drain(problem, ctx)
    return _best_improvement(problem, ctx, exact=True)


MAKE_ROOM_HELPERS = 3
"""Drain: at most this many other VMs move first to make room for one VM leaving the drained node."""
MAKE_ROOM_TARGETS = 32
"""Drain: nodes examined per VM when making room (the smallest shortfall first)."""
MAKE_ROOM_POOL = 10
"""Drain: a node's residents combined when two or more helpers are needed (best coverage first)."""
MAKE_ROOM_TRIALS = 4
"""Drain: room-making plans simulated (among those with the fewest helpers) before taking the best."""
NO_ROOM = "no room even after moving others"


def drain(problem: Problem, ctx: SearchContext) -> list[Step]:
    """Every movable VM off the drained node, each to the feasible target that leaves the
    remaining nodes best balanced (targets that keep the headroom first).

    A VM that fits nowhere as things stand gets room made for it (`_make_room`): up to
    ``MAKE_ROOM_HELPERS`` other VMs first move off one target to nodes that can take them, then
    the VM moves there. Moves made for later VMs can free room for earlier ones, so the VMs left
    over are retried until a pass places none. Each VM moves at most once.

    Largest first (first-fit decreasing: big VMs have the fewest places to go). When that leaves
    VMs behind — the other nodes may simply lack the room, or the budget binds — smallest first
    is tried too, and the order that gets more VMs off the node (then with fewer moves, then the
    better balance) wins: where not everything can leave, more VMs leave.
    """
    assert ctx.drain_node is not None
    d = ctx.drain_node
    on_node = [int(i) for i in np.flatnonzero((problem.pos == d) & ctx.movable)]
    largest = sorted(on_node, key=lambda i: (-problem.vm_req[i, 1], -problem.vm_req[i, 0], problem.vms[i].ref))
    smallest = sorted(on_node, key=lambda i: (problem.vm_req[i, 1], problem.vm_req[i, 0], problem.vms[i].ref))
    best: tuple[tuple[int, int, float], list[Step], dict[int, tuple[StayKind, str]]] | None = None
    for order in (largest, smallest):
        trial = problem.fork()
        failures: dict[int, tuple[StayKind, str]] = {}
        steps = _drain_in_order(trial, replace(ctx, failures=failures), order)
        left = sum(1 for i in on_node if trial.pos[i] == d)
        key = (left, len(steps), trial.objective(ctx.terms))
        if best is None or key < best[0]:
            best = (key, steps, failures)
        if left == 0:
            break
    if best is None:
        return []
    for i, t in best[1]:
        problem.apply(i, t)
    ctx.failures.update(best[2])
    return best[1]


def _drain_in_order(problem: Problem, ctx: SearchContext, order: list[int]) -> list[Step]:
    steps: list[Step] = []
    moved = np.zeros(len(problem.vms), dtype=bool)
    pending = order
    while pending:
        left: list[int] = []
        for i in pending:
            if len(steps) >= ctx.budget:
                ctx.failures[i] = (StayKind.BUDGET, "max-migrations reached before this VM")
                left.append(i)
                continue
            if not _drain_directly(problem, ctx, i, steps, moved):
                placed, reason = _make_room(problem, ctx, i, steps, moved)
                if not placed:
                    if reason is not None:
                        ctx.failures[i] = reason
                    else:
                        ctx.failures.pop(i, None)
                    left.append(i)
                    continue
            ctx.failures.pop(i, None)
        if len(left) == len(pending):
            break
        pending = left
    return steps


def _preferred_target(problem: Problem, ctx: SearchContext, i: int, targets: IntArray) -> int | None:
    """The target (among capacity- and statically feasible ``targets``) leaving the objective nodes
    best balanced, those keeping the headroom first, that pod (anti-)affinity and spread allow."""
    if len(targets) == 0:
        return None
    util = problem.utilisation()
    sums = problem.sums(ctx.terms, util)
    one = np.array([i])
    after = problem.move_deltas(ctx.terms, sums, one, targets, util)[0]
    head = _headroom_ok(problem, one, targets, util, ctx.headroom_limit, drain=True)[0]
    preference = np.lexsort((targets, after, ~head))
    return next((int(targets[k]) for k in preference if _affinity_ok(problem, i, int(targets[k]))), None)


def _fitting_targets(problem: Problem, i: int, exclude: tuple[int, ...]) -> IntArray:
    feasible = problem.class_feasible[problem.vm_class[i]].copy()
    feasible[list(exclude)] = False
    feasible &= (problem.vm_req[i][None, :] <= problem.free).all(axis=1)
    return np.flatnonzero(feasible)


def _drain_directly(problem: Problem, ctx: SearchContext, i: int, steps: list[Step], moved: BoolArray) -> bool:
    assert ctx.drain_node is not None
    chosen = _preferred_target(problem, ctx, i, _fitting_targets(problem, i, (ctx.drain_node,)))
    if chosen is None:
        return False
    problem.apply(i, chosen)
    moved[i] = True
    steps.append((i, chosen))
    return True


CoverKey = tuple[int, int, float]
"""(cold helpers, helpers, their total cost): lower is better."""


def _cheapest_cover(
    problem: Problem, ctx: SearchContext, residents: IntArray, short: FloatArray, k_max: int
) -> tuple[CoverKey, list[int]] | None:
    """The residents whose requests together cover ``short`` with the fewest cold moves, then the
    fewest moves, then the smallest cost (smaller VMs): at most ``k_max`` of them, or None."""
    req = problem.vm_req[residents]
    cold = ctx.is_cold[residents]
    cost = ctx.cost[residents]
    best: tuple[CoverKey, list[int]] | None = None
    covering = np.flatnonzero((req >= short[None, :]).all(axis=1))
    for r in covering.tolist():
        key = (int(cold[r]), 1, float(cost[r]))
        if best is None or key < best[0]:
            best = (key, [int(residents[r])])
    if k_max < 2:
        return best
    dims = short > 0
    coverage = (np.minimum(req[:, dims] / short[dims][None, :], 1.0)).sum(axis=1)
    pool = np.lexsort((residents, cost, -coverage))[:MAKE_ROOM_POOL].tolist()
    for k in range(2, k_max + 1):
        if best is not None and best[0][0] == 0 and best[0][1] < k:
            break  # a live cover with fewer moves exists
        for combo in combinations(pool, k):
            rows = list(combo)
            if not (req[rows].sum(axis=0) >= short).all():
                continue
            key = (int(cold[rows].sum()), k, float(cost[rows].sum()))
            if best is None or key < best[0]:
                best = (key, sorted(int(residents[r]) for r in rows))
    return best


def _simulate_room(trial: Problem, ctx: SearchContext, i: int, t: int, helpers: list[int]) -> tuple[list[Step], str]:
    """Move ``helpers`` off ``t`` (largest first, each to its preferred feasible node), then ``i``
    to ``t``, in ``trial``; the steps, or no steps and why it failed."""
    assert ctx.drain_node is not None
    seq: list[Step] = []
    for h in sorted(helpers, key=lambda h: (-trial.vm_req[h, 1], -trial.vm_req[h, 0], trial.vms[h].ref)):
        u = _preferred_target(trial, ctx, h, _fitting_targets(trial, h, (t, ctx.drain_node)))
        if u is None:
            return [], f"{trial.vms[h].name} would have nowhere to go"
        trial.apply(h, u)
        seq.append((h, u))
    if not (trial.vm_req[i] <= trial.free[t]).all():
        return [], "moving its movable VMs frees too little"
    if trial.dynamic[i]:
        vm = trial.vms[i]
        reasons = pod_affinity_violations(
            vm, trial.nodes[t], node_labels=trial.node_labels, residents=trial.residents_for(vm)
        )
        if reasons:
            return [], f"after making room: {reasons[0]}"
    trial.apply(i, t)
    seq.append((i, t))
    return seq, ""


def _shortfall(short: FloatArray) -> str:
    parts = []
    if short[CPU] > 0:
        parts.append(f"{short[CPU]:.0f}m CPU")
    if short[MEM] > 0:
        parts.append(f"{short[MEM] / 1024**3:.1f}Gi memory")
    return " and ".join(parts)


def _amount(r: FloatArray) -> str:
    return f"{r[CPU]:.0f}m CPU / {r[MEM] / 1024**3:.1f}Gi"


Failure = tuple[StayKind, str]


def _make_room(
    problem: Problem, ctx: SearchContext, i: int, steps: list[Step], moved: BoolArray
) -> tuple[bool, Failure | None]:
    """Place VM ``i`` (on the drained node, fitting nowhere now) by first moving one to
    ``MAKE_ROOM_HELPERS`` other VMs off a target node.

    Helpers are VMs that may move in an ordinary plan (``ctx.helper_movable``: live-migratable
    under --live-only, not do-not-move, not in cooldown), not moved yet and not on the drained
    node. Targets are examined smallest shortfall first; on each, the cover with the fewest cold
    moves, then the fewest moves, then the smallest VMs. The best few are simulated on a working
    copy — each helper to its preferred feasible node (every rule, capacity after the earlier
    moves), then ``i`` — and the one leaving the best balance net of the helpers' cost is applied.
    Returns (placed, why not): no reason when no node lacks only capacity (the placement rules
    keep the VM here: the caller explains those).
    """
    assert ctx.drain_node is not None
    need = problem.vm_req[i]
    static = problem.class_feasible[problem.vm_class[i]].copy()
    static[ctx.drain_node] = False
    short = np.maximum(need[None, :] - problem.free, 0.0)
    lacking = static & (short > 0).any(axis=1)
    if not lacking.any():
        return False, None  # room exists: the placement rules keep it here, the caller explains them
    hopeless = _hopeless(problem, static, need)
    if hopeless is not None:
        return False, hopeless
    big_enough = (problem.alloc >= need[None, :]).all(axis=1)
    all_nodes = np.flatnonzero(lacking & big_enough)
    rel = (short[all_nodes] / np.maximum(need, 1.0)[None, :]).max(axis=1)
    nodes = all_nodes[np.lexsort((all_nodes, rel))][:MAKE_ROOM_TARGETS].tolist()
    notes: dict[int, str] = {}
    plans, over_budget = _room_plans(problem, ctx, nodes, short, steps, moved, notes)
    best = _best_room_plan(problem, ctx, i, plans, notes)
    if best is not None:
        for h, u in best:
            problem.apply(h, u)
            moved[h] = True
            steps.append((h, u))
        return True, None
    if over_budget is not None:
        return False, (
            StayKind.BUDGET,
            f"max-migrations reached: it would need {over_budget} other move(s) first to make room",
        )
    shown = [f"{problem.node_names[t]} lacks {_shortfall(short[t])}: {notes[t]}" for t in nodes[:2] if t in notes]
    text = f"{NO_ROOM}: " + "; ".join(shown)
    if len(all_nodes) > len(shown):
        text += f"; +{len(all_nodes) - len(shown)} more node(s) short of room"
    too_small = int((static & ~big_enough).sum())
    if too_small:
        text += f"; {too_small} node(s) too small for it"
    refused = int((static & ~lacking).sum())
    if refused:
        text += f"; {refused} node(s) with room refuse it (pod affinity, anti-affinity or topology spread)"
    return False, (StayKind.NO_ROOM, text)


def _hopeless(problem: Problem, static: BoolArray, need: FloatArray) -> Failure | None:
    """Why no amount of room-making can place a VM needing ``need`` on the ``static`` nodes, or None."""
    big_enough = (problem.alloc >= need[None, :]).all(axis=1)
    if not (static & big_enough).any():
        largest = problem.alloc[static].max(axis=0)
        return StayKind.NO_TARGET, (
            f"insufficient allocatable: it needs {_amount(need)}, more than any node it may run on allocates "
            f"(at most {_amount(largest)})"
        )
    total_free = np.maximum(problem.free[static], 0.0).sum(axis=0)
    if (total_free < need).any():
        return StayKind.NO_ROOM, (
            f"{NO_ROOM}: the {int(static.sum())} node(s) it may run on have {_amount(total_free)} free in total, "
            f"it needs {_amount(need)}"
        )
    return None


def _room_plans(
    problem: Problem,
    ctx: SearchContext,
    nodes: list[int],
    short: FloatArray,
    steps: list[Step],
    moved: BoolArray,
    notes: dict[int, str],
) -> tuple[list[tuple[CoverKey, int, list[int]]], int | None]:
    """Per candidate target: the cheapest set of its residents whose departure makes the room
    (sorted best first), and the fewest helpers a target would need beyond the budget (or None)."""
    assert ctx.drain_node is not None
    d = ctx.drain_node
    free = problem.free
    spare = ctx.budget - len(steps) - 1
    helper_mask = ctx.movable if ctx.helper_movable is None else ctx.helper_movable
    helper_ok = helper_mask & ~moved & (problem.pos != d)
    plans: list[tuple[CoverKey, int, list[int]]] = []
    over_budget: int | None = None
    for t in nodes:
        residents = np.flatnonzero(helper_ok & (problem.pos == t))
        if len(residents) == 0:
            notes[t] = "none of its VMs may move"
            continue
        fits = (problem.vm_req[residents][:, None, :] <= free[None, :, :]).all(axis=2)
        fits &= problem.class_feasible[problem.vm_class[residents]]
        fits[:, [t, d]] = False
        residents = residents[fits.any(axis=1)]
        if len(residents) == 0:
            notes[t] = "its movable VMs fit on no other node"
            continue
        cover = _cheapest_cover(problem, ctx, residents, short[t], MAKE_ROOM_HELPERS)
        if cover is None:
            notes[t] = f"moving up to {MAKE_ROOM_HELPERS} of its movable VMs frees too little"
            continue
        if cover[0][1] > spare:
            over_budget = cover[0][1] if over_budget is None else min(over_budget, cover[0][1])
            notes[t] = f"--max-migrations leaves no room for the {cover[0][1]} move(s) that would make room"
            continue
        plans.append((cover[0], t, cover[1]))
    plans.sort(key=lambda p: (p[0], p[1]))
    return plans, over_budget


def _best_room_plan(
    problem: Problem,
    ctx: SearchContext,
    i: int,
    plans: list[tuple[CoverKey, int, list[int]]],
    notes: dict[int, str],
) -> list[Step] | None:
    """Simulate the best few room-making plans (fewest cold, fewest helpers first); the one
    leaving the best balance net of the helpers' cost, as steps, or None."""
    obj0 = problem.objective(ctx.terms)
    scale = 2.0 * max(int(problem.obj_mask.sum()), 1) * obj0
    best: tuple[float, list[Step]] | None = None
    best_key: tuple[int, int] | None = None
    successes = 0
    for key, t, helpers in plans:
        if best_key is not None and (key[0], key[1]) > best_key:
            break
        trial = problem.fork()
        seq, why = _simulate_room(trial, ctx, i, t, helpers)
        if not seq:
            notes[t] = why
            continue
        value = -trial.objective(ctx.terms) * scale - float(sum(ctx.cost[h] for h, _ in seq[:-1]))
        if best is None or value > best[0] + 1e-9 * max(abs(best[0]), 1.0):
            best = (value, seq)
        best_key = (key[0], key[1])
        successes += 1
        if successes >= MAKE_ROOM_TRIALS:
            break
    return None if best is None else best[1]


STRATEGIES: Mapping[str, Callable[[Problem, SearchContext], list[Step]]] = {
    "greedy": greedy,
    "exhaustive": exhaustive,
}
"""Registered strategies by name (`PlanRequest.strategy`)."""


REFINE_MAX_MOVES = 64
"""Budget refinement (`refine_under_budget`) runs for budgets up to this many moves."""
REFINE_PASSES = 3


def _replay(pristine: Problem, steps: list[Step]) -> Problem | None:
    """``pristine`` with ``steps`` applied in order, or None if one no longer fits when its turn comes."""
    p = pristine.fork()
    for i, t in steps:
        if not (p.vm_req[i] <= p.free[t]).all() or not _affinity_ok(p, i, t):
            return None
        p.apply(i, t)
    return p


def refine_under_budget(pristine: Problem, steps: list[Step], ctx: SearchContext) -> tuple[list[Step], Problem]:
    """When the move budget binds, choose the moves jointly: a 1-exchange local search.

    Greedy takes the best move first and can lock the budget into moves that later ones make
    less useful. Here each accepted move in turn is taken out and the best single move given
    all the others (any VM not otherwise moving — the same VM re-targeted included) is put in
    its place, when that raises the plan's net value: the objective gain (in the search's
    squared-deviation units) minus the moves' costs. Every candidate sequence is replayed from
    the start state, so each move still fits (capacity, every placement rule) after the ones
    before it. Deterministic; stops after ``REFINE_PASSES`` passes or when no exchange helps.
    """
    terms = ctx.terms
    obj0 = pristine.objective(terms)
    scale = 2.0 * max(int(pristine.obj_mask.sum()), 1) * obj0
    current = _replay(pristine, steps)
    if current is None or not steps or obj0 <= 0:
        return steps, current if current is not None else pristine.fork()

    def value(p: Problem, seq: list[Step]) -> float:
        return -p.objective(terms) * scale - float(sum(ctx.cost[i] for i, _ in seq))

    best = value(current, steps)
    for _ in range(REFINE_PASSES):
        improved = False
        for j in range(len(steps)):
            rest = steps[:j] + steps[j + 1 :]
            p = _replay(pristine, rest)
            if p is None:
                continue
            busy = np.zeros(len(p.vms), dtype=bool)
            busy[[i for i, _ in rest]] = True
            sub = replace(ctx, movable=ctx.movable & ~busy, budget=1, failures={})
            added = _best_improvement(p, sub, exact=False)
            if not added:
                continue
            candidate = rest + added
            v = value(p, candidate)
            if v > best + 1e-9 * max(abs(best), 1.0):
                steps, current, best, improved = candidate, p, v, True
        if not improved:
            break
    return steps, current
