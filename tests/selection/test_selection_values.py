"""Selection as values: match_task gives a TaskMatch, select_experts a Selection, and a
selection method of one's own plugs into the estimator through its one hook."""

import numpy as np
import pytest
from scipy.special import softmax

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll._classifier import _BaseMLLClassifier
from skmll.hub import as_image_batch, run_expert
from skmll.reuse import REUSE_RULES, ReuseRule, log_profiles, profile_posterior
from skmll.selection import (Selection, TaskMatch, match_task, select_experts,
                             select_predictors)

SHAPES = ["disc", "ring", "bar", "cross"]


def _shape_images(kind, n, seed):
    """n noisy 12x12 drawings of one shape."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:12, :12] - 5.5
    radius = np.hypot(x, y)
    mask = {"disc": radius < 4, "ring": (radius > 3) & (radius < 5),
            "bar": np.abs(y) < 1.5, "cross": (np.abs(y) < 1.5) | (np.abs(x) < 1.5)}[kind]
    return np.clip(mask * 200 + rng.normal(0, 25, (n, 12, 12)), 0, 255).astype(np.uint8)


class Template:
    """A real expert: its heads score the correlation with one drawn template each."""

    def __init__(self, name, shapes, sharpness):
        self.name, self.n_outputs = name, len(shapes)
        self.templates = np.stack([_shape_images(s, 1, 99)[0] / 255.0 for s in shapes])
        self.sharpness = sharpness

    def logits(self, images):
        gray = np.asarray(images, dtype=np.float64).mean(axis=-1).reshape(len(images), -1)
        return self.sharpness * gray @ self.templates.reshape(self.n_outputs, -1).T / 144


@pytest.fixture(scope="module")
def shape_labeler():
    sdag = SemanticDAG(["shape", *SHAPES], edges=[("shape", s) for s in SHAPES],
                       texts={s: f"Name: {s}" for s in SHAPES},
                       data={s: _shape_images(s, 6, i) for i, s in enumerate(SHAPES)})
    hub = ModelHub([Template("round", ["disc", "ring"], 6.0),
                    Template("straight", ["bar", "cross"], 6.0),
                    Template("all-blurry", SHAPES, 1.0)])
    return ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)


def test_match_task_gives_nodes_names_and_reasons(shape_labeler):
    sdag = shape_labeler.sdag
    task = match_task(["ring", "plank", "disc"], sdag, nodes=[None, "bar", "disc"],
                      text_encoder=lambda texts: np.array(
                          [[t.count("r"), t.count("i") + 0.5, t.count("n")] for t in texts],
                          dtype=float),
                      cache_dir=False)
    assert isinstance(task, TaskMatch)
    assert task.node_ids == ["ring", "bar", "disc"]
    assert task.nodes.tolist() == [sdag.node_index[n] for n in task.node_ids]
    assert task.matched.tolist() == [0, 1, 2]
    assert task.matched_nodes["plank"] == ("bar", 1.0)
    with pytest.raises(ValueError, match="class_template must hold exactly one"):
        match_task(["ring"], sdag, nodes=["ring"], class_template="{} or {}")
    with pytest.raises(ValueError, match="two classes cannot share one SDAG node"):
        match_task(["a", "b"], sdag, nodes=["ring", "ring"])


def test_a_class_above_another_is_unmatched_with_its_reason(shape_labeler):
    """"shape" has no images of its own and lies above "disc": its label is disc's images."""
    def encoder(texts):
        return np.array([[("shape" in t) + 0.1, ("disc" in t) + 0.1] for t in texts])

    task = match_task(["shape", "disc"], shape_labeler.sdag, text_encoder=encoder,
                      name_bonus=0, cache_dir=False)
    assert task.node_ids == [None, "disc"]
    assert "no images of its own and lies above 'disc'" in task.unmatched_reasons["shape"]


