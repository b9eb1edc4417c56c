"""CHCO over a whole hub: bound screening, then a tight solve of the experts that can matter."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._chco import chco_lower_bounds, chco_many, head_class_probabilities, heu

TIGHT_TOL = 1e-6    # relative duality gap of the reuse losses that decide the selection
_LOOSE_TOL = 1e-4   # the screening pass's; a contender it leaves is solved again tightly
_LOOSE_MAX_ITER = 300


def reuse_problems(labels, node_rows, statistic="probability"):
    """Each expert's (heads x classes) head-class probabilities P for the task's nodes.

    Made once: bounds, screening and the tight solve all read them.

    Parameters
    ----------
    labels : list of ModelLabel
        One label per expert.
    node_rows : int ndarray
        The SDAG node index of each matched class.
    statistic : {"probability", "logit"}, default="probability"
        "logit" is the paper's Eq. 4 (softmax of mixed mean logits); "probability" the mixed
        mean of per-image softmax outputs, renormalised over the classes.

    Returns
    -------
    list of ndarray of shape (n_heads_m, n_classes)
    """
    problems = []
    for label in labels:
        if statistic == "probability":
            P = np.asarray(label.probabilities[node_rows], dtype=np.float64).T
            problems.append(P / P.sum(axis=0))   # mixed means of softmaxes: sums are 1
        else:
            problems.append(head_class_probabilities(label.scores[node_rows].T))   # Eq. 4
    return problems


def solve_hub(problems, *, k, depth, screen=True, combination="chco", names=None):
    """CHCO solutions of every expert's problem, as tight as the selection of k needs.

    A loose pass (objective within ~1e-4 of the optimum) screens the experts in rounds
    (:func:`_screen_rounds`); the contenders, the ``depth`` smallest losses of each class, are
    then solved tightly from where the loose pass stopped: their losses are certified within
    ``TIGHT_TOL`` (relative) of the optimum, far finer than the differences that decide a
    selection. A tight solve that stops early warns, naming the experts.

    Parameters
    ----------
    problems : list of ndarray of shape (n_heads_m, n_classes)
        Head-class probabilities (:func:`reuse_problems`).
    k : int
        Predictors kept per class.
    depth : int
        Contenders per class: a margin over k, or every expert when costs decide.
    screen : bool, default=True
        Rule out experts by their lower bounds without solving them. False solves every expert
        (a selection that may pick any expert with a finite loss needs every loss).
    combination : {"chco", "heu"}, default="chco"
        "heu" is the paper's ablation: the best single head per class, nothing to screen.
    names : list of str or None
        Expert names, for the warnings.

    Returns
    -------
    list of (ndarray of shape (n_heads_m, n_classes) or None, ndarray of shape (n_classes,))
        Per expert, its head weights and losses; ``(None, inf)`` for an expert ruled out by
        its bounds and never solved.
    """
    if combination == "heu":
        return [heu(P, probabilities=True) for P in problems]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # the pass only screens
        solutions = _screen_rounds(problems, k=k, depth=depth, screen=screen)
    losses = np.stack([loss for _, loss in solutions])
    contenders = np.unique(np.argsort(losses, axis=0, kind="stable")[:depth].ravel())
    contenders = contenders[[solutions[i][0] is not None for i in contenders]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        refined = chco_many([problems[i] for i in contenders], probabilities=True,
                            tol=TIGHT_TOL, init=[solutions[i][0] for i in contenders])
    warn_by_name(caught, contenders, names)
    for i, solution in zip(contenders, refined):
        solutions[i] = solution
    return solutions


def warn_by_name(caught, experts, names):
    """Re-issue warnings of a solve over ``experts`` (indices), naming them by ``names``."""
    for record in caught:
        stalled = getattr(record.message, "models", None)
        if stalled is None:
            warnings.warn_explicit(record.message, record.category, record.filename,
                                   record.lineno)
            continue
        named = [experts[i] if names is None else names[experts[i]] for i in stalled]
        warnings.warn(f"CHCO did not converge tightly (tol {TIGHT_TOL}) for experts "
                      f"{named}: their reuse losses may be slightly above the optimum",
                      ConvergenceWarning, stacklevel=4)


def _screen_rounds(problems, *, k, depth, screen=True):
    """Loose CHCO solutions (objective within ~1e-4 of the optimum), in rounds.

    Each round solves, per class, the ``depth`` unsolved experts with the smallest lower
    bounds (:func:`~skmll.selection.chco_lower_bounds`) that could still beat the class's
    current k-th smallest loss; an expert whose bound exceeds that loss for every class
    can never be selected and is not solved at all: its solution is ``(None, inf)``. With
    ``screen=False``, or no more experts than ``depth``, every expert is solved in one pass.
    """
    n_experts = len(problems)
    if not screen or n_experts <= depth:
        return chco_many(problems, probabilities=True, tol=_LOOSE_TOL, max_iter=_LOOSE_MAX_ITER)
    bounds = chco_lower_bounds(problems, probabilities=True)
    solutions = [(None, np.full(bounds.shape[1], np.inf))] * n_experts
    losses = np.full(bounds.shape, np.inf)
    threshold = np.full(bounds.shape[1], np.inf)
    while True:
        open_bounds = np.where(np.isinf(losses) & (bounds <= threshold), bounds, np.inf)
        picked = np.argsort(open_bounds, axis=0, kind="stable")[:depth]
        batch = np.unique(picked[np.isfinite(np.take_along_axis(open_bounds, picked, 0))])
        if not len(batch):
            return solutions
        for i, solution in zip(batch, chco_many([problems[i] for i in batch], tol=_LOOSE_TOL,
                                                probabilities=True,
                                                max_iter=_LOOSE_MAX_ITER)):
            solutions[i] = solution
            losses[i] = np.where(np.isfinite(solution[1]), solution[1], np.finfo(float).max)
        threshold = np.sort(losses, axis=0)[min(int(k), n_experts) - 1]
