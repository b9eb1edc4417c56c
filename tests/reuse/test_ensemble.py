"""Eq. 12-13 ensembles and the patch of DESIGN decision 6."""

import numpy as np
import pytest

from skmll.reuse import ensemble_scores, entropy_confidence, normalise_rows, patch_probabilities


def test_entropy_confidence_extremes():
    probs = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(entropy_confidence(probs), [1.0, 0.0, 1 - np.log(2) / np.log(3)],
                               atol=1e-9)


def test_ensemble_matches_eq12_by_hand():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(3), size=4)            # model a: 3 heads
    b = rng.dirichlet(np.ones(2), size=4)            # model b: 2 heads
    xa = np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 0.5]])   # a serves both classes
    xb = np.array([[0.0, 0.0], [0.0, 1.0]])               # b serves class 1 only
    scores = ensemble_scores([a, b], [xa, xb])
    wa, wb = entropy_confidence(a), entropy_confidence(b)
    np.testing.assert_allclose(scores[:, 0], a @ xa[:, 0])               # only a: weight 1
    expected = (wa * (a @ xa[:, 1]) + wb * (b @ xb[:, 1])) / (wa + wb)
    np.testing.assert_allclose(scores[:, 1], expected)


def test_fully_uncertain_models_count_equally():
    uniform = np.full((1, 2), 0.5)
    scores = ensemble_scores([uniform, uniform], [np.array([[1.0], [0.0]]),
                                                  np.array([[0.0], [1.0]])])
    assert scores[0, 0] == pytest.approx(0.5)


def test_patch_combines_general_and_expert_mass():
    experts = np.array([[0.75, 0.25], [0.0, 1.0]])
    general = np.array([[0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])
    out = patch_probabilities(experts, general, np.array([True, False, True]))
    np.testing.assert_allclose(out, [[0.6, 0.2, 0.2], [0.0, 0.1, 0.9]])
    np.testing.assert_allclose(out.sum(axis=1), 1)


def test_normalise_rows_handles_zero_rows():
    np.testing.assert_allclose(normalise_rows(np.array([[0.0, 0.0], [1.0, 3.0]])),
                               [[0.5, 0.5], [0.25, 0.75]])
