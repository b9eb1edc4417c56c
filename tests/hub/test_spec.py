"""Experts as specifications: built on first use, released after labelling, checked on build.

The experts are the digit MLPs of tests/conftest.py saved as safetensors files and named by a
"torch:package.module:factory" specification, as a hub file names them.
"""

import gc
import pickle
import re
import sys
import textwrap
import threading
import weakref

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler
from skmll.hub import (
    ExpertError,
    LazyExpert,
    TorchExpert,
    create_expert,
    describe_head,
    list_expert_sources,
    register_expert,
    run_expert,
    using_expert,
)
from skmll.hub import _base
from skmll.hub._hf_expert import config_head_names
from skmll.hub._timm_expert import imagenet_head_names
from skmll.labelling._pretest import node_shards

from ..conftest import DIGIT_NAMES
from . import _factories

FACTORY = "torch:tests.hub._factories:mlp"


def save_weights(expert, path):
    save_file({k: v.contiguous() for k, v in expert.module.state_dict().items()}, path)
    return path


def lazy_spec(expert, path, **declared):
    """A LazyExpert for a saved digit expert, declaring what is given."""
    return LazyExpert(FACTORY, name=expert.name, weights=path, input_size=[8, 8], channels=1,
                      factory_kwargs={"n_outputs": expert.n_outputs}, **declared)


@pytest.fixture(scope="module")
def weight_files(digit_experts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {e.name: save_weights(e, folder / f"{e.name}.safetensors") for e in digit_experts}


@pytest.fixture
def lazy_hub(digit_experts, weight_files):
    """The digit experts as specifications declaring n_outputs and fingerprint."""
    return ModelHub([lazy_spec(e, weight_files[e.name], n_outputs=e.n_outputs,
                               fingerprint=e.fingerprint) for e in digit_experts])


@pytest.fixture
def built():
    """How many modules the factory has built since the test began."""
    start = len(_factories.BUILT)
    yield lambda: len(_factories.BUILT) - start


@pytest.fixture
def images():
    return np.random.default_rng(3).random((6, 8, 8, 3), dtype=np.float32)


# --- declarations and building -------------------------------------------------------------

def test_declared_values_are_known_without_building(digit_experts, weight_files, built,
                                                    images):
    eager = digit_experts[0]
    expert = lazy_spec(eager, weight_files[eager.name], n_outputs=5,
                       fingerprint=eager.fingerprint, head_names=list("abcde"))
    assert (expert.name, expert.n_outputs, expert.fingerprint) == (
        eager.name, 5, eager.fingerprint)
    assert expert.head_names == list("abcde") and describe_head(expert, 4) == "e (head 4)"
    assert built() == 0 and not expert.is_loaded
    np.testing.assert_allclose(run_expert(expert, images), run_expert(eager, images), rtol=1e-6)
    assert built() == 1 and expert.is_loaded
    run_expert(expert, images)
    assert built() == 1                      # built once, kept until released
    expert.release()
    assert not expert.is_loaded


def test_undeclared_values_build_once_and_are_then_known(digit_experts, weight_files, built):
    eager = digit_experts[2]
    expert = lazy_spec(eager, weight_files[eager.name])
    assert expert.fingerprint == eager.fingerprint     # the adapter's key: labels are shared
    assert expert.n_outputs == 2
    assert built() == 1 and not expert.is_loaded       # one build told both, then released
    assert expert.spec["fingerprint"] == eager.fingerprint and expert.spec["n_outputs"] == 2


@pytest.mark.parametrize("declared, message", [
    ({"n_outputs": 4}, "has 5 outputs; the specification declares n_outputs=4"),
    ({"head_names": ["x", "y"]}, "has 5 outputs; the specification declares 2 head names"),
    ({"fingerprint": "0" * 32}, "has fingerprint '[0-9a-f]+'; the specification declares '0+'"),
])
def test_a_model_that_contradicts_its_declaration_raises(digit_experts, weight_files, images,
                                                         declared, message):
    eager = digit_experts[0]
    expert = lazy_spec(eager, weight_files[eager.name], **declared)
    with pytest.raises(ExpertError, match=message):
        run_expert(expert, images)
    assert not expert.is_loaded


def test_weights_changed_after_the_fingerprint_was_recorded_raise(digit_experts, tmp_path,
                                                                  images):
    old, new = digit_experts[0], digit_experts[1]     # both have five outputs
    path = save_weights(old, tmp_path / "model.safetensors")
    expert = lazy_spec(old, path, n_outputs=5, fingerprint=old.fingerprint)
    save_weights(new, path)                          # replaced on disk, spec unchanged
    with pytest.raises(ExpertError, match="weights or preprocessing changed"):
        expert.logits(images)


def test_a_model_that_cannot_be_built_is_an_expert_error(tmp_path, images):
    expert = LazyExpert(FACTORY, name="missing", weights=tmp_path / "absent.safetensors",
                        input_size=[8, 8], factory_kwargs={"n_outputs": 3}, n_outputs=3)
    assert expert.n_outputs == 3                     # declared: no build needed
    with pytest.raises(ExpertError, match="'missing'.*could not be built from 'torch:tests"):
        run_expert(expert, images)


def test_arguments_are_checked_when_the_spec_is_made(tmp_path):
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['input_szie'\] for source "
                                        r"'torch:'.*'input_size'"):
        LazyExpert(FACTORY, input_szie=[8, 8])
    with pytest.raises(ValueError, match="names no model after 'onnx:'"):
        LazyExpert("onnx:")
    with pytest.raises(ValueError, match="unknown expert source 'tflite:m.tflite'"):
        LazyExpert("tflite:m.tflite")
    with pytest.raises(TypeError, match="n_outputs must be an int >= 1"):
        LazyExpert(FACTORY, n_outputs=0)
    with pytest.raises(TypeError, match="head_names must be a list of str"):
        LazyExpert(FACTORY, head_names="abc")
    with pytest.raises(ValueError, match="3 head names for 2 outputs"):
        LazyExpert(FACTORY, n_outputs=2, head_names=["a", "b", "c"])


