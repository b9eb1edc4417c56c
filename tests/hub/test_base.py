"""The hub machinery: ModelHub, run_expert, image input, TorchExpert and the registry."""

import copy
import pickle
import types

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from skmll.hub import (
    ExpertError,
    ModelHub,
    TorchExpert,
    as_image_batch,
    create_expert,
    expert_fingerprint,
    list_expert_sources,
    preprocess,
    run_expert,
)


class ScriptedExpert:
    """A plain protocol expert whose logits are a given function of the images."""

    def __init__(self, name="scripted", n_outputs=2, compute=None):
        self.name = name
        self.n_outputs = n_outputs
        self.compute = compute or (lambda images: np.stack(
            [images.mean(axis=(1, 2, 3)) * (k + 1) for k in range(n_outputs)], axis=1))

    def logits(self, images):
        return self.compute(images)


def small_net(seed, n_outputs=3, channels=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(16, n_outputs)).eval()


@pytest.fixture
def images():
    return np.random.default_rng(0).random((5, 12, 12, 3), dtype=np.float32)


# --- ModelHub ------------------------------------------------------------------------------------

def test_hub_keeps_order_and_finds_experts_by_name():
    a, b = ScriptedExpert("a"), ScriptedExpert("b", n_outputs=3)
    hub = ModelHub([a, b])
    assert hub.names == ["a", "b"] and len(hub) == 2
    assert hub["b"] is b and hub[0] is a
    assert hub.subset(["b", "a"]).names == ["b", "a"]
    with pytest.raises(KeyError, match="no expert named 'c'.*'a', 'b'"):
        hub["c"]


def test_hub_rejects_duplicate_names():
    with pytest.raises(ValueError, match="duplicate expert name 'a'"):
        ModelHub([ScriptedExpert("a"), ScriptedExpert("a", n_outputs=4)])


@pytest.mark.parametrize("attributes, message", [
    ({"name": ""}, "non-empty str attribute 'name'"),
    ({"name": 3}, "non-empty str attribute 'name'"),
    ({"n_outputs": 0}, "'n_outputs' >= 1"),
    ({"n_outputs": True}, "'n_outputs' >= 1"),
    ({"n_outputs": 2.0}, "'n_outputs' >= 1"),
    ({"logits": "not callable"}, "method 'logits"),
])
def test_hub_validates_experts(attributes, message):
    expert = ScriptedExpert()
    for key, value in attributes.items():
        setattr(expert, key, value)
    with pytest.raises(TypeError, match=message):
        ModelHub([expert])


# --- run_expert ----------------------------------------------------------------------------------

@pytest.mark.parametrize("compute, message", [
    (lambda images: np.zeros((len(images), 3)), r"shape \(5, 3\); expected \(5, 2\)"),
    (lambda images: np.zeros((len(images) - 1, 2)), r"shape \(4, 2\)"),
    (lambda images: np.full((len(images), 2), np.nan), "NaN or infinite"),
    (lambda images: np.full((len(images), 2), -np.inf), "NaN or infinite"),
    (lambda images: np.full((len(images), 2), "x"), "dtype"),
])
def test_run_expert_names_the_expert_on_bad_output(images, compute, message):
    with pytest.raises(ExpertError, match=f"expert 'broken': .*{message}") as info:
        run_expert(ScriptedExpert("broken", compute=compute), images)
    assert info.value.expert_name == "broken"


def test_run_expert_wraps_exceptions_from_the_expert(images):
    def fail(images):
        raise KeyError("missing layer")

    with pytest.raises(ExpertError, match="'failing': logits\\(\\) raised KeyError") as info:
        run_expert(ScriptedExpert("failing", compute=fail), images)
    assert isinstance(info.value.__cause__, KeyError)


def test_expert_error_survives_pickling_for_parallel_workers():
    error = pickle.loads(pickle.dumps(ExpertError("m", "boom")))
    assert error.expert_name == "m" and str(error) == "expert 'm': boom"


