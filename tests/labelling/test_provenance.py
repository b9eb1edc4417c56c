"""Labels record what they were computed from, and nothing predicts from labels of another SDAG."""

import numpy as np
import pytest
from sklearn.base import clone

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, __version__
from skmll.exceptions import StaleLabelsError
from skmll.labelling import sdag_key

RED = np.zeros((4, 6, 6, 3), np.uint8)
RED[..., 0] = 230
BLUE = np.zeros((4, 6, 6, 3), np.uint8)
BLUE[..., 2] = 230


class Redness:
    """Head 0 fires on red images, head 1 on blue ones (a real, if tiny, colour classifier)."""

    name, n_outputs, fingerprint = "redness", 2, "redness-v1"

    def logits(self, images):
        red, blue = images[..., 0].mean(axis=(1, 2)), images[..., 2].mean(axis=(1, 2))
        return 6 * np.stack([red - blue, blue - red], axis=1)


class Words:
    """A tiny deterministic text encoder: letter counts."""

    def __call__(self, texts):
        return np.array([[t.lower().count(ch) + 0.01 for ch in "abcdefghijklmnopqrstuvwxyz"]
                         for t in texts])


def _sdag(fire_engine_images, sky_images):
    return SemanticDAG(["thing", "fire_engine", "sky"],
                       edges=[("thing", "fire_engine"), ("thing", "sky")],
                       texts={"fire_engine": "Name: fire engine", "sky": "Name: sky"},
                       data={"fire_engine": fire_engine_images, "sky": sky_images})


@pytest.fixture
def labeler(tmp_path):
    return ModelLabeler(_sdag(RED, BLUE), delta=0.5, cache_dir=tmp_path,
                        verbose=0).fit(ModelHub([Redness()]))


def test_labels_record_their_provenance(labeler):
    label = labeler.labels_["redness"]
    assert label.sdag_key == sdag_key(labeler.sdag) == labeler.sdag_key_
    assert label.node_ids == ("thing", "fire_engine", "sky")
    assert label.delta == 0.5 and label.version == __version__
    assert label.expert_fingerprint == labeler.fingerprints_["redness"]
    assert label.expert_fingerprint is not None


def test_sdag_key_sees_reassigned_images_and_edges():
    same = _sdag(RED, BLUE)
    assert sdag_key(same) == sdag_key(_sdag(RED, BLUE))
    assert sdag_key(same) != sdag_key(_sdag(BLUE, RED))          # same ids, images swapped
    flat = SemanticDAG(["thing", "fire_engine", "sky"], data={"fire_engine": RED, "sky": BLUE})
    assert sdag_key(same) != sdag_key(flat)                       # same images, no edges


def test_clone_given_another_sdag_refuses_to_predict(labeler):
    """Same node ids, images reassigned: the old labels would call every fire engine sky."""
    swapped = clone(labeler).set_params(sdag=_sdag(BLUE, RED))
    clf = MLLZeroShotClassifier(["fire engine", "sky"], swapped, text_encoder=Words(),
                                cache_dir=False)
    with pytest.raises(StaleLabelsError, match=r"another SDAG.*labeler.fit\(hub\)"):
        clf.fit()
    with pytest.raises(StaleLabelsError):
        swapped.update_mixing()
    # Relabelling through the cache mends it: fire engines are now the blue images.
    swapped.fit(ModelHub([Redness()]))
    assert swapped.n_forward_images_ == 0                         # node images hashed alike
    clf.fit()
    assert clf.predict(np.concatenate([RED[:1], BLUE[:1]])).tolist() == ["sky", "fire engine"]


def test_update_mixing_after_a_smaller_sdag_is_a_clear_error(labeler):
    labeler.set_params(sdag=SemanticDAG(["fire_engine"], data={"fire_engine": RED}))
    with pytest.raises(StaleLabelsError, match="another SDAG"):
        labeler.update_mixing()


def test_classifier_fit_leaves_the_labeler_alone_when_delta_changed(tmp_path):
    """A clone given another delta: the classifier re-mixes for itself, the labeler is untouched.

    "vehicle" has pictures of its own (dull red) and one successor, "fire_engine" (red): by
    Eq. 2 its label moves with delta, so the classes' profiles show which delta was read.
    """
    dull = (RED * 0.6).astype(np.uint8)
    sdag = SemanticDAG(["vehicle", "fire_engine", "sky"], edges=[("vehicle", "fire_engine")],
                       texts={"vehicle": "Name: vehicle", "fire_engine": "Name: fire engine",
                              "sky": "Name: sky"},
                       data={"vehicle": dull, "fire_engine": RED, "sky": BLUE})
    labeler = ModelLabeler(sdag, delta=0.5, cache_dir=tmp_path, verbose=0).fit(
        ModelHub([Redness()]))
    twin = clone(labeler).set_params(delta=0.0)
    before = {k: v.scores.copy() for k, v in twin.labels_.items()}
    clf = MLLZeroShotClassifier(["vehicle", "sky"], twin, nodes=["vehicle", "sky"],
                                cache_dir=False).fit()
    assert twin.delta_ == 0.5                                     # nothing re-mixed in place
    for name, scores in before.items():
        np.testing.assert_array_equal(twin.labels_[name].scores, scores)
    # The classifier read labels mixed with delta = 0: vehicle's row is fire_engine's alone.
    fresh = clone(labeler).set_params(delta=0.0).update_mixing()
    mixed = fresh.labels_["redness"].probabilities
    vehicle, fire_engine, sky = range(3)
    np.testing.assert_allclose(mixed[vehicle], mixed[fire_engine])
    np.testing.assert_allclose(clf.profiles_["redness"], mixed[[vehicle, sky]], rtol=1e-6)
    half = labeler.labels_["redness"].probabilities
    assert not np.allclose(half[vehicle], mixed[vehicle])        # delta mattered


def test_fit_transform_names_the_two_inputs(labeler):
    with pytest.raises(TypeError, match=r"fit\(hub\).transform\(images\)"):
        clone(labeler).fit_transform(ModelHub([Redness()]))
