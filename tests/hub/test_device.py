"""Gray images kept as one plane, devices and precision of the adapters, prefetched decoding.

Built on scikit-learn's two sample photos (china.jpg, flower.jpg), cut into crops and turned
to gray, with small seeded networks of other input sizes than the images.
"""

import threading
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import LazyExpert, TorchExpert, as_image_batch, preprocess, run_expert
from skmll.hub._base import check_device, move_experts
from skmll.hub._images import gray_plane, iter_image_batches, prefetched

NO_CUDA = not torch.cuda.is_available()


def crops(photo, n, size, seed):
    """``n`` random ``size`` crops of a photo, uint8 RGB."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, photo.shape[0] - size[0], n)
    cols = rng.integers(0, photo.shape[1] - size[1], n)
    return np.stack([photo[r:r + size[0], c:c + size[1]] for r, c in zip(rows, cols)])


def to_gray(rgb):
    return np.asarray([np.asarray(Image.fromarray(image).convert("L")) for image in rgb])


@pytest.fixture(scope="module")
def gray_photos():
    china, flower = load_sample_images().images
    return {"porcelain": to_gray(crops(china, 6, (45, 60), 0)),
            "blossom": to_gray(crops(flower, 6, (45, 60), 1))}


def small_cnn(channels, n_outputs, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 6, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(3),
        torch.nn.Flatten(), torch.nn.Linear(54, n_outputs))


def experts():
    """A gray expert, an RGB expert with per-channel statistics, and a bare protocol expert."""
    class Contrast:
        name, n_outputs = "contrast", 3

        def logits(self, images):
            spread = images.std(axis=(1, 2, 3))
            return np.stack([spread, 1 - spread, images[..., 1].mean(axis=(1, 2))], axis=1)

    return [TorchExpert(small_cnn(1, 4, 0), name="gray-cnn", input_size=(24, 32), channels=1,
                        mean=0.45, std=0.25),
            TorchExpert(small_cnn(3, 5, 1), name="rgb-cnn", input_size=(40, 40),
                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1.0),
            Contrast()]


# -- gray images stay one plane ----------------------------------------------------------------


def test_a_gray_batch_is_one_plane_in_memory(gray_photos):
    photos = gray_photos["porcelain"]
    for batch in (as_image_batch(photos), as_image_batch(list(photos)),
                  as_image_batch(photos, image_size=(20, 30))):
        assert batch.shape[-1] == 3
        assert np.shares_memory(batch[..., 0], batch[..., 2])   # no RGB copy was made
        assert gray_plane(batch) is not None
    rgb = as_image_batch(np.repeat(photos[..., None], 3, axis=-1))
    assert gray_plane(rgb) is None
    np.testing.assert_array_equal(as_image_batch(photos), rgb)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("channels", [1, 3])
def test_preprocess_of_a_gray_plane_is_bitwise_that_of_its_rgb_copy(gray_photos, channels,
                                                                    memory_format):
    photos = gray_photos["blossom"]
    gray, rgb = as_image_batch(photos), as_image_batch(np.repeat(photos[..., None], 3, -1))
    for size in [(45, 60), (32, 24), (90, 120)]:   # as is, down, up
        kwargs = dict(input_size=size, channels=channels, mean=(0.3, 0.5, 0.7),
                      std=(0.2, 0.25, 0.3), scale=255.0, memory_format=memory_format)
        mine = preprocess(gray, **kwargs)
        assert torch.equal(mine, preprocess(rgb, **kwargs))
        assert mine.is_contiguous(memory_format=memory_format)


def test_luma_of_rgb_is_still_bt601():
    pixels = np.random.default_rng(3).random((4, 9, 7, 3), dtype=np.float32)
    luma = preprocess(pixels, input_size=(9, 7), channels=1)[:, 0].numpy()
    np.testing.assert_allclose(luma, pixels @ np.array([0.299, 0.587, 0.114]), atol=1e-6)


def test_gray_images_give_identical_probabilities_to_their_rgb_copies(gray_photos):
    names = list(gray_photos)
    sdag = SemanticDAG(["photo", *names], edges=[("photo", n) for n in names],
                       texts={n: f"Name: {n}" for n in names},
                       data={n: images[:4] for n, images in gray_photos.items()})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub(experts()))
    clf = MLLZeroShotClassifier(names, labeler, k=3, cache_dir=False, batch_size=3).fit()
    test = np.concatenate([images[4:] for images in gray_photos.values()])
    gray = clf.predict_proba(test)
    np.testing.assert_array_equal(gray, clf.predict_proba(np.repeat(test[..., None], 3, -1)))
    np.testing.assert_array_equal(gray, clf.predict_proba(list(test)))


def test_every_expert_gets_rgb_and_bare_experts_a_writable_copy(gray_photos):
    seen = []

    class Writes:
        name, n_outputs = "writes", 2

        def logits(self, images):
            seen.append(images.shape)
            images[..., 0] = 0          # its own copy: allowed, and changes nothing elsewhere
            return images.mean(axis=(1, 2))[:, 1:]

    batch = as_image_batch(gray_photos["porcelain"])
    before = batch.copy()
    run_expert(Writes(), batch)
    assert seen == [(6, 45, 60, 3)]
    np.testing.assert_array_equal(batch, before)


# -- devices and precision -------------------------------------------------------------------


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_is_a_clear_error(gray_photos):
    with pytest.raises(ValueError, match="'cuda' was asked for.*no CUDA GPU"):
        TorchExpert(small_cnn(3, 2, 0), name="n", input_size=(8, 8), device="cuda")
    expert = TorchExpert(small_cnn(3, 2, 0), name="n", input_size=(8, 8))
    with pytest.raises(ValueError, match="no CUDA GPU"):
        expert.to("cuda:0")
    assert expert.device == torch.device("cpu")
    sdag = SemanticDAG(["photo", "blossom"], edges=[("photo", "blossom")],
                       data={"blossom": gray_photos["blossom"]})
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ModelLabeler(sdag, cache_dir=False, verbose=0, device="cuda").fit(ModelHub([expert]))


def test_a_device_name_that_is_none_is_refused():
    with pytest.raises(ValueError, match="'gpu' is not a torch device name"):
        check_device("gpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchExpert(small_cnn(3, 2, 0), name="n", input_size=(8, 8), precision="fp8")


def test_bf16_runs_under_autocast_close_to_fp32_with_its_own_fingerprint(gray_photos):
    china, _ = load_sample_images().images
    images = as_image_batch(crops(china, 8, (50, 70), 5))
    fp32 = TorchExpert(small_cnn(3, 6, 2), name="a", input_size=(48, 48))
    bf16 = TorchExpert(small_cnn(3, 6, 2), name="a", input_size=(48, 48), precision="bf16")
    reference, reduced = fp32.logits(images), bf16.logits(images)
    assert reduced.dtype == np.float32
    assert not np.array_equal(reference, reduced)       # autocast really ran in bf16
    np.testing.assert_allclose(reduced, reference, rtol=0.05, atol=0.02)
    assert bf16.fingerprint != fp32.fingerprint
    default = TorchExpert(small_cnn(3, 6, 2), name="b", input_size=(48, 48), precision="fp32")
    assert default.fingerprint == fp32.fingerprint      # fp32 keeps the fingerprints it had


def test_onnx_experts_refuse_what_onnxruntime_cannot_do(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import onnxruntime

    from skmll.hub import OnnxExpert

    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small_cnn(3, 3, 4).eval(), torch.zeros(1, 3, 11, 11), path,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    with pytest.raises(ValueError, match="precision must be 'fp32'"):
        OnnxExpert(path, precision="fp16")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match="needs onnxruntime's CUDAExecutionProvider"):
            OnnxExpert(path, device="cuda")
    with pytest.raises(TypeError, match="not both"):
        OnnxExpert(path, providers=["CPUExecutionProvider"], device="cuda:0")
    expert = OnnxExpert(path)
    assert expert.to("cpu") is expert and expert.providers == ["CPUExecutionProvider"]


def test_keras_experts_take_a_device_and_bf16(tmp_path):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend")
    from skmll.hub import KerasExpert

    model = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    path = tmp_path / "tiny.keras"
    model.save(path)
    _, flower = load_sample_images().images
    images = as_image_batch(crops(flower, 5, (30, 30), 6))
    fp32 = KerasExpert(path, device="cpu")
    assert all(w.value.device.type == "cpu" for w in fp32.model.weights)
    reduced = KerasExpert(path, precision="bf16").logits(images)
    assert reduced.dtype == np.float32 and not np.array_equal(reduced, fp32.logits(images))
    np.testing.assert_allclose(reduced, fp32.logits(images), rtol=0.05, atol=0.02)


def test_moving_experts_leaves_their_outputs_and_names_those_that_cannot_move(gray_photos):
    hub_experts = experts()
    batch = as_image_batch(gray_photos["blossom"])
    before = [run_expert(e, batch) for e in hub_experts]
    with pytest.warns(UserWarning, match=r"\['contrast'\] have no to\(device\)"):
        move_experts(hub_experts, "cpu")
    for expert, outputs in zip(hub_experts, before):
        np.testing.assert_array_equal(run_expert(expert, batch), outputs)


def test_a_lazy_expert_builds_on_the_device_it_was_moved_to():
    lazy = LazyExpert("timm:test_resnet", num_classes=3, name="tiny")
    assert lazy.to("cpu") is lazy and not lazy.is_loaded
    assert lazy.load().device == torch.device("cpu")
    assert "device" not in lazy.spec    # a runtime choice, not part of the specification
    with pytest.raises(ValueError, match="not a torch device name"):
        lazy.to("tpu:banana")


def test_device_is_a_validated_parameter_of_the_estimators(gray_photos):
    names = list(gray_photos)
    sdag = SemanticDAG(["photo", *names], edges=[("photo", n) for n in names],
                       texts={n: f"Name: {n}" for n in names},
                       data={n: images[:3] for n, images in gray_photos.items()})
    hub = ModelHub(experts()[:2])
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0, device="cpu").fit(hub)
    clf = MLLZeroShotClassifier(names, labeler, cache_dir=False, device=torch.device("cpu"))
    assert clf.fit().predict(gray_photos["blossom"]).shape == (6,)
    with pytest.raises(ValueError, match="'device' parameter"):
        MLLZeroShotClassifier(names, labeler, cache_dir=False, device=3).fit()


# -- decoding ahead of the forward passes ----------------------------------------------------


def test_prefetched_keeps_order_and_raises_in_place():
    rng = np.random.default_rng(0)

    def slow(i):
        time.sleep(rng.uniform(0, 0.005))
        if i == 5:
            raise OSError("item 5 is broken")
        return i

    got = []
    with pytest.raises(OSError, match="item 5 is broken"):
        for item in prefetched(slow(i) for i in range(9)):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetched_runs_ahead_and_stops_when_abandoned():
    started = []

    def produce():
        for i in range(100):
            started.append(i)
            yield i

    items = prefetched(produce(), depth=2)
    assert next(items) == 0
    deadline = time.time() + 5
    while len(started) < 3 and time.time() < deadline:   # works ahead while we hold item 0
        time.sleep(0.001)
    assert len(started) >= 3
    items.close()
    assert not any(t.name == "skmll-prefetch" for t in threading.enumerate())
    assert len(started) < 100


def test_files_are_decoded_batch_by_batch_in_order_and_errors_name_the_file(tmp_path,
                                                                          gray_photos):
    photos = np.concatenate(list(gray_photos.values()))
    paths = []
    for i, photo in enumerate(photos):
        paths.append(tmp_path / f"photo{i}.png")
        Image.fromarray(photo).save(paths[-1])
    batches = list(iter_image_batches(paths, 5))
    assert [len(b) for b in batches] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate(batches), as_image_batch(photos))
    paths[7].write_bytes(b"not a png")
    with pytest.raises(ValueError, match=rf"image 7 \({paths[7]}\) could not be read"):
        list(iter_image_batches(paths, 5))
