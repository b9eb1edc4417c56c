"""Cost-aware selection: a budget per image and a loss tolerance that prefers cheap experts."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler
from skmll.hub import TorchExpert
from skmll.selection import select_predictors, select_within_budget

from ..conftest import DIGIT_NAMES, DIGIT_SYNSETS, train_mlp


@pytest.mark.parametrize("seed", range(5))
def test_without_budget_or_tolerance_selection_is_the_top_k(seed):
    rng = np.random.default_rng(seed)
    losses = np.round(rng.random((9, 6)), 1)           # rounded: many ties
    losses[rng.random(losses.shape) < 0.2] = np.inf
    costs = rng.random(9)
    for k in (1, 2, 4):
        got = select_within_budget(losses, k, costs, beta=0.7)
        want = select_predictors(losses, k, beta=0.7)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("seed", range(8))
def test_selection_never_exceeds_the_budget(seed):
    rng = np.random.default_rng(100 + seed)
    losses = rng.random((12, 7))
    costs = rng.choice([0.0, 0.5, 1.0, 3.0, 7.0], size=12)
    for budget in (0.0, 0.4, 1.0, 2.5, 6.0, 20.0):
        picks = select_within_budget(losses, 3, costs, max_cost=budget, tolerance=0.1)
        used = np.unique(np.concatenate(picks))
        assert costs[used].sum() <= budget + 1e-12
        assert all(len(p) <= 3 and len(set(p)) == len(p) for p in picks)
    # an ample budget serves every class k times
    picks = select_within_budget(losses, 3, costs, max_cost=costs.sum())
    assert all(len(p) == 3 for p in picks)


def test_unknown_cost_of_a_candidate_is_an_error_naming_it():
    losses = np.array([[0.1, 0.2], [0.3, np.inf], [np.inf, np.inf]])
    costs = np.array([1.0, np.nan, np.nan])
    with pytest.raises(ValueError, match=r"unknown: \['second'\]"):
        select_within_budget(losses, 1, costs, max_cost=5.0, names=["first", "second", "third"])
    # the third can serve nothing: its unknown cost does not matter
    assert [p.tolist() for p in select_within_budget(losses[[0, 2]], 1, costs[[0, 2]],
                                                      max_cost=5.0)] == [[0], [0]]


# --- the classifier, with two real experts of different widths trained on the digits -------

def _digit_mlp(splits, hidden, name):
    images, labels = splits.train
    net = train_mlp(images, labels, 10, seed=hidden, hidden=hidden)
    return TorchExpert(net, name=name, input_size=(8, 8), channels=1)


@pytest.fixture(scope="module")
def two_widths(digit_splits, digit_sdag, tmp_path_factory):
    experts = [_digit_mlp(digit_splits, 512, "wide"), _digit_mlp(digit_splits, 24, "narrow")]
    return ModelLabeler(digit_sdag, cache_dir=tmp_path_factory.mktemp("cost-cache"),
                        verbose=0).fit(ModelHub(experts))


def _clf(labeler, **params):
    return MLLZeroShotClassifier(DIGIT_NAMES, labeler, k=1, nodes=DIGIT_SYNSETS,
                                 cache_dir=False, **params)


def _served_by(clf):
    return {name for c in clf.covered_classes_ for name, _, _ in clf.experts_[c]}


def test_costs_come_from_the_labels(two_widths):
    wide, narrow = two_widths.costs_["wide"], two_widths.costs_["narrow"]
    assert wide.gflops == pytest.approx(2 * (64 * 512 + 512 * 10) / 1e9)
    assert narrow.gflops == pytest.approx(2 * (64 * 24 + 24 * 10) / 1e9)


def test_defaults_select_exactly_as_before(two_widths):
    clf = _clf(two_widths).fit()
    losses = clf.reuse_losses_
    want = select_predictors(losses, 1)
    assert [[clf.expert_names_.index(n) for n, _, _ in clf.experts_[c]] for c in DIGIT_NAMES] \
        == [w.tolist() for w in want]
    used = _served_by(clf)
    assert clf.cost_per_image_["gflops"] == pytest.approx(
        sum(two_widths.costs_[n].gflops for n in used))


def test_tolerance_prefers_the_cheaper_of_two_near_equal_experts(two_widths, digit_splits):
    best = _clf(two_widths).fit()
    losses = best.reuse_losses_
    gap = float(np.max(losses[1] - losses.min(axis=0)))   # narrow's worst shortfall
    cheap = _clf(two_widths, cost_tolerance=gap + 1e-9).fit()
    assert _served_by(best) == {"wide", "narrow"} or _served_by(best) == {"wide"}
    assert _served_by(cheap) == {"narrow"}
    assert cheap.cost_per_image_["gflops"] < best.cost_per_image_["gflops"]
    images, labels = digit_splits.test
    truth = np.array(DIGIT_NAMES, dtype=object)[labels]
    assert cheap.score(images, truth) > 0.8          # the narrow expert is nearly as good


def test_budget_between_the_two_costs_runs_only_the_cheap_expert(two_widths):
    wide, narrow = (two_widths.costs_[n].gflops for n in ("wide", "narrow"))
    clf = _clf(two_widths, max_cost=(wide + narrow) / 2).fit()
    assert _served_by(clf) == {"narrow"} and clf.coverage_ == 1.0
    assert clf.cost_per_image_["gflops"] <= clf.max_cost
    assert "GFLOPs" in clf.explain()


def test_a_budget_below_every_expert_leaves_the_classes_uncovered_and_says_why(two_widths):
    narrow = two_widths.costs_["narrow"].gflops
    with pytest.raises(ValueError, match="fits within max_cost"):
        _clf(two_widths, max_cost=narrow / 2).fit()
    ms = two_widths.costs_["narrow"].ms_per_image
    clf = _clf(two_widths, max_cost=ms / 2, cost_unit="ms", on_uncovered="drop")
    with pytest.raises(ValueError, match="no class is covered"):
        clf.fit()
    assert set(clf.over_budget_reasons_) == set(DIGIT_NAMES)


def test_budget_over_experts_of_unknown_cost_is_an_error_naming_them(two_widths):
    unknown = ModelLabeler(two_widths.sdag, cache_dir=False, verbose=0)
    for attr in ("hub_", "labels_", "node_statistics_", "delta_", "fingerprints_", "sdag_key_"):
        setattr(unknown, attr, getattr(two_widths, attr))
    unknown.costs_ = {**two_widths.costs_, "wide": None}
    with pytest.raises(ValueError, match=r"unknown: \['wide'\]"):
        _clf(unknown, max_cost=1.0).fit()
    clf = _clf(unknown).fit()                 # no budget: costs are not needed
    assert clf.cost_per_image_["gflops"] is None or _served_by(clf) == {"narrow"}


def test_grid_search_over_the_budget(two_widths, digit_splits):
    narrow = two_widths.costs_["narrow"].gflops
    images, labels = digit_splits.test
    truth = np.array(DIGIT_NAMES, dtype=object)[labels]
    search = GridSearchCV(_clf(two_widths), {"max_cost": [narrow * 1.01, None]}, cv=2)
    search.fit(images, truth)
    costs = search.cv_results_["params"]
    assert [p["max_cost"] for p in costs] == [narrow * 1.01, None]
    assert search.cv_results_["mean_test_score"].min() > 0.8


@pytest.mark.parametrize("params", [{"max_cost": -1.0}, {"cost_unit": "flops"},
                                    {"cost_tolerance": -0.1}, {"max_cost": "cheap"}])
def test_bad_cost_parameters_are_named(two_widths, params):
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        _clf(two_widths, **params).fit()
