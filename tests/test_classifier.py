"""MLLZeroShotClassifier end to end on real experts with hidden label spaces."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import as_image_batch, run_expert
from skmll.selection import match_task, select_experts, select_predictors
from skmll.selection._screen import warn_by_name

from .conftest import DIGIT_NAMES, CountingExpert


@pytest.fixture(scope="module")
def labeler(digit_sdag, digit_experts, tmp_path_factory):
    return ModelLabeler(digit_sdag, delta=0.5, cache_dir=tmp_path_factory.mktemp("cache"),
                        verbose=0).fit(ModelHub(digit_experts))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("text-cache")


@pytest.fixture(scope="module")
def digit_clf(labeler, cache):
    return MLLZeroShotClassifier(DIGIT_NAMES, labeler, k=2, cache_dir=cache).fit()


def test_end_to_end_zero_shot_accuracy(digit_clf, digit_splits):
    """Ten digits named in words; experts know only 0-4, 5-9, parity, or all ten weakly.

    Measured: accuracy 0.938 on the 597 held-out test digits (chance 0.10) with the defaults
    (profile reuse, probability labels), 0.916 with the paper's entropy reuse and 0.911 with
    the paper's reuse and logit labels; all ten classes matched to their WordNet number nodes,
    coverage 1.0, three experts used.
    """
    images, labels = digit_splits.test
    accuracy = digit_clf.score(images, np.array(DIGIT_NAMES, dtype=object)[labels])
    assert digit_clf.coverage_ == 1.0
    assert {c: m[0] for c, m in digit_clf.matched_nodes_.items()} == {
        "zero": "zero.n.02", "one": "one.n.01", "two": "two.n.01", "three": "three.n.01",
        "four": "four.n.01", "five": "five.n.01", "six": "six.n.01", "seven": "seven.n.01",
        "eight": "eight.n.01", "nine": "nine.n.01"}
    assert accuracy > 0.85


def test_fitted_attributes_explain_the_decisions(digit_clf):
    assert digit_clf.classes_.tolist() == sorted(DIGIT_NAMES)    # scikit-learn's contract
    assert list(digit_clf.matched_nodes_) == DIGIT_NAMES          # the user's order is kept
    assert digit_clf.covered_classes_ == DIGIT_NAMES
    served = {c: [name for name, _, _ in e] for c, e in digit_clf.experts_.items()}
    # The parity expert cannot tell ten digits apart: its mean loss is the worst and it is never
    # the first choice. Experts that never saw a digit range do not serve it first.
    parity = digit_clf.expert_names_.index("expert-c")
    assert digit_clf.reuse_losses_.mean(axis=1).argmax() == parity
    assert all(served[c][0] != "expert-c" for c in DIGIT_NAMES)
    assert all(served[c][0] != "expert-b" for c in DIGIT_NAMES[:5])
    assert all(served[c][0] != "expert-a" for c in DIGIT_NAMES[5:])
    assert all(1 <= len(v) <= 2 for v in served.values())
    for entries in digit_clf.experts_.values():
        for _, loss, weights in entries:
            assert np.isfinite(loss) and (weights >= 0).all()
    assert digit_clf.reuse_losses_.shape == (4, 10)
    assert 2 <= digit_clf.n_models_used_ <= 4
    text = digit_clf.explain()
    assert "'seven' -> seven.n.01" in text and served["seven"][0] in text
    positions = [text.index(f"'{c}' ->") for c in DIGIT_NAMES]
    assert positions == sorted(positions)                         # explain reads in user order


def test_predict_proba_rows_and_order(digit_clf, digit_splits):
    images, _ = digit_splits.test
    proba = digit_clf.predict_proba(images[:50])
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)
    np.testing.assert_array_equal(digit_clf.predict(images[:50]),
                                  digit_clf.classes_[proba.argmax(axis=1)])


def test_each_expert_runs_once_per_batch(labeler, digit_splits, cache):
    counted = ModelHub([CountingExpert(e) for e in labeler.hub_])
    twin = clone(labeler)
    twin.hub_ = counted
    clf = MLLZeroShotClassifier(DIGIT_NAMES, twin, k=3, cache_dir=cache).fit()
    images = digit_splits.test[0][:40]
    clf.predict_proba(images)
    used = {name for entries in clf.experts_.values() for name, _, _ in entries}
    calls = {e.name: e.n_calls for e in counted}
    assert all(calls[name] == 1 for name in used)
    assert all(calls[name] == 0 for name in calls if name not in used)


def test_image_input_forms_agree(digit_clf, digit_splits, tmp_path):
    from PIL import Image

    images = digit_splits.test[0][:6]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    as_array = digit_clf.predict_proba(images)
    np.testing.assert_allclose(digit_clf.predict_proba(images[..., None]), as_array)
    np.testing.assert_allclose(digit_clf.predict_proba(images.astype(np.float32) / 255),
                               as_array, atol=1e-6)
    np.testing.assert_allclose(digit_clf.predict_proba([Image.fromarray(i) for i in images]),
                               as_array, atol=1e-6)
    np.testing.assert_allclose(digit_clf.predict_proba([str(p) for p in paths]), as_array,
                               atol=1e-6)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((3, 8)), ValueError, r"shape \(n, H, W\)"),
    (np.zeros((3, 8, 8, 2), np.uint8), ValueError, "channels"),
    (np.full((2, 8, 8), np.nan, np.float32), ValueError, "NaN"),
    (np.full((2, 8, 8), 7.0, np.float32), ValueError, r"\[0, 1\]"),
    (np.zeros((0, 8, 8), np.uint8), ValueError, "empty"),
    (np.zeros((2, 8, 8), np.complex64), TypeError, "dtype"),
    ([], ValueError, "empty"),
])
def test_bad_images_are_named(digit_clf, bad, error, message):
    with pytest.raises(error, match=message):
        digit_clf.predict(bad)


@pytest.mark.parametrize("classes, error, message", [
    ([], ValueError, "empty"),
    (["one", "One "], ValueError, "duplicate"),
    (["one", 2], TypeError, "must be str"),
    (["one", "  "], ValueError, "empty"),
    ("one", TypeError, "'classes' parameter"),
    (np.array(["one", "one"]), ValueError, "duplicate"),
])
def test_bad_class_names(labeler, classes, error, message):
    with pytest.raises(error, match=message):
        MLLZeroShotClassifier(classes, labeler).fit()


@pytest.mark.parametrize("params, message", [
    ({"k": 0}, "'k' parameter"), ({"k": 1.5}, "'k' parameter"), ({"beta": "low"}, "'beta'"),
    ({"beta": -1.0}, "'beta'"), ({"combination": "sum"}, "'combination'"),
    ({"label_statistic": "max"}, "'label_statistic'"), ({"reuse": "vote"}, "'reuse'"),
    ({"batch_size": 0}, "'batch_size'"), ({"min_similarity": "high"}, "'min_similarity'"),
    ({"min_similarity": float("nan")}, "'min_similarity'"), ({"verbose": -1}, "'verbose'"),
    ({"cache_dir": True}, "'cache_dir'"), ({"general_model": object()}, "'general_model'"),
    ({"class_template": "{0} {1}"}, "class_template must hold exactly one"),
    ({"class_template": "{name}"}, "class_template must hold exactly one"),
    ({"class_template": "no field"}, "class_template must hold exactly one"),
])
def test_bad_parameters(labeler, params, message):
    """Each bad value fails at fit with a message naming the parameter (nothing reaches predict)."""
    with pytest.raises(ValueError, match=message):
        MLLZeroShotClassifier(["one", "two"], labeler, **params).fit()


@pytest.mark.parametrize("classes, message", [
    (["one", "\u200b"], "invisible characters"),
    (["one", "t\u200bwo"], "U\\+200B"),
    (["one", "two\n"], "U\\+000A"),
    (["one", "Two", "two  "], "duplicate class names: 'two  '"),
])
def test_class_names_that_print_alike_are_refused(labeler, classes, message):
    with pytest.raises(ValueError, match=message):
        MLLZeroShotClassifier(classes, labeler).fit()


def test_many_uncovered_names_give_a_short_message(labeler, cache):
    """10,000 unservable names: the message counts them instead of quoting every one."""
    classes = ["three"] + [f"gizmo{i}" for i in range(10_000)]
    def orthogonal(texts):   # every node text its own axis, every gizmo the axis 0
        return np.eye(64)[[0 if "gizmo" in t else 1 + i for i, t in enumerate(texts)]]
    with pytest.raises(ValueError) as caught:
        MLLZeroShotClassifier(classes, labeler, nodes=["three.n.01"] + [None] * 10_000,
                              text_encoder=orthogonal, min_similarity=0.5,
                              cache_dir=False).fit()
    message = str(caught.value)
    assert "10000 of 10001 classes" in message and "and 9990 more" in message
    assert len(message) < 1000


def test_two_classes_cannot_share_a_node(labeler, cache):
    with pytest.raises(ValueError, match="cannot share one SDAG node.*'two.n.01'"):
        MLLZeroShotClassifier(["2", "II"], labeler, nodes=["two.n.01", "two.n.01"],
                              cache_dir=cache).fit()


def test_unfitted_labeler_is_refused(digit_sdag):
    with pytest.raises(Exception, match="labeler is not fitted"):
        MLLZeroShotClassifier(["one"], ModelLabeler(digit_sdag)).fit()


def test_uncovered_classes_are_named_or_dropped(labeler, cache):
    classes = ["three", "seven", "volcano"]
    with pytest.raises(ValueError, match="no matching SDAG node: 'volcano'"):
        MLLZeroShotClassifier(classes, labeler, cache_dir=cache).fit()
    clf = MLLZeroShotClassifier(classes, labeler, on_uncovered="drop", cache_dir=cache).fit()
    assert clf.classes_.tolist() == ["seven", "three"]
    assert clf.coverage_ == pytest.approx(2 / 3)
    # beta below every loss leaves nothing served.
    with pytest.raises(ValueError, match="no expert passes the selection: 'three', 'seven'"):
        MLLZeroShotClassifier(["three", "seven"], labeler, beta=1e-9, cache_dir=cache).fit()


def test_explicit_nodes_bypass_matching(labeler, digit_splits, cache):
    clf = MLLZeroShotClassifier(["a digit that looks like a swan", "a digit like a snowman"],
                                labeler, nodes=["two.n.01", "eight.n.01"], cache_dir=cache).fit()
    images, labels = digit_splits.test
    keep = np.isin(labels, [2, 8])
    predicted = clf.predict(images[keep])
    truth = np.where(labels[keep] == 2, "a digit that looks like a swan", "a digit like a snowman")
    assert (predicted == truth).mean() > 0.9
    with pytest.raises(ValueError, match="not in the SDAG"):
        MLLZeroShotClassifier(["x"], labeler, nodes=["nope.n.01"]).fit()


def test_profile_and_entropy_reuse(labeler, digit_clf, digit_splits, cache):
    """Both reuse rules classify well; profile reuse is the experts' naive-Bayes posterior."""
    images, labels = digit_splits.test
    y = np.array(DIGIT_NAMES, dtype=object)[labels]
    paper = MLLZeroShotClassifier(DIGIT_NAMES, labeler, reuse="entropy", cache_dir=cache).fit()
    for c in DIGIT_NAMES:   # reuse does not touch the selection
        assert [n for n, _, _ in paper.experts_[c]] == [n for n, _, _ in digit_clf.experts_[c]]
    assert paper.score(images, y) > 0.85 and digit_clf.score(images, y) > 0.85
    # The posterior from first principles: every serving expert's softmax output scored against
    # its label's mean output on each class node (smoothed), summed over experts, normalised.
    sdag = labeler.sdag
    rows = [sdag.node_index[digit_clf.matched_nodes_[c][0]] for c in digit_clf.classes_]
    log_likelihood = 0.0
    for name in digit_clf.profiles_:
        mu = labeler.labels_[name].probabilities[rows]
        np.testing.assert_allclose(digit_clf.profiles_[name][np.argsort(DIGIT_NAMES)], mu)
        mu = 0.99 * mu / mu.sum(axis=1, keepdims=True) + 0.01 / mu.shape[1]
        logits = run_expert(labeler.hub_[name], as_image_batch(images[:40]))
        q = np.exp(logits - logits.max(axis=1, keepdims=True))
        log_likelihood = log_likelihood + (q / q.sum(axis=1, keepdims=True)) @ np.log(mu).T
    expected = np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
    np.testing.assert_allclose(digit_clf.predict_proba(images[:40]),
                               expected / expected.sum(axis=1, keepdims=True), rtol=1e-5,
                               atol=1e-12)