def test_run_expert_returns_float32_and_accepts_tensors(images):
    expert = ScriptedExpert(compute=lambda x: torch.from_numpy(x.mean(axis=(1, 2))).double()[:, :2])
    out = run_expert(expert, images)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images.mean(axis=(1, 2))[:, :2], rtol=1e-6)


def test_single_output_expert_becomes_two_heads(images):
    expert = ScriptedExpert(n_outputs=1)
    out = run_expert(expert, images)
    z = images.mean(axis=(1, 2, 3))
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_allclose(out[:, 1], z, rtol=1e-6)
    # the two heads' softmax is the sigmoid of the single logit
    np.testing.assert_allclose(np.exp(out[:, 1]) / np.exp(out).sum(axis=1), 1 / (1 + np.exp(-z)),
                               rtol=1e-5)


def test_expert_fingerprint_is_the_declared_one_or_none_without_calling_the_expert():
    def never_called(images):
        raise AssertionError("the fingerprint called the expert")

    plain_a, plain_b = (ScriptedExpert("p", compute=never_called) for _ in range(2))
    assert expert_fingerprint(plain_a) is None and expert_fingerprint(plain_b) is None
    plain_a.fingerprint = "weights-v1"
    declared = expert_fingerprint(plain_a)
    assert declared != expert_fingerprint(plain_b)
    plain_b.fingerprint = "weights-v1"
    assert expert_fingerprint(plain_b) == declared


# --- as_image_batch and preprocess ---------------------------------------------------------------

@pytest.mark.parametrize("X, error, message", [
    (np.zeros((8, 8)), ValueError, r"shape \(n, H, W\) or \(n, H, W, C\).*shape \(8, 8\)"),
    (np.zeros((2, 8, 8, 3, 1)), ValueError, r"shape \(n, H, W\) or \(n, H, W, C\)"),
    (np.zeros((2, 8, 8, 2)), ValueError, "1, 3 or 4 channels"),
    (np.full((2, 8, 8, 3), np.nan), ValueError, "NaN or infinite"),
    (np.full((2, 8, 8, 3), 1.5), ValueError, r"must lie in \[0, 1\]"),
    (np.full((2, 8, 8, 3), -0.1), ValueError, r"must lie in \[0, 1\]"),
    (np.zeros((0, 8, 8, 3)), ValueError, "empty"),
    ([], ValueError, "empty"),
    (np.zeros((2, 8, 8, 3), dtype=np.int64), TypeError, "uint8 .*got dtype int64"),
    ("photo.jpg", TypeError, "single path"),
])
def test_as_image_batch_rejects_bad_input(X, error, message):
    with pytest.raises(error, match=message):
        as_image_batch(X)


