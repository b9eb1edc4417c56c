"""A label directory opened without images or weights: the SDAG manifest, save and load."""

import pickle
import shutil

import numpy as np
import pytest

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import LazyExpert
from skmll.labelling import load_label_dir, save_label_dir, sdag_key

from ..cli._factories import BUILD_LOG, builds

FACTORY = "torch:tests.cli._factories:channel_means"


def spec(name, weights, **declared):
    return LazyExpert(FACTORY, name=name, factory_kwargs={"tag": name, "weights": weights},
                      input_size=[5, 5], **declared)


@pytest.fixture(scope="module")
def fruit_images():
    """5 x 9 arrays (not files) for three fruit synsets, each around its own colour."""
    rng = np.random.default_rng(3)
    shades = {"banana.n.02": (230, 210, 40), "lemon.n.01": (200, 220, 20),
              "plum.n.02": (90, 20, 110)}
    return {name: np.clip(np.array(rgb) + rng.integers(-20, 20, (3 + i, 5, 9, 3)), 0, 255)
            .astype(np.uint8) for i, (name, rgb) in enumerate(shades.items())}


@pytest.fixture(scope="module")
def fruit_sdag(fruit_images, wordnet):
    return SemanticDAG.from_wordnet(fruit_images, wordnet=wordnet)


def hub():
    return ModelHub([spec("rgb", [[8.0, 0, 0], [0, 8.0, 0], [0, 0, 8.0]]),
                     spec("blue-or-not", [[-2.0, -2.0, 4.0], [2.0, 2.0, -4.0]])])


def test_manifest_describes_the_sdag_without_its_images(fruit_sdag):
    described = SemanticDAG.from_manifest(fruit_sdag.to_manifest())
    assert described.node_ids == fruit_sdag.node_ids and described.edges == fruit_sdag.edges
    assert described.texts == fruit_sdag.texts
    np.testing.assert_array_equal(described.n_images, fruit_sdag.n_images)
    np.testing.assert_array_equal(described.has_data_below, fruit_sdag.has_data_below)
    assert [described.node_data_hash(n) for n in described.node_ids] == \
        [fruit_sdag.node_data_hash(n) for n in fruit_sdag.node_ids]
    assert sdag_key(described) == sdag_key(fruit_sdag)
    # the recorded keys survive pickling (a worker or a clone would otherwise hash no images)
    assert sdag_key(pickle.loads(pickle.dumps(described))) == sdag_key(fruit_sdag)

    with pytest.raises(ValueError, match="read from a manifest.*'banana.n.02'"):
        described.iter_batches(4, nodes=["fruit.n.01", "banana.n.02"])
    assert list(described.iter_batches(4, nodes=["fruit.n.01"])) == []   # a node without images


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.update(version=2), "version 2"),
    (lambda m: m.update(format="other"), "not an SDAG manifest"),
    (lambda m: m["nodes"][0].update(n_images=-1), "n_images=-1"),
    (lambda m: next(n for n in m["nodes"] if n["n_images"]).update(data_key="edited"),
     "data_hash does not match"),
    (lambda m: m["edges"].append(["plum.n.02", "nowhere.n.01"]), "not a node"),
])
def test_a_bad_manifest_is_refused(fruit_sdag, damage, message):
    manifest = fruit_sdag.to_manifest()
    damage(manifest)
    with pytest.raises(ValueError, match=message):
        SemanticDAG.from_manifest(manifest)


