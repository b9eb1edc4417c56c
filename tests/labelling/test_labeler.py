"""ModelLabeler: Eq. 1-3 values, caching, incremental work, faults, cloning, parallel runs."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import clone

from skmll import ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import TorchExpert
from skmll.labelling import LabellingError
from skmll.utils import CorruptRecordWarning

from ..conftest import CountingExpert


class LinearExpert:
    """Logits are fixed linear functions of the mean pixel value: exact expectations by hand."""

    def __init__(self, name, slopes, fail=False):
        self.name = name
        self.slopes = np.asarray(slopes, dtype=np.float32)
        self.n_outputs = len(slopes)
        self.fingerprint = f"linear-{slopes}"
        self.fail = fail

    def logits(self, images):
        if self.fail:
            raise RuntimeError("weights file missing")
        return images.mean(axis=(1, 2, 3))[:, None] * self.slopes[None, :]


def level_images(values, size=4):
    """uint8 images whose mean brightness is value / 255 each."""
    return np.stack([np.full((size, size), v, np.uint8) for v in values])


@pytest.fixture
def chain_sdag():
    # root -> mid -> {a, b};  root -> c (c has no images anywhere: no label);  mid has own images
    return SemanticDAG(
        ["root", "mid", "a", "b", "c"],
        edges=[("root", "mid"), ("mid", "a"), ("mid", "b"), ("root", "c")],
        data={"a": level_images([0, 255]), "b": level_images([255]), "mid": level_images([51])},
    )


def test_eq1_eq2_values_by_hand(chain_sdag):
    expert = LinearExpert("lin", [1.0, -2.0])
    labeler = ModelLabeler(chain_sdag, delta=0.25, cache_dir=False, verbose=0)
    label = labeler.fit(ModelHub([expert])).labels_["lin"]
    means = {"a": 0.5, "b": 1.0, "mid": 0.2}          # Eq. 1 on mean brightness
    mid = 0.25 * means["mid"] + 0.75 * (means["a"] + means["b"]) / 2   # Eq. 2
    expected = {"a": means["a"], "b": means["b"], "mid": mid, "root": mid}  # root: successor mean
    for node, value in expected.items():
        row = label.scores[chain_sdag.node_index[node]]
        np.testing.assert_allclose(row, [value, -2 * value], rtol=1e-6)
    assert np.isnan(label.scores[chain_sdag.node_index["c"]]).all()
    assert label.labelled.tolist() == [True, True, True, True, False]
    # Probabilities are mixed the same way and stay distributions.
    probs = label.probabilities[label.labelled]
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


def test_delta_extremes(chain_sdag):
    expert = LinearExpert("lin", [1.0, 0.0])
    hub = ModelHub([expert])
    mid = chain_sdag.node_index["mid"]
    own = ModelLabeler(chain_sdag, delta=1.0, cache_dir=False, verbose=0).fit(hub)
    below = ModelLabeler(chain_sdag, delta=0.0, cache_dir=False, verbose=0).fit(hub)
    assert own.labels_["lin"].scores[mid, 0] == pytest.approx(0.2)
    assert below.labels_["lin"].scores[mid, 0] == pytest.approx(0.75)


def test_cache_reuse_and_incremental_work(tmp_path, digit_experts, digit_splits):
    reference = {k: v[:10] for k, v in digit_splits.reference.items()}
    nodes = list(reference)
    sdag = SemanticDAG(nodes, data=reference)
    first = [CountingExpert(e) for e in digit_experts[:2]]
    labeler = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub(first))
    assert [e.n_images for e in first] == [100, 100]

    # Unchanged hub and SDAG: no forward pass at all, same labels.
    again = [CountingExpert(e) for e in digit_experts[:2]]
    refit = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub(again))
    assert [e.n_calls for e in again] == [0, 0] and refit.n_forward_images_ == 0
    for name in refit.labels_:
        np.testing.assert_array_equal(refit.labels_[name].scores, labeler.labels_[name].scores)

    # One more expert: only it runs.
    grown = [CountingExpert(e) for e in digit_experts[:3]]
    ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub(grown))
    assert [e.n_images for e in grown] == [0, 0, 100]

    # One more node: only its images run.
    extra = dict(reference, **{"blank": np.zeros((7, 8, 8), np.uint8)})
    bigger = SemanticDAG(nodes + ["blank"], data=extra)
    counted = [CountingExpert(e) for e in digit_experts[:3]]
    ModelLabeler(bigger, cache_dir=tmp_path, verbose=0).fit(ModelHub(counted))
    assert [e.n_images for e in counted] == [7, 7, 7]


def test_corrupted_record_is_detected_and_recomputed(tmp_path, chain_sdag):
    expert = LinearExpert("lin", [1.0, 2.0])
    ModelLabeler(chain_sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([expert]))
    (record,) = (tmp_path / "labels").rglob("*.npz")
    record.write_bytes(record.read_bytes()[:-20])  # truncate
    counted = CountingExpert(expert)
    with pytest.warns(CorruptRecordWarning, match="recomputing"):
        labeler = ModelLabeler(chain_sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([counted]))
    assert counted.n_images == 4
    assert labeler.labels_["lin"].scores[chain_sdag.node_index["a"], 0] == pytest.approx(0.5)
    # And the recomputed record is whole again: a third fit runs nothing.
    third = CountingExpert(expert)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ModelLabeler(chain_sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([third]))
    assert third.n_calls == 0


@pytest.mark.parametrize("on_error", ["raise", "warn", "skip"])
def test_failing_expert_does_not_lose_the_others(tmp_path, chain_sdag, on_error):
    good, bad = LinearExpert("good", [1.0, 0.0]), LinearExpert("bad", [0.0, 1.0], fail=True)
    labeler = ModelLabeler(chain_sdag, cache_dir=tmp_path, on_error=on_error, verbose=0)
    if on_error == "raise":
        with pytest.raises(LabellingError, match="'bad'.*weights file missing"):
            labeler.fit(ModelHub([good, bad]))
    elif on_error == "warn":
        with pytest.warns(UserWarning, match="bad"):
            labeler.fit(ModelHub([good, bad]))
    else:
        labeler.fit(ModelHub([good, bad]))
    if on_error != "raise":
        assert list(labeler.labels_) == ["good"] and "bad" in labeler.failed_experts_
        assert labeler.hub_.names == ["good"]
    # The good expert was cached despite the failure: refitting it runs nothing.
    counted = CountingExpert(good)
    ModelLabeler(chain_sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([counted]))
    assert counted.n_calls == 0


def test_expert_with_wrong_output_shape_is_named(chain_sdag):
    class Broken(LinearExpert):
        def logits(self, images):
            return np.zeros((len(images), 3))

    with pytest.raises(LabellingError, match=r"'broken'.*shape \(\d+, 3\); expected \(\d+, 2\)"):
        ModelLabeler(chain_sdag, cache_dir=False, verbose=0).fit(
            ModelHub([Broken("broken", [1.0, 1.0])]))


def test_clone_keeps_labels_and_remixes_on_new_delta(chain_sdag):
    labeler = ModelLabeler(chain_sdag, delta=0.25, cache_dir=False, verbose=0)
    labeler.fit(ModelHub([LinearExpert("lin", [1.0, 0.0])]))
    twin = clone(labeler)
    np.testing.assert_array_equal(twin.labels_["lin"].scores, labeler.labels_["lin"].scores)
    twin.set_params(delta=1.0).update_mixing()
    mid = chain_sdag.node_index["mid"]
    assert twin.labels_["lin"].scores[mid, 0] == pytest.approx(0.2)
    assert labeler.labels_["lin"].scores[mid, 0] == pytest.approx(0.25 * 0.2 + 0.75 * 0.75)
    assert copy.deepcopy(labeler.sdag) is labeler.sdag  # clone shares the (immutable) SDAG


def test_transform_and_feature_names(chain_sdag, digit_experts):
    labeler = ModelLabeler(chain_sdag, cache_dir=False, verbose=0).fit(
        ModelHub(digit_experts[:3]))
    out = labeler.transform(np.zeros((5, 8, 8), np.uint8))
    assert out.shape == (5, 5 + 5 + 2)
    names = labeler.get_feature_names_out()
    assert names[0] == "expert-a:0" and names[-1] == "expert-c:1" and len(names) == 12
    np.testing.assert_allclose(out[:, :5], digit_experts[0].logits(
        np.zeros((5, 8, 8, 3), np.float32)), rtol=1e-5)


def test_parallel_labels_equal_serial(digit_splits, digit_experts):
    sdag = SemanticDAG(list(digit_splits.reference), data=digit_splits.reference)
    hub = ModelHub(digit_experts)
    serial = ModelLabeler(sdag, images_per_shard=64, cache_dir=False, verbose=0).fit(hub)
    with parallel_config(backend="loky", n_jobs=2):
        parallel = ModelLabeler(sdag, images_per_shard=64, cache_dir=False, verbose=0).fit(hub)
    for name in hub.names:
        np.testing.assert_array_equal(serial.labels_[name].scores, parallel.labels_[name].scores)


def test_pickle_round_trip(chain_sdag):
    labeler = ModelLabeler(chain_sdag, cache_dir=False, verbose=0).fit(
        ModelHub([LinearExpert("lin", [1.0, 0.5])]))
    restored = pickle.loads(pickle.dumps(labeler))
    np.testing.assert_array_equal(restored.labels_["lin"].scores, labeler.labels_["lin"].scores)


@pytest.mark.parametrize("params, message", [
    ({"delta": 1.5}, "'delta' parameter"), ({"batch_size": 0}, "batch_size"),
    ({"on_error": "ignore"}, "on_error"),
])
def test_bad_parameters(chain_sdag, params, message):
    with pytest.raises(ValueError, match=message):
        ModelLabeler(chain_sdag, cache_dir=False, **params).fit(ModelHub([]))


def test_torch_expert_sdag_end_to_end_shapes(digit_splits, digit_experts):
    sdag = SemanticDAG(["digit"] + list(digit_splits.reference),
                       edges=[("digit", k) for k in digit_splits.reference],
                       data=digit_splits.reference)
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub(digit_experts))
    label = labeler.labels_["expert-a"]
    assert isinstance(digit_experts[0], TorchExpert)
    assert label.scores.shape == (11, 5) and label.labelled.all()
    # expert-a learned digits 0-4: on node zero.n.02 its head 0 fires most.
    assert label.scores[sdag.node_index["zero.n.02"]].argmax() == 0
