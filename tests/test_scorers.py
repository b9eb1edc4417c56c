"""scikit-learn's probability scorers read ``predict_proba`` through ``classes_``: checked by hand.

Scorers take the positive class as ``classes_[1]`` and read columns in ``classes_`` order, so a
classifier whose columns followed the user's order of class names scored the mirror image of
its predictions (ROC AUC 0.0 for a perfect classifier). Every value below is computed from
first principles, reading each column by its class name.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import average_precision_score, get_scorer, make_scorer
from sklearn.model_selection import StratifiedKFold, cross_val_score

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG

from .conftest import DIGIT_NAMES


class Brightness:
    """Head 1 fires on bright images, head 0 on dark ones."""

    name, n_outputs = "brightness", 2

    def logits(self, images):
        m = images.mean(axis=(1, 2, 3))
        return np.stack([1 - m, m], axis=1) * 4


def _pair_auc(positive_scores, negative_scores):
    """P(score of a random positive > score of a random negative), ties counting one half."""
    diff = positive_scores[:, None] - negative_scores[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _average_precision(scores, is_positive):
    """Sum over thresholds, in decreasing score, of precision times the recall gained there."""
    order = np.argsort(-scores, kind="stable")
    hits, thresholds = is_positive[order], scores[order]
    ap, recall_before = 0.0, 0.0
    for i in range(len(scores)):
        if i + 1 < len(scores) and thresholds[i + 1] == thresholds[i]:
            continue                                  # one step per distinct threshold
        true_positives = hits[:i + 1].sum()
        recall = true_positives / hits.sum()
        ap += (recall - recall_before) * true_positives / (i + 1)
        recall_before = recall
    return ap


@pytest.fixture(scope="module")
def light_and_dark():
    """The classifier's docstring example, with noisy images so that scores differ."""
    rng = np.random.default_rng(7)
    dark = rng.integers(0, 110, (6, 8, 8), dtype=np.uint8)
    light = rng.integers(140, 256, (6, 8, 8), dtype=np.uint8)
    sdag = SemanticDAG(["shade", "night", "day"], edges=[("shade", "night"), ("shade", "day")],
                       texts={"night": "Name: night, darkness", "day": "Name: day, daylight"},
                       data={"night": np.zeros((3, 8, 8), np.uint8),
                             "day": np.full((3, 8, 8), 255, np.uint8)})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    clf = MLLZeroShotClassifier(["daylight", "darkness"], labeler, cache_dir=False).fit()
    images = np.concatenate([light, dark])
    truth = np.array(["daylight"] * 6 + ["darkness"] * 6, dtype=object)
    return clf, images, truth


def test_classes_are_sorted_and_columns_follow_them(light_and_dark):
    clf, images, truth = light_and_dark
    assert clf.classes_.tolist() == ["darkness", "daylight"]
    proba = clf.predict_proba(images)
    # Column "daylight" is high on the light images, whatever order the names were given in.
    assert (proba[:6, 1] > 0.5).all() and (proba[6:, 0] > 0.5).all()
    assert clf.score(images, truth) == 1.0


# The built-in "average_precision" scorer assumes pos_label=1; with names as labels the positive
# class is given by name, and the scorer finds its column through classes_.
SCORERS = {"roc_auc": get_scorer("roc_auc"), "neg_log_loss": get_scorer("neg_log_loss"),
           "average_precision": make_scorer(average_precision_score,
                                            response_method="predict_proba",
                                            pos_label="daylight")}


@pytest.mark.parametrize("scoring", list(SCORERS))
def test_binary_probability_scorers_match_hand_values(light_and_dark, scoring):
    clf, images, truth = light_and_dark
    proba = clf.predict_proba(images)
    column = {name: proba[:, i] for i, name in enumerate(clf.classes_)}
    positive = truth == "daylight"                 # scikit-learn's positive label: classes_[1]
    by_hand = {
        "roc_auc": _pair_auc(column["daylight"][positive], column["daylight"][~positive]),
        "neg_log_loss": float(np.mean(np.log([column[t][i] for i, t in enumerate(truth)]))),
        "average_precision": _average_precision(column["daylight"], positive),
    }[scoring]
    assert SCORERS[scoring](clf, images, truth) == pytest.approx(by_hand, rel=1e-9)
    if scoring == "roc_auc":
        assert by_hand == 1.0                     # the light images are the brighter ones
    # ... and through cross-validation, fold by fold.
    folds = list(StratifiedKFold(3).split(images, truth))
    expected = []
    for _, test in folds:
        p, t = column["daylight"][test], positive[test]
        expected.append({"roc_auc": _pair_auc(p[t], p[~t]),
                         "average_precision": _average_precision(p, t),
                         "neg_log_loss": float(np.mean(np.log(np.where(t, p, 1 - p))))}[scoring])
    scores = cross_val_score(clone(clf), images, truth, cv=folds, scoring=SCORERS[scoring])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_multiclass_roc_auc_ovr_matches_hand_value(digit_sdag, digit_experts, digit_splits):
    """Ten digits given in counting order (not sorted): one-vs-rest AUC read by class name."""
    labeler = ModelLabeler(digit_sdag, cache_dir=False, verbose=0).fit(ModelHub(digit_experts))
    clf = MLLZeroShotClassifier(DIGIT_NAMES, labeler, cache_dir=False).fit()
    images, labels = digit_splits.test
    images, labels = images[:200], labels[:200]
    truth = np.array(DIGIT_NAMES, dtype=object)[labels]
    proba = clf.predict_proba(images)
    aucs = []
    for name in DIGIT_NAMES:
        scores, is_class = proba[:, list(clf.classes_).index(name)], truth == name
        aucs.append(_pair_auc(scores[is_class], scores[~is_class]))
    assert np.mean(aucs) > 0.9
    assert get_scorer("roc_auc_ovr")(clf, images, truth) == pytest.approx(np.mean(aucs),
                                                                          rel=1e-9)
    log_loss = np.mean(np.log(proba[np.arange(len(truth)),
                                    [list(clf.classes_).index(t) for t in truth]]))
    assert get_scorer("neg_log_loss")(clf, images, truth) == pytest.approx(log_loss, rel=1e-9)