def test_local_paths_become_absolute_and_name_the_expert(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    expert = LazyExpert("onnx:models/cats.onnx", base_dir=tmp_path)
    assert expert.source == f"onnx:{tmp_path / 'models' / 'cats.onnx'}"
    assert expert.name == "cats"
    monkeypatch.chdir(tmp_path / "models")
    by_weights = LazyExpert(FACTORY, weights="w/dogs.safetensors")
    assert by_weights.kwargs["weights"] == str(tmp_path / "models" / "w" / "dogs.safetensors")
    assert by_weights.name == "dogs"
    assert LazyExpert("hf:org/model").source == "hf:org/model"   # no such folder: a Hub id


# --- pickling and release ------------------------------------------------------------------

def test_pickles_as_its_specification(digit_experts, weight_files, images):
    eager = digit_experts[0]
    expert = lazy_spec(eager, weight_files[eager.name], n_outputs=5)
    expected = expert.logits(images)
    assert expert.is_loaded
    weights_bytes = sum(p.numel() * 4 for p in eager.module.parameters())
    payload = pickle.dumps(expert)
    assert len(payload) < weights_bytes / 5          # the model is not in it
    copy = pickle.loads(payload)
    assert not copy.is_loaded and copy.fingerprint == eager.fingerprint   # found value kept
    np.testing.assert_allclose(copy.logits(images), expected, rtol=1e-6)


def test_using_expert_releases_only_what_it_built(digit_experts, weight_files, images):
    eager = digit_experts[1]
    expert = lazy_spec(eager, weight_files[eager.name], n_outputs=5)
    with using_expert(expert):
        with using_expert(expert):                  # nested (or concurrent) use
            expert.logits(images)
        assert expert.is_loaded                      # still in use by the outer block
    assert not expert.is_loaded
    expert.load()
    with using_expert(expert):
        expert.logits(images)
    assert expert.is_loaded                          # built before: left built


def test_threads_share_one_build(digit_experts, weight_files, images, built):
    eager = digit_experts[1]
    expert = lazy_spec(eager, weight_files[eager.name], n_outputs=5)
    results = []

    def work():
        with using_expert(expert):
            results.append(expert.logits(images))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(np.array_equal(r, results[0]) for r in results)
    assert 1 <= built() <= 4 and not expert.is_loaded


# --- labelling, fit and predict ------------------------------------------------------------

class Liveness:
    """Weak references to the modules the factory builds: how many are alive at each build."""

    def __init__(self, monkeypatch):
        self.alive_at_build = []
        self._modules = []
        build = _factories.mlp

        def counted(*args, **kwargs):
            gc.collect()
            self.alive_at_build.append(sum(ref() is not None for ref in self._modules))
            module = build(*args, **kwargs)
            self._modules.append(weakref.ref(module))
            return module

        monkeypatch.setattr(_factories, "mlp", counted)

    def alive(self):
        gc.collect()
        return sum(ref() is not None for ref in self._modules)


def test_labelling_holds_one_model_at_a_time(lazy_hub, digit_sdag, tmp_path, monkeypatch):
    liveness = Liveness(monkeypatch)
    labeler = ModelLabeler(digit_sdag, images_per_shard=100, cache_dir=tmp_path,
                           verbose=0).fit(lazy_hub)
    shards = node_shards(digit_sdag, np.flatnonzero(digit_sdag.n_images > 0), 100)
    assert len(liveness.alive_at_build) == len(lazy_hub) * len(shards) > len(lazy_hub)
    assert max(liveness.alive_at_build) == 0         # each released before the next is built
    assert liveness.alive() == 0 and not any(e.is_loaded for e in lazy_hub)
    assert set(labeler.labels_) == set(lazy_hub.names)


def test_fit_builds_nothing_and_predict_only_the_selected(lazy_hub, digit_experts, digit_sdag,
                                                          digit_splits, tmp_path, monkeypatch):
    # Labels computed for the live experts are the lazy ones' (same fingerprints): relabelling
    # the specifications reads them and runs no model.
    cache = tmp_path / "labels"
    eager_labeler = ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(
        ModelHub(digit_experts))
    liveness = Liveness(monkeypatch)
    labeler = ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(lazy_hub)
    assert labeler.n_forward_images_ == 0 and liveness.alive_at_build == []

    clf = MLLZeroShotClassifier(DIGIT_NAMES, labeler, k=2, cache_dir=tmp_path / "text").fit()
    assert liveness.alive_at_build == [] and not any(e.is_loaded for e in lazy_hub)
    text = clf.explain()
    assert liveness.alive_at_build == []             # explaining reads no weights either

    images, _ = digit_splits.test
    predicted = clf.predict(images[:60])
    selected = {name for served in clf.experts_.values() for name, _, _ in served}
    assert {e.name for e in lazy_hub if e.is_loaded} == selected
    assert len(liveness.alive_at_build) == len(selected) < len(lazy_hub)
    eager = MLLZeroShotClassifier(DIGIT_NAMES, eager_labeler, k=2,
                                  cache_dir=tmp_path / "text").fit()
    np.testing.assert_array_equal(predicted, eager.predict(images[:60]))
    assert text == eager.explain()


# --- head names ----------------------------------------------------------------------------

def test_explain_names_heads_where_the_expert_says(lazy_hub, digit_sdag, tmp_path):
    named = ModelHub([
        lazy_spec(e, e.kwargs["weights"], n_outputs=e.n_outputs, fingerprint=e.fingerprint,
                  head_names=[f"{w} digit" for w in ("zero", "one", "two", "three", "four")])
        if e.name == "expert-a" else e for e in lazy_hub])
    labeler = ModelLabeler(digit_sdag, cache_dir=tmp_path, verbose=0).fit(named)
    clf = MLLZeroShotClassifier(DIGIT_NAMES, labeler, k=4,
                                cache_dir=tmp_path / "text").fit()
    text = clf.explain()
    serving = [line for line in text.splitlines() if line.strip().startswith("expert-a:")]
    assert serving and all("digit (head " in line for line in serving)
    weights = next(w for name, _, w in clf.experts_["three"] if name == "expert-a")
    assert weights.argmax() == 3                     # its 'three' head serves 'three' most
    assert f"[three digit (head 3): {weights[3]:.2f}" in text
    anonymous = [line for line in text.splitlines() if line.strip().startswith("expert-b:")]
    assert anonymous and all(re.search(r"\[h\d:\d\.\d\d", line) for line in anonymous)
    assert not any(e.is_loaded for e in named)


def test_single_logit_heads_are_named_as_the_two_heads_skmll_reads():
    class Sigmoid:
        name, n_outputs, head_names = "nsfw", 1, ["explicit"]

        def logits(self, images): ...

    assert describe_head(Sigmoid(), 1) == "explicit (head 1)"
    assert describe_head(Sigmoid(), 0) == "not explicit (head 0)"


def test_adapters_read_head_names_from_their_models():
    from transformers import ViTConfig

    config = ViTConfig(num_labels=2, id2label={0: "tabby", 1: "beagle"})
    assert config_head_names(config) == ["tabby", "beagle"]
    assert config_head_names(ViTConfig(num_labels=3)) is None     # LABEL_0.. placeholders
    import timm

    imagenet = timm.create_model("test_resnet", num_classes=1000)
    names = imagenet_head_names(imagenet)
    assert len(names) == 1000 and names[610].startswith("jersey, T-shirt")
    assert imagenet_head_names(timm.create_model("test_resnet", num_classes=7)) is None


def test_torch_expert_checks_given_head_names():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    expert = TorchExpert(net, name="rgb", input_size=(4, 4), head_names=["r", "g", "b"])
    assert expert.head_names == ["r", "g", "b"]
    with pytest.raises(ValueError, match="2 head names for 3 outputs"):
        TorchExpert(net, name="rgb", input_size=(4, 4), head_names=["r", "g"])


# --- the registry --------------------------------------------------------------------------

@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test."""
    monkeypatch.setattr(_base, "_SOURCES", dict(_base._SOURCES))
    return _base._SOURCES


def test_re_registering_a_source_warns(registry):
    class Replacement(TorchExpert):
        pass

    with pytest.warns(UserWarning, match="'torch' of skmll.hub._torch_expert.TorchExpert is "
                                         "replaced by .*Replacement"):
        register_expert("torch")(Replacement)
    assert registry["torch"] is Replacement
    with pytest.raises(ValueError, match="without ':'"):
        register_expert("a:b")


def test_sources_without_prefix_name_paths():
    with pytest.raises(ValueError, match="'models/cat.onnx' looks like a path: prefix it"):
        create_expert("models/cat.onnx")


def test_another_package_adds_a_source_through_an_entry_point(registry, tmp_path, monkeypatch,
                                                              digit_experts, weight_files,
                                                              images):
    """A real installed distribution (a dist-info folder on sys.path) declares the source."""
    info = tmp_path / "digit_zoo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: digit-zoo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[skmll.experts]\ndigitzoo = digit_zoo:ZooExpert\n")
    (tmp_path / "digit_zoo.py").write_text(textwrap.dedent('''
        from skmll.hub import TorchExpert, load_torch_weights
        from tests.hub._factories import mlp

        class ZooExpert(TorchExpert):
            """Digit MLPs by file name: 'digitzoo:<path>' with the number of outputs."""

            @classmethod
            def from_source(cls, spec, *, width, name=None):
                module = mlp(width)
                module.load_state_dict(load_torch_weights(spec))
                return cls(module, name=name or spec, input_size=(8, 8), channels=1)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "digit_zoo", raising=False)
    assert "digitzoo" in list_expert_sources()
    assert "digit_zoo" not in sys.modules           # listed without importing the package
    eager = digit_experts[3]
    made = create_expert(f"digitzoo:{weight_files[eager.name]}", width=10, name="zoo")
    np.testing.assert_allclose(made.logits(images), eager.logits(images), rtol=1e-6)
    lazy = LazyExpert(f"digitzoo:{weight_files[eager.name]}", width=10, n_outputs=10,
                      fingerprint=eager.fingerprint)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['input_size'\]"):
        LazyExpert(f"digitzoo:{weight_files[eager.name]}", width=10, input_size=(8, 8))
    np.testing.assert_allclose(lazy.logits(images), eager.logits(images), rtol=1e-6)
    monkeypatch.delitem(sys.modules, "digit_zoo")
