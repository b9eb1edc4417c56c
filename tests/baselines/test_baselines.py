"""The paper's baselines (Random^MLL, LogME^MLL, LEEP^MLL) and their transferability metrics."""

import pickle

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.base import clone

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler
from skmll.baselines import (LEEPMLLClassifier, LogMEMLLClassifier, RandomMLLClassifier,
                             leep_score, logme_score)
from skmll.baselines._selectors import _binary_tests

from ..conftest import DIGIT_NAMES, DIGIT_SYNSETS, CountingExpert

BASELINES = [LogMEMLLClassifier, LEEPMLLClassifier, RandomMLLClassifier]


# --- LogME ---------------------------------------------------------------------------------

def _log_evidence(features, target, log_alpha, log_beta):
    """LogME's log evidence for one target column, straight from the matrices (no SVD)."""
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ target)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((features @ m - target) ** 2) - alpha / 2 * m @ m
            - np.linalg.slogdet(a)[1] / 2)


@pytest.mark.parametrize("n, d", [(60, 3), (30, 8), (12, 20)])
def test_logme_reaches_the_maximum_evidence(n, d):
    """The fixed point agrees with a general-purpose maximiser of the evidence formula."""
    rng = np.random.default_rng(n)
    y = rng.integers(0, 3, n)
    features = rng.normal(size=(n, d))
    features[:, 0] += y
    one_hot = np.eye(3)[y]
    best = [-minimize(lambda p: -_log_evidence(features, one_hot[:, k], *p), [0.0, 0.0],
                      method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                     "maxiter": 4000}).fun / n
            for k in range(3)]
    assert logme_score(features, y) == pytest.approx(np.mean(best), rel=1e-6)


def test_logme_prefers_informative_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    noise = rng.normal(size=(300, 5))
    informative = noise.copy()
    informative[:, 0] = 2 * y - 1 + 0.3 * rng.normal(size=300)
    assert logme_score(informative, y) > logme_score(noise, y) + 0.1
    # Weaker signal, lower evidence.
    blurred = informative.copy()
    blurred[:, 0] = 2 * y - 1 + 3.0 * rng.normal(size=300)
    assert logme_score(noise, y) < logme_score(blurred, y) < logme_score(informative, y)


def test_logme_invariances():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 80)
    features = rng.normal(size=(80, 4)) + y[:, None]
    score = logme_score(features, y)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    order = rng.permutation(80)
    assert logme_score(1e3 * features, y) == pytest.approx(score, rel=1e-6)
    assert logme_score(features @ rotation, y) == pytest.approx(score, rel=1e-6)
    assert logme_score(features[order], y[order]) == pytest.approx(score, rel=1e-9)
    assert logme_score(features, np.array(["c", "a", "b"])[y]) == pytest.approx(score)
    assert logme_score(np.c_[features, np.zeros(80)], y) == pytest.approx(score, rel=1e-6)


def test_logme_of_constant_zero_features_is_the_noise_model():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    n, counts = len(y), np.bincount(y)
    # Without usable features the evidence is that of y ~ N(0, 1/beta) at beta = n / |y|^2.
    expected = np.mean(-0.5 * np.log(2 * np.pi * counts / n) - 0.5)
    assert logme_score(np.zeros((n, 3)), y) == pytest.approx(expected)


# --- LEEP ----------------------------------------------------------------------------------

def _leep_by_loops(theta, y):
    n, n_source = theta.shape
    labels = sorted(set(y))
    joint = {(t, z): sum(theta[i, z] for i in range(n) if y[i] == t) / n
             for t in labels for z in range(n_source)}
    marginal = [sum(joint[t, z] for t in labels) for z in range(n_source)]
    total = 0.0
    for i in range(n):
        total += np.log(sum(joint[y[i], z] / marginal[z] * theta[i, z]
                            for z in range(n_source)))
    return total / n


def test_leep_matches_a_loop_implementation():
    rng = np.random.default_rng(0)
    for n, n_source, n_target in [(12, 3, 2), (20, 5, 3), (7, 2, 4)]:
        theta = rng.dirichlet(np.ones(n_source), size=n)
        y = rng.integers(0, n_target, n)
        y[:2] = [0, 1]
        assert leep_score(theta, y) == pytest.approx(_leep_by_loops(theta, y), rel=1e-12)


def test_leep_bounds_and_invariances():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    theta = rng.dirichlet(np.ones(4), size=50)
    score = leep_score(theta, y)
    prior = np.bincount(y) / len(y)
    # A source that says nothing scores the log prior; one that knows the labels scores 0.
    assert leep_score(np.full((50, 4), 0.25), y) == pytest.approx(np.mean(np.log(prior[y])))
    assert leep_score(np.eye(4)[y], y) == pytest.approx(0.0)
    assert np.mean(np.log(prior[y])) <= score <= 0
    order = rng.permutation(50)
    assert leep_score(theta[order], y[order]) == pytest.approx(score)
    assert leep_score(theta[:, ::-1], y) == pytest.approx(score)
    assert leep_score(theta, np.array(["x", "z", "y"])[y]) == pytest.approx(score)


