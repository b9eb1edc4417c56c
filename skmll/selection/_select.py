"""Selection of expert predictors per class (Algorithm 1, line 10)."""

from dataclasses import dataclass, field

import numpy as np

from ..utils import quoted_names
from ._screen import reuse_problems, solve_hub


@dataclass(frozen=True, eq=False)
class Selection:
    """The experts chosen to serve a task's classes, and what chose them.

    Attributes
    ----------
    names : list of str
        The experts considered, in hub order: the rows of ``losses``.
    experts : dict of str to list of (str, float, ndarray)
        Per class of the task, in the order given, its serving experts as (name, score, head
        weights): the score is the reuse loss, or the metric that ranked the expert; ``[]``
        where no expert serves the class.
    losses : ndarray of shape (n_experts, n_matched)
        What ranked the experts for each matched class, lower is better (CHCO losses, inf
        where unusable or never solved; a metric's negative).
    heads : list or ndarray
        How each expert would serve each matched class: its CHCO head weights, one
        (n_heads, n_matched) array per expert (None where never solved); or one head index
        per expert and class (-1 where untested).
    costs : ndarray of shape (n_experts,) or None, default=None
        Each expert's cost per image that the selection weighed (NaN: unknown).
    over_budget_reasons : dict of str to str, default={}
        Classes that some expert could serve but none within the budget, with the reason.
    n_read : int or None, default=None
        Experts whose labels were read for the task (None: every expert's); a zoo search
        (:func:`skmll.zoo.search_zoo`) reads only those its index cannot rule out.
    """

    names: list
    experts: dict
    losses: np.ndarray
    heads: object
    costs: np.ndarray = None
    over_budget_reasons: dict = field(default_factory=dict)
    n_read: int = None

    @property
    def used(self):
        """The distinct serving experts, in hub order."""
        serving = {name for served in self.experts.values() for name, _, _ in served}
        return [name for name in self.names if name in serving]

    @classmethod
    def from_picks(cls, task, names, picks, scores, head_weights, **fields):
        """The selection of ``picks[j]`` (expert indices) for the j-th matched class of
        ``task``, each reported with ``scores[m, j]`` and ``head_weights(m, j)``."""
        experts = {c: [] for c in task.classes}
        for j, class_index in enumerate(task.matched):
            experts[task.classes[class_index]] = [
                (names[m], float(scores[m, j]), head_weights(m, j)) for m in picks[j]]
        return cls(list(names), experts, **fields)


def select_experts(task, labels, costs=None, *, k=2, beta=None, max_cost=None, tolerance=0.0,
                   unit="gflops", statistic="probability", combination="chco", pick=None):
    """Up to ``k`` experts per matched class, by their CHCO reuse loss (Eq. 4-11).

    Every expert's label is read on the task's nodes (:func:`reuse_problems`) and CHCO solved
    over the whole hub as one batched problem; experts whose lower bounds show that they cannot
    enter any class's top k are never solved (hubs of more than 4k experts), and the contenders
    are solved tightly (:func:`solve_hub`). Each class then keeps the experts ``pick`` chooses:
    by default its ``k`` smallest losses at most ``beta``, or, when costs are weighed, the
    cheapest near-best within the budget (:func:`select_within_budget`).

    Parameters
    ----------
    task : TaskMatch
        The task's classes and their SDAG nodes (:func:`match_task`).
    labels : dict of str to ModelLabel
        Every expert's label, in hub order.
    costs : ndarray of shape (n_experts,) or None, default=None
        Each expert's cost per image in ``unit`` (NaN: unknown); needed when ``max_cost`` or
        ``tolerance`` is given.
    k : int, default=2
        Predictors per class.
    beta : float or None, default=None
        Keep predictors with a loss at most ``beta``; None keeps any finite loss.
    max_cost : float or None, default=None
        Budget per image: the summed cost of the distinct selected experts.
    tolerance : float, default=0.0
        Loss slack within which a cheaper candidate is preferred.
    unit : str, default="gflops"
        What ``costs`` weigh, for the over-budget reasons.
    statistic : {"probability", "logit"}, default="probability"
        What CHCO's head-class matrix is made of (:func:`reuse_problems`).
    combination : {"chco", "heu"}, default="chco"
        "heu" is the paper's ablation: one head per class.
    pick : callable or None, default=None
        ``pick(losses, k, beta) -> list of int ndarrays`` (expert indices per matched class),
        with ``beta`` a float (inf for None); it replaces the choice by loss, and every expert
        is then solved, since it may pick any of them.

    Returns
    -------
    Selection

    Examples
    --------
    Two experts' labels on the task's two nodes (rows: nodes; columns: heads): the sharp
    expert's heads tell the classes apart, the vague one's barely.

    >>> from types import SimpleNamespace
    >>> from skmll.selection import TaskMatch
    >>> task = TaskMatch(["cat", "dog"], np.array([0, 1]), np.ones(2), ["cat.n.01", "dog.n.01"])
    >>> labels = {"sharp": SimpleNamespace(probabilities=np.array([[0.9, 0.1], [0.1, 0.9]])),
    ...           "vague": SimpleNamespace(probabilities=np.array([[0.6, 0.4], [0.4, 0.6]]))}
    >>> selection = select_experts(task, labels, k=1)
    >>> selection.used, selection.losses.round(2).tolist()
    (['sharp'], [[0.21, 0.21], [1.02, 1.02]])
    """
    names = list(labels)
    beta = np.inf if beta is None else float(beta)
    if len(task.matched) == 0 or not names:
        return Selection(names, {c: [] for c in task.classes}, np.zeros((len(names), 0)), [],
                         costs)
    weighs_costs = max_cost is not None or tolerance > 0
    problems = reuse_problems(labels.values(), task.nodes[task.matched], statistic)
    # Contenders per class: a margin over the k that are kept; every expert when costs
    # decide, since a cheap expert far down the ranking may be the one selected.
    solutions = solve_hub(problems, k=k, depth=len(names) if weighs_costs else 4 * int(k),
                          screen=pick is None, combination=combination, names=names)
    losses = np.stack([loss for _, loss in solutions])
    if pick is not None:
        picks = pick(losses, k, beta)
    elif weighs_costs:
        picks = select_within_budget(losses, k, costs, beta=beta, max_cost=max_cost,
                                     tolerance=float(tolerance), names=names)
    else:
        picks = select_predictors(losses, k, beta)
    reasons = {} if max_cost is None else _over_budget_reasons(
        task, names, losses, picks, beta, f"max_cost={max_cost} {unit}")
    return Selection.from_picks(
        task, names, picks, losses, lambda m, j: solutions[m][0][:, j].copy(), losses=losses,
        heads=[weights for weights, _ in solutions], costs=costs, over_budget_reasons=reasons)