def test_heu_and_probability_variants_run(labeler, digit_splits, cache):
    images, labels = digit_splits.test
    y = np.array(DIGIT_NAMES, dtype=object)[labels]
    for params in ({"combination": "heu"}, {"label_statistic": "probability"}):
        clf = MLLZeroShotClassifier(DIGIT_NAMES, labeler, cache_dir=cache, **params).fit()
        assert clf.score(images, y) > 0.6
        if params.get("combination") == "heu":
            for entries in clf.experts_.values():
                assert all((w > 0).sum() == 1 for _, _, w in entries)


def test_sklearn_protocols(digit_clf, labeler, digit_splits, cache):
    images, labels = digit_splits.test
    y = np.array(DIGIT_NAMES, dtype=object)[labels]
    twin = clone(digit_clf)
    assert twin.get_params()["k"] == 2 and not hasattr(twin, "classes_")
    assert hasattr(twin.labeler, "labels_")                      # clone keeps the labels
    twin.set_params(k=1).fit()
    assert all(len(v) <= 1 for v in twin.experts_.values())

    restored = pickle.loads(pickle.dumps(digit_clf))
    np.testing.assert_allclose(restored.predict_proba(images[:20]),
                               digit_clf.predict_proba(images[:20]))

    pipe = Pipeline([("identity", FunctionTransformer()), ("mll", clone(digit_clf))])
    assert pipe.fit(images[:10], y[:10]).score(images, y) > 0.85

    scores = cross_val_score(clone(digit_clf), images, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8

    search = GridSearchCV(clone(digit_clf), {"k": [1, 2, 3]}, cv=2).fit(images, y)
    assert search.best_params_["k"] in (1, 2, 3)
    assert search.best_score_ > 0.85


def test_fit_leaves_the_labeler_unchanged(labeler, cache):
    before = {name: label.scores.copy() for name, label in labeler.labels_.items()}
    params = labeler.get_params()
    MLLZeroShotClassifier(DIGIT_NAMES, labeler, cache_dir=cache).fit()
    assert labeler.get_params() == params
    for name, scores in before.items():
        np.testing.assert_array_equal(labeler.labels_[name].scores, scores)


class _Placed:
    """An expert (bright against dark) that runs where it was last moved, and notes it."""

    n_outputs, fingerprint = 2, "placed-brightness"
    runs = []   # (name, device) of every run, shared by copies

    def __init__(self, name):
        self.name, self.device = name, "where-built"

    def to(self, device):
        self.device = str(device)
        return self

    def logits(self, images):
        _Placed.runs.append((self.name, self.device))
        brightness = np.asarray(images, dtype=float).mean(axis=(1, 2, 3))
        return np.stack([1 - brightness, brightness], axis=1) * 4


def test_device_moves_copies_never_the_labelers_experts():
    """fit with a device leaves the labeler's experts where they are: a classifier sharing the
    labeler (a clone) still runs them there, and the moved copy runs on the device."""
    dark, bright = np.zeros((3, 6, 6), np.uint8), np.full((3, 6, 6), 250, np.uint8)
    sdag = SemanticDAG(["dusk", "dawn"], data={"dusk": dark, "dawn": bright})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([_Placed("lamp")]))
    moved = MLLZeroShotClassifier(["dawn", "dusk"], labeler, nodes=["dawn", "dusk"],
                                  cache_dir=False, device="cpu")
    staying = clone(moved).set_params(device=None)
    moved.fit()
    staying.fit()
    assert staying.labeler.hub_["lamp"] is labeler.hub_["lamp"]
    assert labeler.hub_["lamp"].device == "where-built"
    _Placed.runs.clear()
    images = np.stack([bright[0], dark[0]])
    assert moved.predict(images).tolist() == staying.predict(images).tolist() == ["dawn", "dusk"]
    assert _Placed.runs == [("lamp", "cpu"), ("lamp", "where-built")]