@pytest.mark.parametrize("score", [logme_score, leep_score])
@pytest.mark.parametrize("values, y, message", [
    (np.full((4, 2), 0.5), [0, 0, 0, 0], "at least two distinct labels"),
    (np.full((4, 2), 0.5), [0, 1, 0], "inconsistent numbers of samples"),
    (np.full(4, 0.5), [0, 1, 0, 1], "2D array"),
    (np.array([[np.nan, 1.0], [0.5, 0.5]]), [0, 1], "NaN"),
    (np.full((1, 2), 0.5), [0], "minimum of 2"),
])
def test_bad_metric_inputs(score, values, y, message):
    with pytest.raises(ValueError, match=message):
        score(values, y)


def test_leep_needs_probabilities():
    with pytest.raises(ValueError, match="softmax"):
        leep_score(np.array([[2.0, -1.0], [0.3, 0.7]]), [0, 1])


# --- the classifiers -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def labeler(digit_sdag, digit_experts, tmp_path_factory):
    return ModelLabeler(digit_sdag, cache_dir=tmp_path_factory.mktemp("cache"),
                        verbose=0).fit(ModelHub(digit_experts))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("text-cache")


@pytest.fixture(scope="module")
def fitted(labeler, cache):
    """Every method fitted on the ten digits named in words, k=2, matched by text.

    Reuse is the paper's (Eq. 12-13) so that only the selection differs: with profile reuse every
    selected expert informs every class, and on a four-expert hub almost any selection ends up
    with the same pool of experts.
    """
    models = {cls: cls(DIGIT_NAMES, labeler, k=2, reuse="entropy", cache_dir=cache,
                       random_state=0).fit() for cls in BASELINES}
    models[MLLZeroShotClassifier] = MLLZeroShotClassifier(DIGIT_NAMES, labeler, k=2,
                                                          reuse="entropy", cache_dir=cache).fit()
    return models


@pytest.fixture(scope="module")
def test_set(digit_splits):
    images, labels = digit_splits.test
    return images, np.array(DIGIT_NAMES, dtype=object)[labels]


def test_accuracies_against_mll(fitted, labeler, cache, test_set):
    """Ten digits in words, k=2; experts know 0-4, 5-9, parity, or all ten weakly.

    Measured on the 597 held-out digits (chance 0.10), all with the paper's reuse: MLL 0.916,
    LogME^MLL 0.923, LEEP^MLL 0.928, Random^MLL 0.72-0.93 over random_state 0-4 (mean 0.77),
    with 3, 3, 3 and 4 experts used. On this easy world the binary SDAG tests rank the experts
    as well as CHCO does; a random choice of experts costs about 0.15.
    """
    accuracy = {cls: model.score(*test_set) for cls, model in fitted.items()}
    assert accuracy[MLLZeroShotClassifier] > 0.85
    assert accuracy[LogMEMLLClassifier] > 0.85
    assert accuracy[LEEPMLLClassifier] > 0.85
    random = [RandomMLLClassifier(DIGIT_NAMES, labeler, reuse="entropy", cache_dir=cache,
                                  random_state=seed).fit().score(*test_set) for seed in range(5)]
    assert 0.3 < np.mean(random) < accuracy[MLLZeroShotClassifier] - 0.05


@pytest.mark.parametrize("cls", BASELINES)
def test_fitted_attributes(fitted, labeler, cls):
    clf = fitted[cls]
    assert clf.classes_.tolist() == sorted(DIGIT_NAMES) and clf.coverage_ == 1.0
    assert [clf.matched_nodes_[c][0] for c in DIGIT_NAMES] == DIGIT_SYNSETS
    assert all(len(entries) == 2 for entries in clf.experts_.values())
    used = {name for entries in clf.experts_.values() for name, _, _ in entries}
    assert clf.n_models_used_ == len(used) and used <= set(labeler.hub_.names)
    for entries in clf.experts_.values():
        for name, score, weights in entries:
            assert np.isfinite(score) and weights.shape == (labeler.hub_[name].n_outputs,)
            assert (weights >= 0).all()
    if cls is not RandomMLLClassifier:
        assert clf.reuse_scores_.shape == clf.heads_.shape == (4, 10)
        for entries in clf.experts_.values():
            assert [s for _, s, _ in entries] == sorted((s for _, s, _ in entries), reverse=True)
            assert all(sorted(w.tolist()) == [0] * (len(w) - 1) + [1] for _, _, w in entries)


@pytest.mark.parametrize("cls", [LogMEMLLClassifier, LEEPMLLClassifier])
def test_least_bce_heads_find_the_hidden_label_spaces(fitted, cls):
    """The head with the least BCE on each digit's binary test is the expert's head for it."""
    heads = fitted[cls].heads_
    names = fitted[cls].expert_names_
    np.testing.assert_array_equal(heads[names.index("expert-c")], np.arange(10) % 2)  # parity
    np.testing.assert_array_equal(heads[names.index("expert-d")], np.arange(10))      # all ten
    np.testing.assert_array_equal(heads[names.index("expert-a")][:5], np.arange(5))   # 0-4
    np.testing.assert_array_equal(heads[names.index("expert-b")][5:], np.arange(5))   # 5-9


