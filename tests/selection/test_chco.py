"""CHCO (Eq. 4-11): the production solver against the paper's per-head loop and scipy's SLSQP."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning

from skmll.selection import _chco
from skmll.selection._chco import (
    _knapsack_bounds,
    chco,
    chco_loss,
    chco_lower_bounds,
    chco_many,
    head_class_probabilities,
    heu,
)


def _objective(P, X):
    return chco_loss(P, X).sum()


def _assert_feasible(X):
    assert np.all(X >= 0)
    assert np.all(X.sum(axis=1) <= 1 + 1e-12)


def _project_simplex_row(y):
    """Euclidean projection onto {x >= 0, sum(x) <= 1} (sort-based, Duchi et al. 2008)."""
    clipped = np.maximum(y, 0.0)
    if clipped.sum() <= 1.0:
        return clipped
    u = np.sort(y)[::-1]
    cumulative = np.cumsum(u) - 1.0
    k = np.arange(1, len(y) + 1)
    rho = np.nonzero(u - cumulative / k > 0)[0][-1]
    return np.maximum(y - cumulative[rho] / (rho + 1), 0.0)


def _per_head_loop(P, tol=1e-15, max_sweeps=20000):
    """The paper's CHCO loop, literally: for each head in turn, the gradient of its row from
    Eq. 11 at the current A, a gradient step, the projection of the row, and the rank-1
    update of A; sweeps until a sweep no longer decreases the objective."""
    n_heads, n_classes = P.shape
    X = np.full(P.shape, 1.0 / n_classes)
    A = P.T @ X
    off = ~np.eye(n_classes, dtype=bool)

    def gradient_weights(A):  # W of Eq. 11 and the second derivatives
        with np.errstate(divide="ignore"):  # 1 - A[c, c] may be 0; np.where drops it
            W = np.where(off, 1.0 / (max(n_classes - 1, 1) * (1.0 - A)), -1.0 / A)
            D = np.where(off, 1.0 / (max(n_classes - 1, 1) * (1.0 - A) ** 2), 1.0 / A**2)
        return W, D

    objective = chco_loss(P, X).sum()
    for _ in range(max_sweeps):
        start = objective
        for h in range(n_heads):
            W, D = gradient_weights(A)
            g = P[h] @ W
            step = 1.0 / max(((P[h] ** 2) @ D).max(), 1e-300)  # inverse local curvature
            for _ in range(60):  # halve the step until the objective decreases
                x = _project_simplex_row(X[h] - step * g)
                A_new = A + np.outer(P[h], x - X[h])
                with np.errstate(divide="ignore", invalid="ignore"):
                    new = _chco._losses(A_new).sum()
                if new <= objective:
                    X[h], A, objective = x, A_new, new
                    break
                step /= 2
        if start - objective <= tol * abs(objective):
            break
    return X, objective


def _slsqp(P):
    """An independent solver: scipy's SLSQP with the constraints of Eq. 5-6."""
    n_heads, n_classes = P.shape

    def objective(flat):
        A = P.T @ flat.reshape(n_heads, n_classes)
        return _chco._losses(np.clip(A, 1e-300, 1 - 1e-16)).sum()

    def jacobian(flat):
        A = np.clip(P.T @ flat.reshape(n_heads, n_classes), 1e-300, 1 - 1e-16)
        first, _ = _chco._loss_derivatives(A)
        return (P @ first).ravel()

    rows = np.kron(np.eye(n_heads), np.ones(n_classes))
    result = minimize(objective, np.full(n_heads * n_classes, 1.0 / n_classes), jac=jacobian,
                      method="SLSQP", bounds=[(0, 1)] * (n_heads * n_classes),
                      constraints=[{"type": "ineq", "fun": lambda x: 1 - rows @ x,
                                    "jac": lambda x: -rows}],
                      options={"ftol": 1e-14, "maxiter": 2000})
    X = np.clip(result.x.reshape(n_heads, n_classes), 0, None)
    X /= np.maximum(X.sum(axis=1, keepdims=True), 1.0)
    return X


def _scores(kind, n_heads, n_classes, seed):
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return rng.normal(0, 0.1, (n_heads, n_classes))
    if kind == "peaked":
        scores = rng.normal(0, 1, (n_heads, n_classes))
        informative = rng.integers(0, n_heads, n_classes)
        scores[informative, np.arange(n_classes)] += rng.uniform(4, 8, n_classes)
        return scores
    return rng.normal(0, 3, (n_heads, n_classes))  # "wide"


CASES = [(kind, H, C) for kind in ("flat", "peaked", "wide")
         for H, C in [(1, 1), (6, 1), (1, 3), (2, 2), (12, 2), (3, 5), (4, 4), (25, 3), (8, 6)]]


