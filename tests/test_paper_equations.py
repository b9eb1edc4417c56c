"""The paper's own path through the public API, each equation checked against a hand computation.

One two-head expert reads a picture's brightness; an SDAG holds "night" and "day" under "time".
Every number asserted below is worked out in the comments from the paper's equations, not taken
from skmll.
"""

import numpy as np
import pytest

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG

E2 = np.exp(2.0)


class Brightness:
    """Logits (4 * darkness, 4 * brightness) for an image's mean pixel value m in [0, 1]."""

    name, n_outputs = "brightness", 2

    def logits(self, images):
        m = images.mean(axis=(1, 2, 3))
        return np.stack([4 * (1 - m), 4 * m], axis=1)


class TableEncoder:
    """A text encoder given as a table: each known text has a fixed direction."""

    def __init__(self, vectors):
        self.vectors = vectors

    def __call__(self, texts):
        return np.array([self.vectors[t] for t in texts], dtype=float)


BLACK, GREY, WHITE = (np.full((1, 6, 6), v, np.uint8) for v in (0, 128, 255))


@pytest.fixture(scope="module")
def labeler():
    # night: one black and one mid-grey picture (logits (4, 0) and about (2, 2): mean (3, 1));
    # day: two white pictures (logits (0, 4)).
    grey = 128 / 255
    sdag = SemanticDAG(["time", "night", "day"], edges=[("time", "night"), ("time", "day")],
                       texts={"night": "Name: night, dark", "day": "Name: day, daytime, dusk"},
                       data={"night": np.concatenate([BLACK, GREY]),
                             "day": np.concatenate([WHITE, WHITE])})
    labeler = ModelLabeler(sdag, delta=0.5, cache_dir=False, verbose=0).fit(
        ModelHub([Brightness()]))
    # Eq. 1: node means of the logits; Eq. 2 (delta = 0.5) on the root, which has no images of
    # its own, is the mean of its successors.
    night = np.array([(4 + 4 * (1 - grey)) / 2, (0 + 4 * grey) / 2])
    day = np.array([0.0, 4.0])
    np.testing.assert_allclose(labeler.labels_["brightness"].scores,
                               [(night + day) / 2, night, day], rtol=1e-6)
    return labeler


def _eq4(mean_logits):
    """Eq. 4: softmax over heads of a node's mixed mean logits."""
    e = np.exp(mean_logits - mean_logits.max())
    return e / e.sum()


def test_eq4_logit_labels_and_eq9_losses(labeler):
    """label_statistic="logit" is Eq. 4; each class's reuse loss is Eq. 9 at the optimum."""
    clf = MLLZeroShotClassifier(["night", "day"], labeler, label_statistic="logit",
                                nodes=["night", "day"],
                                k=1, cache_dir=False).fit()
    s = labeler.labels_["brightness"].scores
    P = np.stack([_eq4(s[1]), _eq4(s[2])], axis=1)     # heads x classes (night, day)
    # Head 0 serves night and head 1 serves day, alone: at that corner the derivative (Eq. 11)
    # of L_night along x_{1,night} is -p_{1,n}/p_{0,n} + p_{1,d}/(1 - p_{0,d}) > 0, and likewise
    # for day, so no other head helps.
    assert -P[1, 0] / P[0, 0] + P[1, 1] / (1 - P[0, 1]) > 0
    assert -P[0, 1] / P[1, 1] + P[0, 0] / (1 - P[1, 0]) > 0
    loss_night = -(np.log(P[0, 0]) + np.log(1 - P[0, 1]))     # Eq. 9 with |Y| - 1 = 1
    loss_day = -(np.log(P[1, 1]) + np.log(1 - P[1, 0]))
    (_, night_loss, night_x), = clf.experts_["night"]
    (_, day_loss, day_x), = clf.experts_["day"]
    assert night_loss == pytest.approx(loss_night, rel=1e-6)
    assert day_loss == pytest.approx(loss_day, rel=1e-6)
    np.testing.assert_allclose(night_x, [1, 0], atol=1e-6)
    np.testing.assert_allclose(day_x, [0, 1], atol=1e-6)
    # The probability statistic reads the mean of per-image softmaxes instead: another matrix,
    # other losses (night's mean softmax is flatter than the softmax of its mean logits).
    soft = MLLZeroShotClassifier(["night", "day"], labeler, nodes=["night", "day"], k=1,
                                 cache_dir=False).fit()
    assert soft.experts_["night"][0][1] > night_loss + 0.05


def test_eq12_13_entropy_reuse_by_hand(labeler):
    """reuse="entropy": p_c(x) = w * F(x)^T x_c (Eq. 12); one expert, so its weight is 1."""
    clf = MLLZeroShotClassifier(["night", "day"], labeler, label_statistic="logit",
                                nodes=["night", "day"], reuse="entropy", k=1,
                                cache_dir=False).fit()
    image = np.full((1, 6, 6), 64, np.uint8)             # m = 64/255: logits (4(1-m), 4m)
    m = 64 / 255
    F = np.exp([4 * (1 - m), 4 * m])
    F /= F.sum()
    # x_night = (1, 0), x_day = (0, 1): p_night = F_0, p_day = F_1, already summing to 1.
    expected = {"night": F[0], "day": F[1]}
    proba = clf.predict_proba(image)[0]
    for j, name in enumerate(clf.classes_):
        assert proba[j] == pytest.approx(expected[name], rel=1e-6)


def test_name_bonus_zero_is_the_papers_literal_matching(labeler):
    """Algorithm 1, line 4, literally: cosine similarity and mutual best match, nothing else.

    "dusk" is written among day's lemmas, but its embedding points at night. The literal rule
    follows the embedding; the default bonus for a verbatim lemma follows the dictionary.
    """
    encoder = TableEncoder({
        "Name: night, dark": [1.0, 0.1, 0.0], "Name: day, daytime, dusk": [0.0, 1.0, 0.2],
        "time": [0.0, 0.0, 1.0],
        "Name: dusk": [0.9, 0.3, 0.1], "Name: noon": [0.1, 1.0, 0.0],
    })
    literal = MLLZeroShotClassifier(["dusk", "noon"], labeler, text_encoder=encoder,
                                    name_bonus=0.0, on_uncovered="drop", cache_dir=False).fit()
    # cos(dusk, night) = (0.9 + 0.03) / (|dusk| |night|) is dusk's best, and night's best class
    # is dusk; noon and day are each other's best.
    unit = {k: np.array(v) / np.linalg.norm(v) for k, v in encoder.vectors.items()}
    cos = unit["Name: dusk"] @ unit["Name: night, dark"]
    assert literal.matched_nodes_["dusk"] == ("night", pytest.approx(cos, rel=1e-5))
    assert literal.matched_nodes_["noon"][0] == "day"
    bonus = MLLZeroShotClassifier(["dusk", "noon"], labeler, text_encoder=encoder,
                                  on_uncovered="drop", cache_dir=False).fit()
    assert bonus.matched_nodes_["dusk"][0] == "day"
