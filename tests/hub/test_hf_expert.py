"""HFExpert on tiny, randomly initialised transformers models saved to temporary folders."""

import pickle

import numpy as np
import pytest
import torch

from skmll.hub import create_expert, run_expert

transformers = pytest.importorskip("transformers")
from skmll.hub._hf_expert import HFExpert  # noqa: E402 - after the importorskip

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)


def save_vit(folder, seed, *, with_processor=True):
    from transformers import AutoModelForImageClassification, ViTConfig, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=3)
    model = AutoModelForImageClassification.from_config(config).eval()
    model.save_pretrained(folder)
    if with_processor:
        ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN,
                          image_std=STD).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    model = save_vit(root / "tiny-vit", 0)
    save_vit(root / "other-vit", 1)
    save_vit(root / "bare-vit", 0, with_processor=False)
    return {"model": model, "vit": root / "tiny-vit", "other": root / "other-vit",
            "bare": root / "bare-vit", "root": root}


@pytest.fixture(scope="module")
def expert(folders):
    return HFExpert(folders["vit"])


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def test_logits_equal_the_model_on_processor_input(folders, expert, pixels):
    from transformers import AutoImageProcessor

    assert expert.name == "tiny-vit" and expert.n_outputs == 3
    assert expert.input_size == (32, 32)
    assert expert.mean == pytest.approx(MEAN) and expert.std == pytest.approx(STD)
    # the model's own processor, on 0-255 pixels, is the reference preprocessing
    processor = AutoImageProcessor.from_pretrained(folders["vit"])
    pixel_values = processor(images=list(pixels), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = folders["model"](pixel_values=pixel_values).logits.numpy()
    np.testing.assert_allclose(expert.logits(pixels / np.float32(255)), expected, rtol=1e-4,
                               atol=1e-5)


def test_other_image_sizes_are_resized(expert):
    images = np.random.default_rng(1).random((2, 50, 40, 3), dtype=np.float32)
    assert run_expert(expert, images).shape == (2, 3)


def test_processor_size_rules(folders):
    from transformers import AutoModelForImageClassification, ConvNextImageProcessor, ResNetConfig

    folder = folders["root"] / "tiny-resnet"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4)
    AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 40}, do_rescale=False).save_pretrained(folder)
    expert = HFExpert(folder, name="resnet")
    assert expert.input_size == (40, 40) and expert.n_outputs == 4
    assert expert.scale == 255.0  # no rescaling: the model was trained on 0-255 values
    assert expert.logits(np.zeros((1, 20, 20, 3), np.float32)).shape == (1, 4)


def test_without_image_processor_settings_must_be_given(folders, expert, pixels):
    with pytest.raises(ValueError, match=r"no image processor .* needs \[.mean., .std.\]"):
        HFExpert(folders["bare"])
    bare = HFExpert(folders["bare"], mean=MEAN, std=STD)
    assert bare.input_size == (32, 32)  # from the model config
    images = pixels / np.float32(255)
    np.testing.assert_allclose(bare.logits(images), expert.logits(images), rtol=1e-6)


def test_create_expert_builds_an_hf_expert(folders, expert, pixels):
    made = create_expert(f"hf:{folders['vit']}", name="made", batch_size=3)
    assert isinstance(made, HFExpert) and made.name == "made"
    images = pixels / np.float32(255)
    np.testing.assert_allclose(made.logits(images), expert.logits(images), rtol=1e-6)


def test_pickle_round_trip_keeps_logits_and_fingerprint(expert, pixels):
    restored = pickle.loads(pickle.dumps(expert))
    images = pixels / np.float32(255)
    np.testing.assert_array_equal(restored.logits(images), expert.logits(images))
    assert restored.fingerprint == expert.fingerprint


def test_fingerprint_follows_the_weights(folders, expert):
    assert HFExpert(folders["vit"]).fingerprint == expert.fingerprint
    assert HFExpert(folders["other"], name="tiny-vit").fingerprint != expert.fingerprint
