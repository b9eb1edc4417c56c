"""A class matched above another class's node is left unmatched, never served by its label."""

import numpy as np
import pytest

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.selection import classes_above_others


class TableEncoder:
    """Fixed directions per text: "kumquat" (whose own node has no images) is nearest to the
    broad node "fruit", which also holds the "lemon" node."""

    vectors = {"Name: fruit": [1.0, 0.2, 0.0], "Name: lemon": [0.0, 1.0, 0.0],
               "Name: lime": [0.0, 0.0, 1.0], "Name: kumquat": [0.1, 0.0, 0.0],
               "Name: Kumquat": [0.9, 0.1, 0.0], "Name: Lemon": [0.1, 1.0, 0.0],
               "Name: Lime": [0.0, 0.1, 1.0]}

    def __call__(self, texts):
        return np.array([self.vectors[t] for t in texts])


class Hue:
    """Head 0 fires on yellow images, head 1 on green ones."""

    name, n_outputs, fingerprint = "hue", 2, "hue-v1"

    def logits(self, images):
        red = images[..., 0].mean(axis=(1, 2))
        return 8 * np.stack([red - 0.5, 0.5 - red], axis=1)


def _images(red, n=3):
    images = np.zeros((n, 6, 6, 3), np.uint8)
    images[..., 0], images[..., 1] = red, 220
    return images


@pytest.fixture(scope="module")
def labeler():
    sdag = SemanticDAG(["fruit", "lemon", "lime", "kumquat"],
                       edges=[("fruit", "lemon"), ("fruit", "lime"), ("fruit", "kumquat")],
                       texts={"fruit": "Name: fruit", "lemon": "Name: lemon",
                              "lime": "Name: lime", "kumquat": "Name: kumquat"},
                       data={"lemon": _images(230), "lime": _images(40)})
    return ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Hue()]))


def test_the_relation_is_read_up_the_dag(labeler):
    sdag = labeler.sdag
    nodes = [sdag.node_index[n] for n in ("fruit", "lemon", "lime")]
    assert classes_above_others(nodes, sdag).tolist() in ([1, -1, -1], [2, -1, -1])
    assert classes_above_others([nodes[1], nodes[2], -1], sdag).tolist() == [-1, -1, -1]


def test_a_class_matched_above_another_is_not_served_by_that_label(labeler):
    """Without the rule, "Kumquat" would be read through "fruit", i.e. lemons and limes."""
    clf = MLLZeroShotClassifier(["Kumquat", "Lemon", "Lime"], labeler, text_encoder=TableEncoder(),
                                name_bonus=0.0, on_uncovered="drop", cache_dir=False).fit()
    assert clf.matched_nodes_["Kumquat"] is None
    assert "fruit has no images of its own and lies above 'Lemon'" in (
        clf.unmatched_reasons_["Kumquat"])
    assert clf.dropped_classes_ == ["Kumquat"] and clf.classes_.tolist() == ["Lemon", "Lime"]
    assert "lies above" in clf.explain() and "dropped" in clf.explain()
    with pytest.raises(ValueError, match="'Kumquat' not matched: its nearest node fruit"):
        MLLZeroShotClassifier(["Kumquat", "Lemon", "Lime"], labeler, text_encoder=TableEncoder(),
                              name_bonus=0.0, cache_dir=False).fit()


def test_nodes_given_by_the_user_are_kept(labeler):
    clf = MLLZeroShotClassifier(["any fruit", "Lemon"], labeler, nodes=["fruit", "lemon"],
                                cache_dir=False).fit()
    assert clf.matched_nodes_["any fruit"][0] == "fruit" and clf.unmatched_reasons_ == {}


def test_a_node_with_images_of_its_own_stays_a_class(labeler):
    """Like shirt.n.01 above jersey.n.03 (the T-shirt): a node with its own pictures is a class
    of its own even with another class below it."""
    sdag = SemanticDAG(["fruit", "lemon", "lime", "kumquat"],
                       edges=[("fruit", "lemon"), ("fruit", "lime"), ("fruit", "kumquat")],
                       texts={"fruit": "Name: fruit", "lemon": "Name: lemon",
                              "lime": "Name: lime", "kumquat": "Name: kumquat"},
                       data={"fruit": _images(140), "lemon": _images(230), "lime": _images(40)})
    own = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Hue()]))
    clf = MLLZeroShotClassifier(["Kumquat", "Lemon", "Lime"], own, text_encoder=TableEncoder(),
                                name_bonus=0.0, cache_dir=False).fit()
    assert clf.matched_nodes_["Kumquat"][0] == "fruit" and clf.unmatched_reasons_ == {}