@pytest.mark.parametrize("kind, n_heads, n_classes", CASES)
def test_matches_the_per_head_loop(kind, n_heads, n_classes):
    scores = _scores(kind, n_heads, n_classes, seed=n_heads * 31 + n_classes)
    P = head_class_probabilities(scores)
    X, losses = chco(scores)
    _, loop_objective = _per_head_loop(P)
    _assert_feasible(X)
    assert losses.sum() == pytest.approx(loop_objective, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_matches_slsqp(seed):
    rng = np.random.default_rng(seed)
    n_heads, n_classes = int(rng.integers(2, 7)), int(rng.integers(2, 5))
    scores = rng.normal(0, rng.choice([0.3, 2.0]), (n_heads, n_classes))
    P = head_class_probabilities(scores)
    _, losses = chco(scores)
    reference = _objective(P, _slsqp(P))
    assert losses.sum() <= reference * (1 + 1e-4)
    assert losses.sum() == pytest.approx(reference, rel=1e-4)


def test_losses_are_those_of_the_returned_combination():
    scores = _scores("wide", 30, 5, seed=3)
    X, losses = chco(scores)
    _assert_feasible(X)
    np.testing.assert_array_equal(losses, chco_loss(head_class_probabilities(scores), X))


def test_adding_a_constant_to_a_column_changes_nothing():
    scores = _scores("peaked", 20, 4, seed=5)
    shifted = scores + np.array([3.0, -7.0, 0.5, 100.0])
    _, losses = chco(scores)
    _, shifted_losses = chco(shifted)
    np.testing.assert_allclose(shifted_losses, losses, rtol=1e-9)


def test_one_dominant_head_per_class_is_chosen_alone():
    scores = np.full((5, 3), -10.0)
    scores[[4, 0, 2], [0, 1, 2]] = 10.0  # class c has one dominant head
    X, losses = chco(scores)
    expected = np.zeros((5, 3))
    expected[[4, 0, 2], [0, 1, 2]] = 1.0
    np.testing.assert_allclose(X[[4, 0, 2]], expected[[4, 0, 2]], atol=1e-6)
    assert np.all(losses < 1e-6)


def test_single_class_uses_every_head():
    X, losses = chco(_scores("wide", 7, 1, seed=0))
    np.testing.assert_allclose(X, 1.0)
    np.testing.assert_allclose(losses, 0.0, atol=1e-15)


def test_single_head_is_shared_evenly():
    X, losses = chco(np.zeros((1, 3)))
    np.testing.assert_allclose(X, [[1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(losses, -np.log(1 / 3) - np.log(2 / 3))


def test_probabilities_input_gives_the_same_result():
    scores = _scores("peaked", 15, 4, seed=8)
    _, losses = chco(scores)
    _, losses_p = chco(head_class_probabilities(scores), probabilities=True)
    np.testing.assert_allclose(losses_p, losses, rtol=1e-9)


def test_many_equals_one_by_one(monkeypatch):
    # Small blocks force several blocks and straggler rounds.
    monkeypatch.setattr(_chco, "_BLOCK_ENTRIES", 600)
    rng = np.random.default_rng(11)
    models = [_scores(kind, int(rng.integers(1, 60)), 4, seed=i)
              for i, kind in enumerate(["flat", "peaked", "wide"] * 8)]
    together = chco_many(models)
    for scores, (X, losses) in zip(models, together):
        _, losses_alone = chco(scores)
        assert X.shape == scores.shape
        _assert_feasible(X)
        assert losses.sum() == pytest.approx(losses_alone.sum(), rel=1e-8)


def test_many_rejects_different_classes():
    with pytest.raises(ValueError, match="same classes"):
        chco_many([np.zeros((3, 2)), np.zeros((3, 4))])
    assert chco_many([]) == []


def test_heu_picks_the_best_single_head():
    scores = np.array([[0.0, 5.0, 0.0],
                       [1.0, 0.0, 0.0],
                       [6.0, 0.0, 0.0],
                       [0.0, 0.0, 4.0]])
    X, losses = heu(scores)
    np.testing.assert_array_equal(X.argmax(axis=0), [2, 0, 3])
    assert X.sum() == 3
    P = head_class_probabilities(scores)
    np.testing.assert_allclose(losses, chco_loss(P, X))
    for c in range(3):  # no other single head does better
        for h in range(4):
            single = np.zeros_like(P)
            single[h, c] = 1.0
            assert chco_loss(P, single)[c] >= losses[c] - 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_chco_is_no_worse_than_a_feasible_heu(seed):
    scores = _scores("peaked", 12, 4, seed=seed)
    X_heu, losses_heu = heu(scores)
    if np.any(X_heu.sum(axis=1) > 1):
        pytest.skip("HEU shares a head here, so it is not a feasible CHCO combination")
    _, losses = chco(scores)
    assert losses.sum() <= losses_heu.sum() + 1e-12


def test_warm_start_and_convergence_warning():
    scores = _scores("wide", 40, 6, seed=2)
    with pytest.warns(ConvergenceWarning) as caught:
        X_short, losses_short = chco(scores, max_iter=1)
    assert caught[0].message.models == [0]   # indices of the stalled models, for callers
    with pytest.warns(ConvergenceWarning) as caught:
        chco_many([_scores("peaked", 3, 6, seed=1), scores], max_iter=1, tol=0)
    assert caught[0].message.models == [0, 1]
    _assert_feasible(X_short)
    _, losses = chco(scores)
    assert losses.sum() <= losses_short.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, warm_losses = chco(scores, init=X_short)
    assert warm_losses.sum() == pytest.approx(losses.sum(), rel=1e-8)


def test_chco_loss_matches_equation_9():
    P = np.array([[0.7, 0.2], [0.3, 0.8]])
    X = np.array([[1.0, 0.0], [0.5, 0.5]])
    A = P.T @ X  # A[c', c] = p_c(c')
    expected = [-np.log(A[0, 0]) - np.log(1 - A[1, 0]), -np.log(A[1, 1]) - np.log(1 - A[0, 1])]
    np.testing.assert_allclose(chco_loss(P, X), expected)
    assert np.isinf(chco_loss(P, np.zeros((2, 2)))).all()


@pytest.mark.parametrize("spread", [30.0, 300.0, 3000.0])
def test_extreme_scores_stay_finite_without_numpy_warnings(spread):
    rng = np.random.default_rng(int(spread))
    for _ in range(5):
        scores = rng.normal(0, spread, (int(rng.integers(1, 40)), int(rng.integers(1, 6))))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            X, losses = chco(scores)
        _assert_feasible(X)
        assert np.all(np.isfinite(losses))


def test_probabilities_are_a_stable_softmax_over_heads():
    P = head_class_probabilities([[1000.0, 0.0], [1000.0, -1e4], [0.0, 0.0]])
    np.testing.assert_allclose(P[:, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(P.sum(axis=0), 1.0)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(3), "2-D"),
    (np.zeros((2, 2, 2)), "2-D"),
    (np.zeros((0, 3)), "at least one head"),
    (np.zeros((3, 0)), "at least one head"),
    (np.array([[0.0, np.nan]]), "NaN or infinite"),
    (np.array([[0.0, np.inf]]), "NaN or infinite"),
])
def test_bad_scores_raise(bad, message):
    for function in (chco, heu, head_class_probabilities):
        with pytest.raises(ValueError, match=message):
            function(bad)


@pytest.mark.parametrize("bad, message", [
    (np.array([[0.5, 0.5], [0.4, 0.5]]), "sum to 1"),
    (np.array([[1.5, 0.5], [-0.5, 0.5]]), "non-negative"),
])
def test_bad_probabilities_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        chco(bad, probabilities=True)


def test_bad_init_and_parameters_raise():
    scores = np.zeros((3, 2))
    with pytest.raises(ValueError, match="shape"):
        chco(scores, init=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="feasible"):
        chco(scores, init=np.ones((3, 2)))
    with pytest.raises(ValueError, match="infinite loss"):
        chco(scores, init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="tol"):
        chco(scores, tol=-1)
    with pytest.raises(ValueError, match="shape"):
        chco_loss(np.ones((3, 2)) / 3, np.zeros((2, 2)))


score_matrices = st.tuples(st.integers(1, 12), st.integers(1, 6)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(-10, 10)))


def _eq9_by_hand(scores, X):
    """Eq. 4 and Eq. 7-9 written out from the paper, independently of skmll's code."""
    P = np.exp(scores - scores.max(axis=0))
    P /= P.sum(axis=0)                                  # Eq. 4: softmax over heads per class
    n_classes = P.shape[1]
    losses = []
    for c in range(n_classes):
        p_own = P[:, c] @ X[:, c]                       # Eq. 7
        rest = [np.log(1 - P[:, o] @ X[:, c]) for o in range(n_classes) if o != c]   # Eq. 8
        losses.append(-(np.log(p_own) + (np.mean(rest) if rest else 0.0)))         # Eq. 9
    return np.array(losses)


def _random_feasible(rng, shape):
    """Rows drawn uniformly from {x >= 0, sum(x) <= 1} (a Dirichlet with a slack coordinate)."""
    return rng.dirichlet(np.ones(shape[1] + 1), size=shape[0])[:, :-1]


@settings(max_examples=40, deadline=None)
@given(score_matrices, st.integers(0, 2**32 - 1))
def test_property_optimum_is_no_worse_than_an_independent_solver(scores, seed):
    """Feasible, and at least as good as SLSQP and as random feasible points, all judged by
    Eq. 9 written out by hand (the solver never starts from either)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        X, losses = chco(scores)
    if caught:   # a solve that says it stopped early must reach the optimum when given time
        X, losses = chco(scores, max_iter=50_000)
    _assert_feasible(X)
    objective = _eq9_by_hand(scores, X).sum()
    assert np.isfinite(objective)
    np.testing.assert_allclose(losses, _eq9_by_hand(scores, X), rtol=1e-7, atol=1e-9)
    margin = 1e-6 * max(1.0, abs(objective))
    reference = _eq9_by_hand(scores, _slsqp(head_class_probabilities(scores)))
    assert objective <= np.nan_to_num(reference.sum(), nan=np.inf) + margin
    rng = np.random.default_rng(seed)
    for _ in range(5):
        assert objective <= _eq9_by_hand(scores, _random_feasible(rng, X.shape)).sum() + margin


def _best_single_class_loss(P, c):
    """min of L_c over the column x_c alone in [0, 1]^H (the other columns free to be zero), by
    SLSQP from several starts: no feasible combination can give class c a smaller loss."""
    n_heads, n_classes = P.shape
    others = [o for o in range(n_classes) if o != c]

    def loss(x):
        own = np.clip(P[:, c] @ x, 1e-300, None)
        rest = [np.log(np.clip(1 - P[:, o] @ x, 1e-300, None)) for o in others]
        return -(np.log(own) + (np.mean(rest) if rest else 0.0))

    starts = [np.full(n_heads, 0.5), np.eye(n_heads)[P[:, c].argmax()],
              (P[:, c] >= P.max(axis=1)).astype(float)]
    return min(minimize(loss, x0, method="SLSQP", bounds=[(0, 1)] * n_heads,
                        options={"ftol": 1e-14, "maxiter": 500}).fun for x0 in starts)


@settings(max_examples=40, deadline=None)
@given(score_matrices, st.integers(0, 2**32 - 1))
def test_property_lower_bounds_hold_for_any_feasible_combination(scores, seed):
    """The knapsack bound is below the least loss each class can reach on its own (found by an
    independent solver), hence below its loss in any feasible combination; the returned bound
    (with the shared-heads one) is below the loss of every combination whose total is at most
    the uniform combination's, CHCO's own solution among them."""
    P = head_class_probabilities(scores)
    knapsack = _knapsack_bounds(P[None])[0]
    for c in range(scores.shape[1]):
        assert knapsack[c] <= _best_single_class_loss(P, c) + 1e-7 * max(1.0, knapsack[c])
    bounds = chco_lower_bounds([scores])[0]
    assert bounds.shape == (scores.shape[1],) and np.all(bounds >= knapsack - 1e-12)
    _, losses = chco(scores, tol=1e-7)
    assert np.all(bounds <= losses + 1e-9)
    n_classes = P.shape[1]
    uniform_total = n_classes * (2 * np.log(n_classes) - np.log(n_classes - 1)) \
        if n_classes > 1 else 0.0
    rng = np.random.default_rng(seed)
    for _ in range(20):
        combination = _random_feasible(rng, P.shape)
        losses = _eq9_by_hand(scores, combination)
        assert np.all(knapsack <= losses + 1e-9)
        if losses.sum() <= uniform_total:
            assert np.all(bounds <= losses + 1e-9)


def test_shared_heads_bound_rules_out_an_expert_that_answers_every_class_alike():
    """Columns all alike: the knapsack bound is 2 log 2, the loss the uniform one."""
    for n_classes in (3, 10, 200):
        scores = np.tile(np.log([0.1, 0.2, 0.3, 0.15, 0.25])[:, None], (1, n_classes))
        uniform = 2 * np.log(n_classes) - np.log(n_classes - 1)
        bounds = chco_lower_bounds([scores])[0]
        assert _knapsack_bounds(head_class_probabilities(scores)[None])[0] == \
            pytest.approx(np.full(n_classes, 2 * np.log(2)))
        assert np.all(bounds <= uniform + 1e-9) and np.all(bounds >= 0.9 * uniform)


def test_lower_bounds_are_tight_for_a_clean_expert_and_loose_for_noise():
    """One head per class: the bound is the loss. Noise heads: far below the optimum."""
    clean = np.log(np.eye(4) * 0.97 + 0.01)
    _, optimum = chco(clean)
    np.testing.assert_allclose(chco_lower_bounds([clean])[0], optimum, rtol=1e-6)
    noise = np.random.default_rng(0).normal(size=(50, 4))
    bounds = chco_lower_bounds([noise, clean])
    assert bounds.shape == (2, 4)
    assert np.all(bounds[0] > 5 * bounds[1])   # a noise expert can be ruled out
    assert np.all(chco_lower_bounds([np.zeros((3, 1))]) == 0)   # one class: every head, loss 0