def test_select_experts_is_what_the_classifier_serves_with(shape_labeler):
    task = match_task(SHAPES, shape_labeler.sdag, nodes=SHAPES)
    selection = select_experts(task, shape_labeler.labels_, k=1)
    assert isinstance(selection, Selection)
    assert [selection.experts[s][0][0] for s in SHAPES] == ["round", "round", "straight",
                                                            "straight"]
    assert selection.used == ["round", "straight"]
    assert selection.losses.shape == (3, 4) and selection.over_budget_reasons == {}
    clf = MLLZeroShotClassifier(SHAPES, shape_labeler, k=1, nodes=SHAPES,
                                cache_dir=False).fit()
    assert clf.n_models_used_ == len(selection.used)
    np.testing.assert_array_equal(clf.reuse_losses_, selection.losses)
    for s in SHAPES:
        (name, loss, weights), = clf.experts_[s]
        assert (name, loss) == selection.experts[s][0][:2]
        np.testing.assert_array_equal(weights, selection.experts[s][0][2])


def test_a_pick_of_ones_own_gets_every_loss_and_the_beta_default(shape_labeler):
    task = match_task(SHAPES, shape_labeler.sdag, nodes=SHAPES)
    seen = {}

    def worst(losses, k, beta):
        seen.update(k=k, beta=beta, finite=np.isfinite(losses).all())
        return [np.argsort(column)[::-1][:k] for column in losses.T]

    selection = select_experts(task, shape_labeler.labels_, k=1, pick=worst)
    assert seen == {"k": 1, "beta": np.inf, "finite": True}
    best = select_predictors(selection.losses, 1)
    for j, s in enumerate(SHAPES):
        chosen = selection.names.index(selection.experts[s][0][0])
        assert selection.losses[chosen, j] == selection.losses[:, j].max()
        assert chosen != best[j][0]


class WorstFirstClassifier(_BaseMLLClassifier):
    """A selection method of one's own: a sibling, through the one hook."""

    _parameter_constraints = {**_BaseMLLClassifier._parameter_constraints,
                              "n_worst": [int]}

    def __init__(self, classes, labeler, *, k=1, nodes=None, cache_dir=None, n_worst=1):
        super().__init__(classes, labeler, k=k, nodes=nodes, cache_dir=cache_dir)
        self.n_worst = n_worst

    def _select(self, task, labels):
        return select_experts(task, labels, k=self.k, pick=lambda losses, k, beta: [
            np.argsort(column)[::-1][:self.n_worst] for column in losses.T])


def test_a_sibling_selection_method_fits_predicts_and_validates(shape_labeler):
    clf = WorstFirstClassifier(SHAPES, shape_labeler, nodes=SHAPES, cache_dir=False).fit()
    assert [clf.experts_[s][0][0] for s in SHAPES] == ["straight", "straight", "round",
                                                       "round"]
    images = np.concatenate([_shape_images(s, 2, 50 + i) for i, s in enumerate(SHAPES)])
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    with pytest.raises(ValueError, match="'n_worst' parameter"):
        WorstFirstClassifier(SHAPES, shape_labeler, nodes=SHAPES, n_worst="two").fit()


def test_a_registered_reuse_rule_reaches_the_estimator(shape_labeler, monkeypatch):
    """A new rule is one entry in REUSE_RULES: the parameter accepts it, predict uses it."""
    first_only = ReuseRule("the first expert's profile posterior alone",
                           REUSE_RULES["profile"].reader,
                           lambda outputs, readers: profile_posterior(outputs[:1], readers[:1]))
    monkeypatch.setitem(REUSE_RULES, "first-only", first_only)
    clf = MLLZeroShotClassifier(SHAPES, shape_labeler, k=1, nodes=SHAPES, reuse="first-only",
                                cache_dir=False).fit()
    images = np.concatenate([_shape_images(s, 2, 70 + i) for i, s in enumerate(SHAPES)])
    first = clf.labeler.hub_["round"]
    outputs = softmax(run_expert(first, as_image_batch(images)).astype(np.float64), axis=1)
    expected = profile_posterior([outputs], [log_profiles(clf.profiles_["round"])])
    np.testing.assert_array_equal(clf.predict_proba(images),
                                  expected[:, np.argsort(SHAPES)])
    assert "the first expert's profile posterior alone" in clf.explain()
    with pytest.raises(ValueError, match="'reuse' parameter"):
        MLLZeroShotClassifier(SHAPES, shape_labeler, reuse="no-such-rule").fit()