def test_grid_search_over_labeler_delta_remixes(digit_clf, digit_splits, cache):
    """A clone given another delta is re-mixed by the classifier, never in the labeler."""
    images, labels = digit_splits.test
    y = np.array(DIGIT_NAMES, dtype=object)[labels]
    search = GridSearchCV(clone(digit_clf), {"labeler__delta": [0.0, 1.0]}, cv=2).fit(images, y)
    best = search.best_estimator_
    delta = search.best_params_["labeler__delta"]
    assert best.labeler.delta == delta and best.labeler.delta_ == 0.5   # labeler left alone
    assert digit_clf.labeler.delta_ == 0.5
    # The profiles come from labels mixed with the searched delta, as a labeler refit gives.
    refit = clone(digit_clf.labeler).set_params(delta=delta).update_mixing()
    for name, profile in best.profiles_.items():
        rows = [refit.sdag.node_index[best.matched_nodes_[c][0]] for c in best.covered_classes_]
        np.testing.assert_allclose(profile, refit.labels_[name].probabilities[rows])


class _LabelOnlyExpert:
    """An expert known through its label alone: fit must never run it."""

    def __init__(self, name, n_outputs):
        self.name, self.n_outputs, self.fingerprint = name, n_outputs, name

    def logits(self, images):
        raise AssertionError("fit ran an expert")


