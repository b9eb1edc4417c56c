"""The index's bound (*) never exceeds a CHCO loss, whatever the task's other classes."""

import numpy as np
import pytest

from skmll.selection import chco_many
from skmll.selection._chco import _losses
from skmll.zoo import loss_bounds, pair_bound, responsiveness
from skmll.zoo._bound import dequantise, quantise_up

from ._zoos import random_expert


@pytest.mark.parametrize("seed", range(4))
def test_bound_is_below_the_solved_loss_and_any_feasible_loss(seed):
    rng = np.random.default_rng(seed)
    n_nodes = 40
    experts = [random_expert(rng, n_nodes, int(h)) for h in rng.choice([2, 5, 9, 33], 12)]
    for n_classes in (2, 3, 6, 15):
        nodes = rng.choice(n_nodes, n_classes, replace=False)
        problems = [(rows[nodes] / rows[nodes].sum(axis=1, keepdims=True)).T for rows in experts]
        solved = chco_many(problems, probabilities=True, tol=1e-6)
        for rows, P, (X, losses) in zip(experts, problems, solved):
            bound = loss_bounds(dequantise(quantise_up(responsiveness(rows)[nodes])))
            assert np.all(bound <= losses + 1e-9)
            # any feasible combination: random rows, scaled to sum at most 1
            Y = rng.dirichlet(np.ones(n_classes), size=len(P)) * rng.uniform(0, 1, (len(P), 1))
            assert np.all(bound <= _losses(P.T @ Y) + 1e-9)


def test_bound_is_tight_for_an_expert_that_answers_every_node_alike():
    rows = np.tile([0.2, 0.5, 0.3], (5, 1))
    d = responsiveness(rows)
    assert np.allclose(d, 0)
    (X, losses), = chco_many([rows[:2].T], probabilities=True)
    assert np.allclose(loss_bounds(d[:2]), 2 * np.log(2))
    assert np.allclose(losses, 2 * np.log(2), atol=1e-6)


def test_pair_bound_is_the_least_two_class_loss_at_that_distance():
    # p and q at total-variation distance t; the best predictor for p against q
    t = 0.6
    p, q = np.array([0.8, 0.2]), np.array([0.2, 0.8])
    assert np.isclose(0.5 * np.abs(p - q).sum(), t)
    grid = np.linspace(0, 1, 401)
    x = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    with np.errstate(divide="ignore"):
        best = np.min(-np.log(x @ p) - np.log1p(-(x @ q)))
    assert pair_bound(t) <= best + 1e-12
    assert best - pair_bound(t) < 0.05


def test_one_class_has_no_bound_and_stored_d_never_understates():
    assert loss_bounds(np.array([0.3])).tolist() == [0.0]
    d = np.random.default_rng(0).uniform(0, 1, 1000)
    assert np.all(dequantise(quantise_up(d)) >= d)
    assert np.all(dequantise(quantise_up(d)) - d <= 1 / 255 + 1e-12)