@pytest.mark.parametrize("cls", BASELINES)
def test_predict_proba_rows(fitted, test_set, cls):
    images, _ = test_set
    proba = fitted[cls].predict_proba(images[:60])
    assert proba.shape == (60, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)
    np.testing.assert_array_equal(fitted[cls].predict(images[:60]),
                                  fitted[cls].classes_[proba.argmax(axis=1)])


def test_binary_tests_are_balanced_and_unrelated(digit_sdag):
    nodes = [digit_sdag.node_index[n] for n in ("seven.n.01", "digit.n.01", "entity.n.01")]
    seven, everything, above_all = _binary_tests(digit_sdag, nodes,
                                                 np.random.RandomState(0))
    image_node = np.repeat(np.arange(digit_sdag.n_nodes), digit_sdag.n_images)
    ids, targets = seven
    assert targets.tolist() == [1] * 30 + [0] * 30
    assert set(image_node[ids[targets == 1]]) == {nodes[0]}
    negatives = ids[targets == 0]
    assert len(set(negatives)) == 30 and nodes[0] not in set(image_node[negatives])
    # Every image lies below "digit": nothing is left to be a negative.
    assert everything is None and above_all is None
    again = _binary_tests(digit_sdag, nodes[:1], np.random.RandomState(0))[0]
    np.testing.assert_array_equal(again[0], ids)


@pytest.mark.parametrize("cls", [LogMEMLLClassifier, LEEPMLLClassifier])
def test_metric_fit_runs_each_expert_once_per_sdag_batch(labeler, cls):
    counted = ModelHub([CountingExpert(e) for e in labeler.hub_])
    twin = clone(labeler)
    twin.hub_ = counted
    clf = cls(DIGIT_NAMES, twin, nodes=DIGIT_SYNSETS, batch_size=128, random_state=0).fit()
    needed = np.unique(np.concatenate([
        ids for ids, _ in _binary_tests(labeler.sdag, [labeler.sdag.node_index[n]
                                                       for n in DIGIT_SYNSETS],
                                        np.random.RandomState(0))]))
    # 300 SDAG images in batches of at most 128: three batches, only tested images run.
    assert all(e.n_calls == 3 and e.n_images == len(needed) for e in counted)
    for e in counted:
        e.n_calls = 0
    clf.predict_proba(np.zeros((40, 8, 8), np.uint8))
    used = {name for entries in clf.experts_.values() for name, _, _ in entries}
    assert {e.name: e.n_calls for e in counted} == {e.name: int(e.name in used)
                                                    for e in counted}


@pytest.mark.parametrize("cls", BASELINES)
def test_deterministic_given_random_state(fitted, labeler, test_set, cls):
    again = cls(DIGIT_NAMES, labeler, nodes=DIGIT_SYNSETS, reuse="entropy", random_state=0).fit()
    assert {c: [n for n, _, _ in e] for c, e in again.experts_.items()} == {
        c: [n for n, _, _ in e] for c, e in fitted[cls].experts_.items()}
    np.testing.assert_allclose(again.predict_proba(test_set[0][:30]),
                               fitted[cls].predict_proba(test_set[0][:30]))


def test_random_draws_depend_on_random_state(labeler):
    draws = {str(RandomMLLClassifier(DIGIT_NAMES, labeler, k=1, nodes=DIGIT_SYNSETS,
                                     random_state=seed).fit().experts_) for seed in range(3)}
    assert len(draws) > 1
    # Only experts with a finite CHCO loss at most beta are drawn.
    clf = RandomMLLClassifier(DIGIT_NAMES, labeler, k=4, nodes=DIGIT_SYNSETS, random_state=0)
    clf.fit()
    for j, c in enumerate(DIGIT_NAMES):
        assert sorted(n for n, _, _ in clf.experts_[c]) == sorted(
            np.array(clf.expert_names_)[np.isfinite(clf.reuse_losses_[:, j])])
    with pytest.raises(ValueError, match="no expert passes the selection"):
        RandomMLLClassifier(DIGIT_NAMES, labeler, beta=1e-9, nodes=DIGIT_SYNSETS).fit()


@pytest.mark.parametrize("cls", BASELINES)
def test_sklearn_protocols(fitted, test_set, cls):
    clf = fitted[cls]
    params = clone(clf).get_params()
    assert params["random_state"] == 0 and hasattr(params["labeler"], "labels_")
    assert ("beta" in params) == (cls is RandomMLLClassifier)
    one = clone(clf).set_params(k=1, nodes=DIGIT_SYNSETS).fit()
    assert all(len(e) == 1 for e in one.experts_.values())
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(test_set[0][:20]),
                               clf.predict_proba(test_set[0][:20]))