def _synthetic_labeler(n_experts, n_nodes, seed=0):
    """A labeler over many experts whose labels are noise plus a few informative heads."""
    from skmll import SemanticDAG
    from skmll.labelling import ModelLabel, sdag_key

    rng = np.random.default_rng(seed)
    nodes = [f"class{i}.n.01" for i in range(n_nodes)]
    sdag = SemanticDAG(nodes, data={n: np.zeros((1, 4, 4), np.uint8) for n in nodes})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0)
    experts = [_LabelOnlyExpert(f"m{i}", int(rng.integers(3, 60))) for i in range(n_experts)]
    labels = {}
    for e in experts:
        scores = rng.normal(0, 1, (n_nodes, e.n_outputs))
        for head in rng.choice(e.n_outputs, size=2, replace=False):
            scores[rng.choice(n_nodes, size=2, replace=False), head] += rng.uniform(0, 6)
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        labels[e.name] = ModelLabel(e.name, tuple(nodes), scores, p / p.sum(axis=1, keepdims=True),
                                    sdag_key=sdag_key(sdag), delta=labeler.delta)
    labeler.hub_, labeler.labels_ = ModelHub(experts), labels
    labeler.delta_, labeler.node_statistics_ = labeler.delta, {}
    labeler.sdag_key_, labeler.fingerprints_ = sdag_key(sdag), {}
    return labeler, nodes