def _over_budget_reasons(task, names, losses, picks, beta, budget):
    """Why each matched class that some expert could serve has no predictor: the budget."""
    reasons = {}
    for j, class_index in enumerate(task.matched):
        could = np.flatnonzero(np.isfinite(losses[:, j]) & (losses[:, j] <= beta))
        if not len(picks[j]) and len(could):
            ranked = [names[m] for m in could[np.argsort(losses[could, j])]]
            reasons[task.classes[class_index]] = (
                f"no expert that could serve it ({quoted_names(ranked[:3])}"
                f"{' ...' if len(ranked) > 3 else ''}) fits within {budget} "
                "per image beside the experts of the other classes")
    return reasons


def select_predictors(losses, k, beta=np.inf):
    """Per class, up to ``k`` models with the smallest reuse loss ``L_c^m <= beta``.

    Parameters
    ----------
    losses : ndarray of shape (n_models, n_classes)
        CHCO losses (Eq. 9), the task-specific reuse scores; lower is better.
    k : int
        Reuse budget.
    beta : float
        Threshold (the paper's beta; Algorithm 1 writes delta there by a typo).

    Returns
    -------
    list of int ndarrays, one per class, model indices ordered by increasing loss.

    Examples
    --------
    >>> select_predictors(np.array([[0.2, 3.0], [0.1, 0.5], [0.9, 0.4]]), k=2, beta=1.0)
    [array([1, 0]), array([2, 1])]
    """
    losses = np.asarray(losses, dtype=np.float64)
    order = np.argsort(losses, axis=0, kind="stable")[:k]
    chosen = []
    for c in range(losses.shape[1]):
        column = order[:, c]
        keep = np.isfinite(losses[column, c]) & (losses[column, c] <= beta)
        chosen.append(column[keep])
    return chosen


