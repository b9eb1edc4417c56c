"""Bring-your-own experts: what an expert is given, and how the label cache knows it."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import MemoizedExpert, TorchExpert, as_image_batch, run_expert


def gradients(n, *, top_lit, seed, size=28):
    """Noisy light gradients, brightest at the top or at the left: uint8 (n, size, size)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1, 0, size) ** rng.uniform(0.5, 2, (n, 1))            # (n, size)
    images = ramp[:, :, None] if top_lit else ramp[:, None, :]
    images = np.broadcast_to(images, (n, size, size)) + rng.normal(0, 0.15, (n, size, size))
    return (np.clip(images, 0, 1) * 255).astype(np.uint8)


class FlatPixelsExpert:
    """A scikit-learn model on flattened 28 x 28 gray pixels: it takes no other size."""

    def __init__(self, model, name="flat-pixels"):
        self.model, self.name = model, name
        self.n_outputs = len(model.classes_)
        self.sizes_seen = set()

    def logits(self, images):
        self.sizes_seen.add(images.shape[1:])
        return self.model.predict_log_proba(images.mean(axis=3).reshape(len(images), -1))


@pytest.fixture(scope="module")
def lighting_world():
    train = np.concatenate([gradients(60, top_lit=True, seed=1),
                            gradients(60, top_lit=False, seed=2)])
    model = LogisticRegression(max_iter=500).fit(train.reshape(120, -1) / 255.0,
                                                 np.repeat([0, 1], 60))
    sdag = SemanticDAG(["lighting", "overhead", "sidelight"],
                       edges=[("lighting", "overhead"), ("lighting", "sidelight")],
                       data={"overhead": gradients(15, top_lit=True, seed=3),
                             "sidelight": gradients(15, top_lit=False, seed=4)})
    test = np.concatenate([gradients(20, top_lit=True, seed=5),
                           gradients(20, top_lit=False, seed=6)])
    return model, sdag, test, np.repeat(["from above", "from the side"], 20)


def test_fixed_size_sklearn_expert_labels_and_predicts_on_its_own_size(lighting_world):
    """The fingerprint probe used to call every protocol expert on 64 x 64 noise: "X has 12288
    features, but LogisticRegression is expecting 784"."""
    model, sdag, test, truth = lighting_world
    expert = FlatPixelsExpert(model)
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([expert]))
    clf = MLLZeroShotClassifier(["from above", "from the side"], labeler,
                                nodes=["overhead", "sidelight"], cache_dir=False).fit()
    assert (clf.predict(test) == truth).mean() > 0.9
    assert expert.sizes_seen == {(28, 28, 3)}


class MeanThreshold:
    """Fires when an image's mean brightness is above ``threshold``; declares no fingerprint.

    Counts the calls and images it is given.
    """

    n_outputs = 2

    def __init__(self, threshold, name="threshold"):
        self.threshold, self.name = threshold, name
        self.n_calls = self.n_images = 0

    def logits(self, images):
        self.n_calls += 1
        self.n_images += len(images)
        fires = images.mean(axis=(1, 2, 3)) > self.threshold
        return np.stack([~fires, fires], axis=1).astype(np.float32) * 4


@pytest.fixture(scope="module")
def brightness_sdag():
    rng = np.random.default_rng(7)

    def gray(level):
        return np.clip(level + rng.normal(0, 0.01, (6, 10, 10)), 0, 1).astype(np.float32)

    nodes = ["light", "dim", "bright", "glaring"]
    return SemanticDAG(nodes, edges=[("light", n) for n in nodes[1:]],
                       data={"dim": gray(0.3), "bright": gray(0.75), "glaring": gray(0.97)})


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_different_anonymous_experts_never_share_cached_labels(brightness_sdag, tmp_path):
    """Both thresholds agree on every noise probe; the second used to get the first's labels."""
    cache = tmp_path / "shared"
    first = ModelLabeler(brightness_sdag, cache_dir=cache, verbose=0).fit([MeanThreshold(0.6)])
    second = ModelLabeler(brightness_sdag, cache_dir=cache, verbose=0).fit([MeanThreshold(0.9)])
    alone = ModelLabeler(brightness_sdag, cache_dir=False, verbose=0).fit([MeanThreshold(0.9)])
    scores = {name: labeler.labels_["threshold"].scores
              for name, labeler in [("first", first), ("second", second), ("alone", alone)]}
    np.testing.assert_array_equal(scores["second"], scores["alone"])
    assert not np.array_equal(scores["first"], scores["second"])
    assert second.n_forward_images_ == brightness_sdag.n_images.sum()
    assert files_under(tmp_path) == []   # nothing of theirs is stored


def test_expert_with_a_declared_fingerprint_is_cached(brightness_sdag, tmp_path):
    def declared():
        expert = MeanThreshold(0.6)
        expert.fingerprint = "mean-above-0.6"
        return expert

    first_expert, second_expert = declared(), declared()
    first = ModelLabeler(brightness_sdag, cache_dir=tmp_path, verbose=0).fit([first_expert])
    assert first_expert.n_images == brightness_sdag.n_images.sum() and files_under(tmp_path)
    second = ModelLabeler(brightness_sdag, cache_dir=tmp_path, verbose=0).fit([second_expert])
    assert second_expert.n_calls == 0 and second.n_forward_images_ == 0
    np.testing.assert_array_equal(second.labels_["threshold"].scores,
                                  first.labels_["threshold"].scores)


def test_memoized_anonymous_expert_remembers_in_memory_only(tmp_path):
    inner = MeanThreshold(0.5)
    memo = MemoizedExpert(inner, cache_dir=tmp_path)
    images = np.random.default_rng(0).random((4, 6, 6, 3), dtype=np.float32)
    np.testing.assert_array_equal(memo.logits(images), memo.logits(images.copy()))
    assert memo.fingerprint is None and inner.n_calls == 1
    assert files_under(tmp_path) == []