def test_as_image_batch_scales_uint8_and_replicates_gray():
    gray = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5) * 6
    batch = as_image_batch(gray)
    assert batch.shape == (2, 4, 5, 3) and batch.dtype == np.float32
    for channel in range(3):
        np.testing.assert_allclose(batch[..., channel], gray / 255.0, rtol=1e-6)
    rgba = np.random.default_rng(1).random((3, 5, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(as_image_batch(rgba), rgba[..., :3])


def test_as_image_batch_reads_pil_images_and_paths(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (3, 6, 7, 3), dtype=np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])  # png is lossless
    expected = pixels / np.float32(255)
    np.testing.assert_allclose(as_image_batch(paths), expected, rtol=1e-6)
    np.testing.assert_allclose(as_image_batch([str(p) for p in paths]), expected, rtol=1e-6)
    pil = [Image.fromarray(image) for image in pixels]
    np.testing.assert_allclose(as_image_batch(pil), expected, rtol=1e-6)
    gray = Image.fromarray(pixels[0, ..., 0])  # mode "L" becomes three equal channels
    np.testing.assert_allclose(as_image_batch([gray])[0], np.repeat(expected[0, ..., :1], 3, -1),
                               rtol=1e-6)


def test_as_image_batch_reports_unreadable_files(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="image 1 .*broken.png"):
        as_image_batch([np.zeros((6, 6, 3), np.uint8), broken])


def test_as_image_batch_sizes():
    mixed = [np.zeros((10, 12, 3), np.uint8), np.full((20, 8), 255, np.uint8)]
    assert as_image_batch(mixed).sizes == [(10, 12), (20, 8)]  # different sizes: kept
    resized = as_image_batch(mixed, image_size=(16, 18))
    assert resized.shape == (2, 16, 18, 3)
    np.testing.assert_allclose(resized[0], 0)
    np.testing.assert_allclose(resized[1], 1, rtol=1e-6)
    same = np.random.default_rng(3).random((2, 9, 11, 3), dtype=np.float32)
    assert as_image_batch(list(same)).shape == (2, 9, 11, 3)


def test_preprocess_normalises_converts_and_lays_out(images):
    out = preprocess(images, input_size=(12, 12), mean=(0.1, 0.2, 0.3), std=(2, 4, 5), scale=3)
    expected = (images * 3 - np.array([0.1, 0.2, 0.3])) / np.array([2, 4, 5])
    np.testing.assert_allclose(out.numpy(), expected.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)
    nhwc = preprocess(images, input_size=(12, 12), layout="NHWC")
    np.testing.assert_allclose(nhwc.numpy(), images)
    gray = preprocess(images, input_size=(12, 12), channels=1, mean=0.5, std=0.5)
    luma = images @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(gray.numpy()[:, 0], (luma - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    assert preprocess(images, input_size=(5, 7)).shape == (5, 3, 5, 7)
    with pytest.raises(ValueError, match="layout"):
        preprocess(images, input_size=(12, 12), layout="CHWN")


# --- TorchExpert ---------------------------------------------------------------------------------

def test_torch_expert_logits_equal_the_module_on_preprocessed_input(images):
    net = small_net(0)
    expert = TorchExpert(net, name="net", input_size=(12, 12), mean=0.5, std=0.25, batch_size=2)
    assert expert.n_outputs == 3  # found by a forward pass
    with torch.no_grad():
        expected = net(torch.from_numpy((images - 0.5) / 0.25).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(expert.logits(images), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        expert.logits(images[..., 0])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchExpert(lambda x: x, name="f", input_size=(4, 4))


class _ViewNet(torch.nn.Module):
    """Flattens a convolution output with view(), which needs NCHW-contiguous activations."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 12 * 12, 3)

    def forward(self, x):
        y = self.conv(x)
        return self.head(y.view(y.size(0), -1))


def test_torch_expert_runs_channels_last_when_the_module_allows(images):
    conv = TorchExpert(small_net(0), name="net", input_size=(12, 12))
    assert conv.channels_last
    viewing = TorchExpert(_ViewNet(), name="view", input_size=(12, 12))
    assert not viewing.channels_last and viewing.n_outputs == 3
    for expert in (conv, viewing):
        with torch.no_grad():
            plain = expert.module.to(memory_format=torch.contiguous_format)(
                torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()).numpy()
        np.testing.assert_allclose(expert.logits(images), plain, rtol=1e-5, atol=1e-6)


class _WrappedOutput(torch.nn.Module):
    """The same small net, its logits wrapped as model libraries return them."""

    def __init__(self, wrap):
        super().__init__()
        self.net, self.wrap = small_net(0), wrap

    def forward(self, x):
        return self.wrap(self.net(x))


@pytest.mark.parametrize("wrap", [
    lambda logits: (logits, logits.mean()),                  # timm features, torchvision aux
    lambda logits: [logits],
    lambda logits: types.SimpleNamespace(logits=logits, hidden_states=None),  # Hugging Face
    lambda logits: {"logits": logits, "pooled": logits[:, :1]},
], ids=["tuple", "list", "logits-attribute", "logits-key"])
def test_torch_expert_reads_logits_out_of_wrapped_outputs(images, wrap):
    """A module returning a tuple used to fail with "'tuple' object has no attribute 'reshape'"."""
    expert = TorchExpert(_WrappedOutput(wrap), name="wrapped", input_size=(12, 12))
    plain = TorchExpert(small_net(0), name="plain", input_size=(12, 12))
    assert expert.n_outputs == 3
    np.testing.assert_allclose(run_expert(expert, images), plain.logits(images), rtol=1e-6)


@pytest.mark.parametrize("wrap", [lambda logits: logits.tolist(), lambda logits: (),
                                  lambda logits: ("logits", logits)])
def test_torch_expert_names_an_output_it_cannot_read(wrap):
    for n_outputs in (None, 3):   # found at construction, by the layout probe
        with pytest.raises(ExpertError, match="'odd': the module returned (list|tuple); "
                                              "expected a logits tensor"):
            TorchExpert(_WrappedOutput(wrap), name="odd", input_size=(12, 12), n_outputs=n_outputs)


def test_torch_expert_fingerprint_follows_the_weights(images):
    first = TorchExpert(small_net(0), name="net", input_size=(12, 12))
    same_weights = TorchExpert(small_net(0), name="net", input_size=(12, 12))
    assert first.fingerprint == same_weights.fingerprint == first.fingerprint
    assert copy.deepcopy(first).fingerprint == first.fingerprint
    changed = small_net(0)
    with torch.no_grad():
        changed[-1].bias[0] += 1e-3
    assert TorchExpert(changed, name="net", input_size=(12, 12)).fingerprint != first.fingerprint
    other_preprocessing = TorchExpert(small_net(0), name="net", input_size=(12, 12), mean=0.5)
    assert other_preprocessing.fingerprint != first.fingerprint


def test_torch_expert_copies_and_pickles(images):
    expert = TorchExpert(small_net(1, channels=1), name="gray", input_size=(10, 10), channels=1)
    clone = copy.deepcopy(expert)
    assert clone.module is not expert.module
    restored = pickle.loads(pickle.dumps(expert))
    for other in (clone, restored):
        np.testing.assert_array_equal(other.logits(images), expert.logits(images))
        assert other.fingerprint == expert.fingerprint


# --- registry ------------------------------------------------------------------------------------

def test_create_expert_rejects_unknown_sources():
    with pytest.raises(ValueError, match="unknown expert source 'nope:x'"):
        create_expert("nope:x")
    with pytest.raises(ValueError, match="'<prefix>:<spec>'"):
        create_expert("resnet18")
    with pytest.raises(TypeError, match="module_factory"):
        create_expert("torch:weights.pt", input_size=(8, 8))


def test_list_expert_sources_finds_every_adapter():
    assert {"torch", "timm", "hf", "onnx", "keras"} <= set(list_expert_sources())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_create_expert_loads_torch_weights(tmp_path, images, suffix):
    net = small_net(2)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save(net.state_dict(), path)
    else:
        save_file(net.state_dict(), path)
    expert = create_expert(f"torch:{path}", module_factory=lambda: small_net(9),
                           input_size=(12, 12))
    assert expert.name == str(path)
    reference = TorchExpert(net, name="ref", input_size=(12, 12))
    np.testing.assert_allclose(expert.logits(images), reference.logits(images), rtol=1e-6)


def test_memoized_expert_computes_each_image_once(tmp_path):
    from skmll.hub import MemoizedExpert, expert_fingerprint

    from ..conftest import CountingExpert

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    inner = CountingExpert(TorchExpert(net, name="net", input_size=(4, 4)))
    memo = MemoizedExpert(inner, cache_dir=tmp_path)
    batch = np.random.default_rng(0).random((5, 4, 4, 3), dtype=np.float32)
    first = memo.logits(batch)
    np.testing.assert_array_equal(memo.logits(batch.copy()), first)
    assert inner.n_calls == 1
    np.testing.assert_array_equal(memo.logits(batch[:2]), first[:2])  # rows seen: no call
    assert inner.n_calls == 1
    mixed = np.concatenate([batch[:1], batch[:1] * 0.5])
    memo.logits(mixed)                                        # only the unseen image runs
    assert inner.n_calls == 2 and inner.n_images == 6
    fresh = MemoizedExpert(inner, cache_dir=tmp_path)         # a new process: from disk
    np.testing.assert_array_equal(fresh.logits(batch), first)
    assert inner.n_calls == 2
    assert expert_fingerprint(memo) == expert_fingerprint(inner)