def select_within_budget(losses, k, costs, *, beta=np.inf, max_cost=None, tolerance=0.0,
                         names=None):
    """Up to ``k`` models per class, preferring cheap ones, within a cost budget per image.

    A model's cost is paid once however many classes it serves (it runs once per image), so a
    model already selected costs nothing more: its *marginal* cost is 0, and any other model's
    is its cost. Ranks are filled in turn: every class gets its first predictor before any gets
    its second, so a budget is spent on coverage before redundancy. Within a rank, the pick of
    each class still to serve is, among its candidates (loss ``<= beta``, not selected for it
    yet, marginal cost within what is left of ``max_cost``), the one of smallest marginal cost
    among those whose loss is within ``tolerance`` of the class's best such candidate (ties:
    smaller loss, then lower index). Picks that cost nothing are committed first, all at once;
    then the cheapest of the remaining picks, after which the others are re-evaluated, since
    the model just paid for is free to them. Committing the cheapest pick first, rather than
    classes in a fixed order, lets later classes share the models that earlier ones paid for
    and covers as many classes as the budget allows at each rank. A class whose candidates all
    cost more than is left gets no predictor at that rank.

    With ``max_cost=None`` and ``tolerance=0`` this is :func:`select_predictors`, exactly.

    Parameters
    ----------
    losses : ndarray of shape (n_models, n_classes)
        CHCO losses (Eq. 9); lower is better.
    k : int
        Most predictors per class.
    costs : ndarray of shape (n_models,)
        Each model's cost per image; NaN where unknown.
    beta : float, default=inf
        Candidates have a loss at most ``beta``.
    max_cost : float or None, default=None
        Budget: the summed cost of the distinct selected models never exceeds it.
    tolerance : float, default=0.0
        Loss slack within which a cheaper candidate is preferred to a better one.
    names : list of str or None
        Model names, for error messages.

    Returns
    -------
    list of int ndarrays, one per class, model indices ordered by increasing loss.

    Raises
    ------
    ValueError
        When a budget or a tolerance is given and some candidate's cost is unknown (NaN): the
        message names those models; or when a cost is negative.

    Examples
    --------
    Model 0 is best for both classes but costs 10; model 1 is nearly as good and costs 1:

    >>> losses = np.array([[0.10, 0.20], [0.12, 0.90], [0.50, 0.25]])
    >>> costs = np.array([10.0, 1.0, 2.0])
    >>> select_within_budget(losses, 1, costs)                    # no budget: the best
    [array([0]), array([0])]
    >>> select_within_budget(losses, 1, costs, tolerance=0.05)    # near-best and cheaper
    [array([1]), array([2])]
    >>> select_within_budget(losses, 1, costs, max_cost=3.0)      # within 3 per image
    [array([1]), array([2])]
    >>> select_within_budget(losses, 1, costs, max_cost=2.5)      # model 1 serves both
    [array([1]), array([1])]
    >>> select_within_budget(losses, 1, costs, max_cost=0.5)      # nothing fits
    [array([], dtype=int64), array([], dtype=int64)]
    """
    losses = np.asarray(losses, dtype=np.float64)
    if max_cost is None and tolerance == 0:
        return select_predictors(losses, k, beta)
    costs = np.asarray(costs, dtype=np.float64)
    candidate = np.isfinite(losses) & (losses <= beta)
    _check_costs(costs, candidate.any(axis=1), names)
    budget = np.inf if max_cost is None else float(max_cost)
    # Float sums may exceed an exactly reachable budget by rounding; allow that much only.
    slack = 1e-9 * max(budget, 1.0) if np.isfinite(budget) else 0.0
    chosen = np.zeros(losses.shape, dtype=bool)
    used = np.zeros(len(costs), dtype=bool)
    spent = 0.0
    for _ in range(k):
        waiting = np.ones(losses.shape[1], dtype=bool)
        while waiting.any():
            marginal = np.where(used, 0.0, costs)
            picks = _cheapest_picks(losses, candidate & ~chosen, marginal,
                                    budget - spent + slack, tolerance)
            picks[~waiting] = -1
            served = np.flatnonzero(picks >= 0)
            if not len(served):
                break
            cost_of = marginal[picks[served]]
            commit = served[cost_of == 0] if (cost_of == 0).any() else \
                served[[np.argmin(cost_of)]]
            chosen[picks[commit], commit] = True
            spent += marginal[np.unique(picks[commit])].sum()
            used[picks[commit]] = True
            waiting[commit] = False
    return [np.flatnonzero(column)[np.argsort(losses[column, c], kind="stable")]
            for c, column in enumerate(chosen.T)]


def _check_costs(costs, could_serve, names):
    if (costs < 0).any():
        raise ValueError(f"costs must be >= 0; got {costs[costs < 0][:5].tolist()}")
    unknown = np.flatnonzero(np.isnan(costs) & could_serve)
    if len(unknown):
        named = [names[i] for i in unknown] if names is not None else unknown.tolist()
        raise ValueError(f"the cost of {len(unknown)} expert(s) that could be selected is "
                         f"unknown: {named[:10]}{' ...' if len(named) > 10 else ''}; a budget "
                         "or a cost tolerance needs every candidate's cost")


def _cheapest_picks(losses, open_pairs, marginal, left, tolerance):
    """Per class, the index of its pick (-1: none affordable), as select_within_budget says."""
    affordable = open_pairs & (marginal <= left)[:, None]
    masked = np.where(affordable, losses, np.inf)
    best = masked.min(axis=0)
    near = affordable & (masked <= best + tolerance)
    # smallest marginal cost, then smallest loss, then lowest index
    n_models = len(marginal)
    order = np.lexsort((np.arange(n_models)[:, None].repeat(losses.shape[1], 1), masked,
                        np.where(near, marginal[:, None], np.inf)), axis=0)
    picks = order[0]
    return np.where(near[picks, np.arange(losses.shape[1])], picks, -1)