class SizeRecorder:
    """Records the shape of every batch it is given; logits are the channel means."""

    name, n_outputs = "recorder", 3

    def __init__(self):
        self.calls = []

    def logits(self, images):
        self.calls.append(images.shape)
        return images.mean(axis=(1, 2))


def test_run_expert_calls_once_per_size_and_keeps_row_order():
    rng = np.random.default_rng(3)
    images = [rng.random(shape, dtype=np.float32) for shape in
              [(5, 7, 3), (9, 4, 3), (5, 7, 3), (6, 6, 3)]]
    recorder = SizeRecorder()
    out = run_expert(recorder, as_image_batch(images))
    assert sorted(recorder.calls) == [(1, 6, 6, 3), (1, 9, 4, 3), (2, 5, 7, 3)]
    np.testing.assert_allclose(out, [image.mean(axis=(0, 1)) for image in images], rtol=1e-6)
    recorder.calls.clear()
    assert run_expert(recorder, as_image_batch(images)[np.zeros(4, bool)]).shape == (0, 3)
    assert recorder.calls == []   # never called on nothing


class Scribbler:
    """Writes into the images it is given, as careless in-place preprocessing does."""

    name, n_outputs = "scribbler", 2

    def logits(self, images):
        images *= 0.5
        images[:, 0, 0] = 1.0
        return np.stack([images.mean(axis=(1, 2, 3)), images.std(axis=(1, 2, 3))], axis=1)


class Observer(SizeRecorder):
    name = "observer"

    def logits(self, images):
        self.seen = images.copy()
        return super().logits(images)


def test_an_expert_writing_into_its_input_changes_nothing_else(brightness_sdag):
    observer = Observer()
    labeler = ModelLabeler(brightness_sdag, cache_dir=False, verbose=0).fit([Scribbler(),
                                                                            observer])
    images = np.random.default_rng(4).random((3, 10, 10, 3), dtype=np.float32)
    before = images.copy()
    assert as_image_batch(images) is images   # canonical input reaches the experts uncopied
    features = labeler.transform(images)
    np.testing.assert_array_equal(images, before)          # the caller's array
    np.testing.assert_array_equal(observer.seen, before)   # what the next expert sees
    np.testing.assert_allclose(features[:, 2:], before.mean(axis=(1, 2)), rtol=1e-6)


def small_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(16, 3)).eval()


@pytest.fixture(scope="module")
def colour_classifier():
    rng = np.random.default_rng(5)

    def tinted(channel):
        images = rng.uniform(0, 0.4, (8, 12, 12, 3))
        images[..., channel] += 0.6
        return images.astype(np.float32)

    sdag = SemanticDAG(["colour", "reddish", "bluish"],
                       edges=[("colour", "reddish"), ("colour", "bluish")],
                       data={"reddish": tinted(0), "bluish": tinted(2)})
    experts = [TorchExpert(small_net(0), name="conv", input_size=(16, 16)), SizeRecorder()]
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub(experts))
    return MLLZeroShotClassifier(["red", "blue"], labeler, nodes=["reddish", "bluish"],
                                 cache_dir=False).fit()


def test_a_photo_gets_the_same_probabilities_whatever_else_is_in_its_batch(colour_classifier):
    """Mixed sizes used to be resized to 224 x 224 first: results depended on the batch."""
    china, flower = load_sample_images().images
    crops = [china[:37, :53], flower[100:160, 200:229], china[200:231, 300:331],
             flower[50:94, 10:80], china[300:340, 100:140]]
    photos = [Image.fromarray(np.ascontiguousarray(crop)) for crop in crops]
    photos.append(photos[1].convert("L"))
    assert {"conv", "recorder"} <= {name for c in ["red", "blue"]
                                    for name, _, _ in colour_classifier.experts_[c]}
    together = colour_classifier.predict_proba(photos)
    alone = np.concatenate([colour_classifier.predict_proba([photo]) for photo in photos])
    backwards = colour_classifier.predict_proba(photos[::-1])[::-1]
    in_pairs = colour_classifier.set_params(batch_size=2).predict_proba(photos)
    for other in (alone, backwards, in_pairs):
        np.testing.assert_allclose(together, other, rtol=0, atol=1e-6)


def letter_counts(texts):
    """A toy text encoder: how often each letter occurs."""
    return np.array([[text.lower().count(ch) for ch in "abcdefghijklmnopqrstuvwxyz"]
                     for text in texts], dtype=float)


def test_a_patched_class_is_batch_independent_too(colour_classifier):
    """The general model (here ConSE over a small conv net) also gets the images size by size."""
    from skmll.reuse import ConSE

    general = ConSE(TorchExpert(small_net(1), name="conse-net", input_size=(20, 20)),
                    ["scarlet", "navy", "olive"], text_encoder=letter_counts, top_t=2)
    clf = MLLZeroShotClassifier(["red", "blue", "green"], colour_classifier.labeler,
                                nodes=["reddish", "bluish", None], text_encoder=letter_counts,
                                min_similarity=0.99, general_model=general,
                                cache_dir=False).fit()
    assert clf.uncovered_classes_ == ["green"]
    china, flower = load_sample_images().images
    photos = [Image.fromarray(np.ascontiguousarray(crop)) for crop in
              (china[:30, :44], flower[:25, :25], china[40:70, 40:84])]
    together = clf.predict_proba(photos)
    alone = np.concatenate([clf.predict_proba([photo]) for photo in photos])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
