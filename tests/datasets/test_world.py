"""The offline benchmark world: loaders, class table, splits, expert hub and oracle."""

import numpy as np
import pytest
import torch

from skmll.datasets import (
    WORLD_EXPERTS,
    build_world_hub,
    efficientnet_lite_experts,
    group_labels,
    held_out_split,
    load_class_table,
    load_digit_images,
    load_fashion_mnist,
    load_or_train_expert,
    make_world,
    supervised_oracle,
    train_world_experts,
)
from skmll.hub import ModelHub, TorchExpert, as_image_batch

TEST_SCALE = 0.2  # a fifth of the full training: weaker experts, a few seconds in all


@pytest.fixture(scope="module")
def expert_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("skmll-cache")


@pytest.fixture(scope="module")
def trained(world, expert_cache):
    return train_world_experts(world, cache_dir=expert_cache, training_scale=TEST_SCALE,
                               verbose=0)


# --- loaders and the class table ---------------------------------------------------------------

@pytest.mark.parametrize("split, n", [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_shapes_and_balance(split, n):
    images, labels = load_fashion_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [n // 10] * 10
    assert images.max() == 255 and images.min() == 0


def test_fashion_mnist_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


@pytest.mark.parametrize("size", [28, 16])
def test_digit_images_are_upsampled_uint8(size):
    images, labels = load_digit_images(size=size)
    assert images.shape == (1797, size, size) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    # Bilinear upsampling keeps the 8x8 image: block means follow the original intensities.
    from sklearn.datasets import load_digits

    if size == 16:
        blocks = images.reshape(-1, 8, 2, 8, 2).astype(float).mean(axis=(2, 4))
        original = load_digits().images * 255 / 16
        assert np.corrcoef(blocks.ravel(), original.ravel())[0, 1] > 0.95


def test_class_table():
    table = load_class_table()
    assert [row["id"] for row in table] == list(range(20))
    assert [row["name"] for row in table[:10]] == [
        "T-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
        "ankle boot"]
    assert [row["source_name"] for row in table[:3]] == ["T-shirt/top", "Trouser", "Pullover"]
    assert [row["synset"] for row in table[10:12]] == ["zero.n.02", "one.n.01"]
    assert len({row["synset"] for row in table}) == 20


def test_class_table_synsets_are_the_wordnet_nouns():
    from skmll.semantic_graph import load_wordnet

    wordnet = load_wordnet()
    digit = wordnet.synset("digit.n.01")
    # Garments and footwear are coverings, the bag a container: checks the sense, not the word.
    covering, container = wordnet.synset("covering.n.02"), wordnet.synset("container.n.01")
    for row in load_class_table():
        synset = wordnet.synset(row["synset"])
        assert synset.definition() == row["definition"]
        lemmas = {name.lower().replace("_", " ") for name in synset.lemma_names()}
        assert any(lemma in f"{row['name']} {row['source_name']}".lower() for lemma in lemmas)
        ancestors = set(synset.closure(lambda s: s.hypernyms()))
        if row["dataset"] == "digits":
            assert digit in synset.hypernyms()
        else:
            assert (container if row["name"] == "bag" else covering) in ancestors, row


# --- the world's splits ------------------------------------------------------------------------

def _sources():
    fashion_train, y_train = load_fashion_mnist("train")
    fashion_test, y_test = load_fashion_mnist("test")
    digits, y_digits = load_digit_images()
    return (np.concatenate([fashion_train, fashion_test, digits]),
            np.concatenate([y_train, y_test, y_digits + 10]))


def test_world_records_where_each_image_comes_from(world):
    images, labels = _sources()
    np.testing.assert_array_equal(world.train_images, images[world.train_origin])
    np.testing.assert_array_equal(world.train_labels, labels[world.train_origin])
    np.testing.assert_array_equal(world.test_images, images[world.test_origin])
    np.testing.assert_array_equal(world.test_labels, labels[world.test_origin])
    for class_id, synset in enumerate(world.synsets):
        np.testing.assert_array_equal(world.reference[synset],
                                      images[world.reference_origin[synset]])
        assert (labels[world.reference_origin[synset]] == class_id).all()


def test_splits_are_disjoint(world):
    reference = np.concatenate(list(world.reference_origin.values()))
    splits = [world.train_origin, world.test_origin, reference]
    assert sum(len(s) for s in splits) == len(np.unique(np.concatenate(splits)))
    # No image content is shared either (the sources hold no duplicates).
    reference_images = np.concatenate(list(world.reference.values()))
    train, test, ref = ({image.tobytes() for image in images}
                        for images in (world.train_images, world.test_images, reference_images))
    assert not (train & test or train & ref or test & ref)
    # The Fashion test part comes from t10k only, the Fashion training data from train only.
    fashion = world.test_labels < 10
    assert ((world.test_origin[fashion] >= 60_000) & (world.test_origin[fashion] < 70_000)).all()
    assert (world.train_origin < 60_000).sum() == (world.train_labels < 10).sum()


def test_split_sizes(world):
    assert (world.test_labels < 10).sum() == 500
    assert np.bincount(world.test_labels[world.test_labels < 10]).tolist() == [50] * 10
    assert 590 <= (world.test_labels >= 10).sum() <= 600
    assert list(world.reference) == world.synsets
    assert all(images.shape == (50, 28, 28) and images.dtype == np.uint8
               for images in world.reference.values())
    assert world.train_images.dtype == np.uint8 and world.train_images.shape[1:] == (28, 28)
    assert set(world.train_labels.tolist()) == set(range(20))
    assert len(world.class_names) == len(world.synsets) == 20


def test_world_is_deterministic(world):
    again = make_world(fashion_test=500)
    for name in ("train_origin", "test_origin", "train_images", "test_labels"):
        np.testing.assert_array_equal(getattr(world, name), getattr(again, name))
    other = make_world(fashion_test=500, seed=1)
    assert not np.array_equal(world.test_origin, other.test_origin)


def test_make_world_validates_sizes():
    with pytest.raises(ValueError, match="fashion_test"):
        make_world(fashion_test=20_000)
    with pytest.raises(ValueError, match="reference_per_node"):
        make_world(reference_per_node=0)


def test_task_remaps_labels(world):
    images, labels, names, synsets = world.task([9, 5, 7])
    assert names == ["ankle boot", "sandal", "sneaker"]
    assert synsets == ["boot.n.01", "sandal.n.01", "gym_shoe.n.01"]
    assert images.shape == (150, 28, 28) and np.bincount(labels).tolist() == [50, 50, 50]
    boots = world.test_images[world.test_labels == 9]
    np.testing.assert_array_equal(images[labels == 0], boots)
    with pytest.raises(ValueError, match="distinct"):
        world.task([5, 5])
    with pytest.raises(ValueError, match="0..19"):
        world.task([20])


# --- development and held-out test images -----------------------------------------------------

@pytest.fixture(scope="module")
def development_and_held_out(world):
    return held_out_split(world, fashion_test=1200, digits_development=0.3, seed=4)


def test_held_out_split_shares_no_image_with_expert_training_or_reference(
        world, development_and_held_out):
    development, held_out = development_and_held_out
    reference = np.concatenate(list(world.reference_origin.values()))
    origins = [development.test_origin, held_out.test_origin, world.train_origin, reference]
    assert sum(len(o) for o in origins) == len(np.unique(np.concatenate(origins)))
    # By content too: no evaluation image is one an expert trained on or a reference image.
    seen = {image.tobytes() for image in world.train_images}
    seen |= {image.tobytes() for images in world.reference.values() for image in images}
    dev, test = ({image.tobytes() for image in w.test_images}
                 for w in development_and_held_out)
    assert not (dev & test or dev & seen or test & seen)
    # Experts and labels stay the same: the training and reference splits are the world's own.
    for split in development_and_held_out:
        assert split.train_images is world.train_images and split.reference is world.reference


def test_held_out_split_records_where_each_image_comes_from(development_and_held_out):
    images, labels = _sources()
    for split in development_and_held_out:
        np.testing.assert_array_equal(split.test_images, images[split.test_origin])
        np.testing.assert_array_equal(split.test_labels, labels[split.test_origin])


def test_held_out_fashion_images_are_new_and_digits_are_divided(world, development_and_held_out):
    development, held_out = development_and_held_out
    fashion = held_out.test_labels < 10
    assert np.bincount(held_out.test_labels[fashion]).tolist() == [120] * 10
    assert not set(held_out.test_origin[fashion]) & set(world.test_origin)
    # Development keeps the world's Fashion test images and 30% of each digit's test images.
    np.testing.assert_array_equal(development.test_origin[development.test_labels < 10],
                                  world.test_origin[world.test_labels < 10])
    for digit in range(10, 20):
        in_world = world.test_origin[world.test_labels == digit]
        dev = development.test_origin[development.test_labels == digit]
        test = held_out.test_origin[held_out.test_labels == digit]
        assert sorted(np.concatenate([dev, test])) == sorted(in_world)
        assert len(dev) == round(0.3 * len(in_world))


def test_held_out_split_tasks_and_determinism(world, development_and_held_out):
    development, held_out = development_and_held_out
    images, labels, names, _ = held_out.task([8, 13])
    assert names == ["bag", "three"] and len(images) == 120 + (held_out.test_labels == 13).sum()
    again = held_out_split(world, fashion_test=1200, digits_development=0.3, seed=4)
    other = held_out_split(world, fashion_test=1200, digits_development=0.3, seed=5)
    np.testing.assert_array_equal(again[1].test_origin, held_out.test_origin)
    assert not np.array_equal(other[1].test_origin, held_out.test_origin)


@pytest.mark.parametrize("kwargs, match", [
    ({"fashion_test": 9_600}, "fashion_test"),  # only 9,500 t10k images lie outside the world's
    ({"fashion_test": 0}, "fashion_test"),
    ({"digits_development": 1.0}, "digits_development"),
    ({"digits_development": 0}, "digits_development"),
])
def test_held_out_split_validates(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        held_out_split(world, **kwargs)


def test_group_labels():
    mask, targets = group_labels(np.array([12, 3, 10, 11]), [(10, 12), (11,)])
    assert mask.tolist() == [True, False, True, True] and targets.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="disjoint"):
        group_labels([1], [(1, 2), (2,)])


# --- the trained experts -----------------------------------------------------------------------

def test_expert_specs_are_heterogeneous_and_anonymous():
    assert len(WORLD_EXPERTS) >= 8
    assert len({spec.name for spec in WORLD_EXPERTS}) == len(WORLD_EXPERTS)
    words = {word.lower() for row in load_class_table()
             for word in row["name"].split() + row["synset"].split(".")[:1]}
    assert not any(word in spec.name.lower() for spec in WORLD_EXPERTS for word in words)
    label_spaces = {tuple(map(tuple, spec.heads)) for spec in WORLD_EXPERTS}
    assert len(label_spaces) == len(WORLD_EXPERTS)
    assert any(len(head) > 1 for spec in WORLD_EXPERTS for head in spec.heads)  # superclasses


def test_trained_experts_beat_chance_on_their_own_classes(world, trained):
    for result in trained:
        assert isinstance(result.expert, TorchExpert)
        assert result.expert.n_outputs == len(result.spec.heads)
        accuracy = result.spec.accuracy(result.expert, world.test_images, world.test_labels)
        chance = 1 / len(result.spec.heads)
        assert accuracy > chance + 0.1, (result.spec.name, accuracy)


def test_second_build_loads_from_the_cache(world, trained, expert_cache):
    assert all(result.trained for result in trained)
    hub = build_world_hub(world, cache_dir=expert_cache, include_pretrained=False,
                          training_scale=TEST_SCALE, verbose=0)
    assert isinstance(hub, ModelHub) and hub.names == [spec.name for spec in WORLD_EXPERTS]
    files = sorted((expert_cache / "world" / "experts").iterdir())
    assert len(files) == len(WORLD_EXPERTS) and all(f.suffix == ".safetensors" for f in files)
    probe = as_image_batch(world.test_images[:8])
    for result in trained:
        np.testing.assert_array_equal(hub[result.spec.name].logits(probe),
                                      result.expert.logits(probe))
    again = train_world_experts(world, cache_dir=expert_cache, training_scale=TEST_SCALE,
                                verbose=0)
    assert not any(result.trained for result in again)


def test_cache_key_follows_training_config(world, expert_cache, trained):
    spec = WORLD_EXPERTS[3]  # the small MLP: quick to train
    assert load_or_train_expert(spec, world, cache_dir=expert_cache,
                                training_scale=TEST_SCALE + 0.1).trained
    assert not load_or_train_expert(spec, world, cache_dir=expert_cache,
                                    training_scale=TEST_SCALE).trained


def test_corrupt_cached_weights_are_retrained(world, tmp_path):
    spec = WORLD_EXPERTS[3]
    first = load_or_train_expert(spec, world, cache_dir=tmp_path, training_scale=0.2)
    (path,) = (tmp_path / "world" / "experts").iterdir()
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        second = load_or_train_expert(spec, world, cache_dir=tmp_path, training_scale=0.2)
    assert first.trained and second.trained
    probe = as_image_batch(world.test_images[:8])
    np.testing.assert_array_equal(first.expert.logits(probe), second.expert.logits(probe))


def test_training_is_deterministic_and_leaves_torch_settings_alone(world):
    spec = WORLD_EXPERTS[5]  # digit parity, a CNN
    rng_state = torch.get_rng_state()
    torch.set_num_threads(2)  # differs from the training's one thread
    try:
        runs = [load_or_train_expert(spec, world, cache_dir=False, training_scale=0.05)
                for _ in range(2)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.get_rng_state(), rng_state)
    first, second = (run.expert.module.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)


# --- pretrained experts and the oracle ---------------------------------------------------------

def test_efficientnet_lite_experts_load_and_classify():
    pytest.importorskip("efficientnet_lite_pytorch")
    experts = efficientnet_lite_experts()
    assert [e.name for e in experts] == ["efficientnet-lite0", "efficientnet-lite1",
                                         "efficientnet-lite2"]
    assert [e.input_size for e in experts] == [(224, 224), (240, 240), (260, 260)]
    from sklearn.datasets import load_sample_images

    flower = as_image_batch(load_sample_images().images[1:], image_size=(224, 224))
    logits = experts[0].logits(flower)
    assert logits.shape == (1, 1000)
    assert logits.argmax() == 985  # ImageNet "daisy" (n11939491) in sorted-wnid order


def test_world_hub_includes_pretrained_models(world, trained, expert_cache):
    hub = build_world_hub(world, cache_dir=expert_cache, training_scale=TEST_SCALE, verbose=0)
    assert hub.names[:len(WORLD_EXPERTS)] == [spec.name for spec in WORLD_EXPERTS]
    pretrained = hub.names[len(WORLD_EXPERTS):]
    assert {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"} <= set(pretrained)


def test_supervised_oracle_on_footwear(world):
    oracle = supervised_oracle(world, [5, 7, 9], max_per_class=300)
    images, labels, _, _ = world.task([5, 7, 9])
    assert oracle.score(images, labels) > 0.8
    assert set(oracle.predict(images).tolist()) == {0, 1, 2}