def test_bound_pruning_selects_as_solving_every_expert():
    """On a large hub most experts are ruled out by their bounds; the selection is unchanged."""
    labeler, nodes = _synthetic_labeler(n_experts=120, n_nodes=6)
    classes = [f"c{i}" for i in range(6)]
    pruned = MLLZeroShotClassifier(classes, labeler, k=2, nodes=nodes).fit()
    # A pick of its own makes select_experts solve every expert (none is screened out).
    full = select_experts(match_task(classes, labeler.sdag, nodes=nodes), labeler.labels_, k=2,
                          pick=select_predictors)
    for c in classes:
        assert [n for n, _, _ in pruned.experts_[c]] == [n for n, _, _ in full.experts[c]]
        np.testing.assert_allclose([l for _, l, _ in pruned.experts_[c]],
                                   [l for _, l, _ in full.experts[c]], rtol=1e-6)
    never_solved = np.isinf(pruned.reuse_losses_).all(axis=1)
    assert never_solved.mean() > 0.5 and np.isfinite(full.losses).all()


def test_solver_warnings_name_the_experts(digit_clf):
    """A tight solve that stops early is reported with expert names, not solver indices."""
    from sklearn.exceptions import ConvergenceWarning

    from skmll.selection import chco_many

    labels = [digit_clf.labeler.labels_[n] for n in digit_clf.expert_names_]
    matrices = [np.asarray(label.scores[:5], dtype=float).T for label in labels]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chco_many(matrices[2:], max_iter=1, tol=0)
    with pytest.warns(ConvergenceWarning, match=r"experts \['expert-c', 'expert-d'\]"):
        warn_by_name(caught, np.array([2, 3]), digit_clf.expert_names_)