def test_a_saved_directory_opens_with_the_same_labels_and_builds_nothing(
        fruit_sdag, tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_LOG, str(tmp_path / "builds.log"))
    # labelled in memory, then saved: the records are written by save_label_dir itself
    labeler = ModelLabeler(fruit_sdag, cache_dir=False, verbose=0).fit(hub())
    save_label_dir(labeler, tmp_path / "labels")
    built = builds(tmp_path / "builds.log")

    opened = load_label_dir(tmp_path / "labels", delta=0.5, trust_code=True)
    assert builds(tmp_path / "builds.log") == built          # no model built to open it
    assert opened.hub_.names == ["rgb", "blue-or-not"]
    assert not any(expert.is_loaded for expert in opened.hub_)
    labeler.set_params(delta=0.5).update_mixing()
    for name in labeler.hub_.names:
        np.testing.assert_array_equal(opened.labels_[name].scores, labeler.labels_[name].scores)
        np.testing.assert_array_equal(opened.labels_[name].probabilities,
                                      labeler.labels_[name].probabilities)

    def classifier(on):
        return MLLZeroShotClassifier(["banana", "plum"], on, k=1, cache_dir=False).fit()

    here, there = classifier(labeler), classifier(opened)
    assert all([e[:2] for e in there.experts_[c]] == [e[:2] for e in here.experts_[c]]
               for c in ("banana", "plum"))
    selected = {name for served in there.experts_.values() for name, _, _ in served}
    assert builds(tmp_path / "builds.log") == built          # fit reads labels only
    images = np.stack([np.full((6, 6, 3), (230, 210, 40), np.uint8),
                       np.full((6, 6, 3), (90, 20, 110), np.uint8)])
    expected = here.predict_proba(images)
    before = len(builds(tmp_path / "builds.log"))
    np.testing.assert_allclose(there.predict_proba(images), expected)
    new = builds(tmp_path / "builds.log")[before:]
    assert sorted(new) == sorted(selected) and len(selected) < len(opened.hub_)  # selected only


def test_a_directory_lacking_labels_is_refused(fruit_sdag, fruit_images, tmp_path):
    folder = tmp_path / "labels"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_label_dir(folder)
    labeler = ModelLabeler(fruit_sdag, cache_dir=folder, verbose=0).fit(hub())
    save_label_dir(labeler, folder)

    unknown = ModelHub([*load_label_dir(folder).hub_,
                        spec("green", [[0, 5.0, 0], [0, -5.0, 0]], n_outputs=2,
                             fingerprint="green-v1")])
    with pytest.raises(ValueError, match="no labels of expert 'green'"):
        load_label_dir(folder, hub=unknown)
    with pytest.raises(ValueError, match="'rgb' does not declare n_outputs and fingerprint"):
        load_label_dir(folder, hub=hub())

    # the same experts labelled without the lemons' images, described with them
    partial = tmp_path / "partial"
    fewer = {n: images for n, images in fruit_images.items() if n != "lemon.n.01"}
    without_lemons = SemanticDAG(fruit_sdag.node_ids, edges=fruit_sdag.edges, data=fewer)
    save_label_dir(ModelLabeler(without_lemons, cache_dir=partial, verbose=0).fit(hub()), partial)
    shutil.copy(folder / "sdag.json", partial / "sdag.json")
    with pytest.raises(ValueError, match="lacks the labels of expert 'rgb' for 1 of the SDAG's "
                                         "3 nodes with images \\('lemon.n.01'\\)"):
        load_label_dir(partial)


def test_a_bundled_hugging_face_folder_travels_with_the_directory(fruit_sdag, fruit_images,
                                                                  tmp_path):
    pytest.importorskip("transformers")
    from ..hub.test_hf_expert import save_vit

    save_vit(tmp_path / "vit-fruit", seed=11)
    expert = LazyExpert(f"hf:{tmp_path / 'vit-fruit'}", name="vit")
    labeler = ModelLabeler(fruit_sdag, cache_dir=False, verbose=0).fit(ModelHub([expert]))
    save_label_dir(labeler, tmp_path / "labels", bundle=True)
    bundled = tmp_path / "labels" / "models" / "vit" / "vit-fruit"
    assert sorted(p.name for p in bundled.iterdir()) == sorted(
        p.name for p in (tmp_path / "vit-fruit").iterdir())
    assert 'source = "hf:models/vit/vit-fruit"' in (tmp_path / "labels" / "hub.toml").read_text()

    images = np.concatenate([fruit_images["banana.n.02"], fruit_images["plum.n.02"]])
    expected = expert.logits(images)
    shutil.copytree(tmp_path / "labels", tmp_path / "away")
    shutil.rmtree(tmp_path / "labels")
    shutil.rmtree(tmp_path / "vit-fruit")
    opened = load_label_dir(tmp_path / "away")          # HF without remote code: no consent
    np.testing.assert_allclose(opened.hub_["vit"].logits(images), expected, rtol=1e-5)
