"""TimmExpert on small, randomly initialised timm models saved by the tests."""

import pickle

import numpy as np
import pytest
import torch

from skmll.hub import create_expert, run_expert

timm = pytest.importorskip("timm")
from skmll.hub._timm_expert import TimmExpert  # noqa: E402 - after the importorskip

ARCH = "test_efficientnet"  # a real timm architecture, small enough for CPU tests


def random_model(seed, num_classes=5):
    torch.manual_seed(seed)
    return timm.create_model(ARCH, num_classes=num_classes).eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The same random model as .pt and .safetensors, and a second one with other weights."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("timm")
    model = random_model(0)
    torch.save(model.state_dict(), folder / "first.pt")
    save_file(model.state_dict(), folder / "first.safetensors")
    torch.save(random_model(1).state_dict(), folder / "second.pt")
    return {"model": model, "pt": folder / "first.pt", "safetensors": folder / "first.safetensors",
            "other": folder / "second.pt"}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, 160, 160, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def expert(checkpoints):
    return TimmExpert(ARCH, checkpoint_path=checkpoints["pt"])


def test_checkpoint_expert_matches_the_model(checkpoints, expert, images):
    # classifier size read from the checkpoint; preprocessing from timm's pretrained_cfg
    assert expert.n_outputs == 5 and expert.name == "first"
    assert expert.input_size == (160, 160) and expert.channels == 3
    np.testing.assert_allclose(expert.mean, (0.485, 0.456, 0.406))
    np.testing.assert_allclose(expert.std, (0.229, 0.224, 0.225))
    # timm's evaluation transform on 8-bit PIL images is the reference preprocessing
    from PIL import Image

    transform = timm.data.create_transform(
        **timm.data.resolve_model_data_config(checkpoints["model"]), is_training=False)
    pixels = torch.stack([transform(Image.fromarray(np.rint(image * 255).astype(np.uint8)))
                          for image in images])
    with torch.no_grad():
        expected = checkpoints["model"](pixels).numpy()
    np.testing.assert_allclose(expert.logits(images), expected, rtol=1e-4, atol=1e-5)


def test_safetensors_checkpoint_and_explicit_num_classes(checkpoints, expert, images):
    from_st = TimmExpert(ARCH, checkpoint_path=checkpoints["safetensors"], num_classes=5)
    np.testing.assert_array_equal(from_st.logits(images), expert.logits(images))
    with pytest.raises(RuntimeError, match="size mismatch"):
        TimmExpert(ARCH, checkpoint_path=checkpoints["pt"], num_classes=3)


def test_create_expert_builds_a_timm_expert(checkpoints, expert, images):
    made = create_expert(f"timm:{ARCH}", checkpoint_path=checkpoints["pt"], name="made")
    assert isinstance(made, TimmExpert) and made.name == "made"
    np.testing.assert_array_equal(run_expert(made, images), expert.logits(images))


def test_pickle_round_trip_keeps_logits_and_fingerprint(expert, images):
    restored = pickle.loads(pickle.dumps(expert))
    np.testing.assert_array_equal(restored.logits(images), expert.logits(images))
    assert restored.fingerprint == expert.fingerprint


def test_fingerprint_follows_the_weights(checkpoints, expert):
    reloaded = TimmExpert(ARCH, checkpoint_path=checkpoints["pt"])
    other = TimmExpert(ARCH, checkpoint_path=checkpoints["other"], name="first")
    assert reloaded.fingerprint == expert.fingerprint
    assert other.fingerprint != expert.fingerprint


def test_without_checkpoint_and_single_channel():
    expert = TimmExpert("test_resnet", num_classes=4)
    assert expert.name == "test_resnet" and expert.n_outputs == 4
    assert expert.input_size == (160, 160) and expert.mean == (0.5, 0.5, 0.5)
    gray = TimmExpert(ARCH, num_classes=2, in_chans=1)
    assert gray.channels == 1 and gray.mean == pytest.approx((np.mean([0.485, 0.456, 0.406]),))
    assert gray.logits(np.zeros((2, 40, 40, 3), np.float32)).shape == (2, 2)
    with pytest.raises(ValueError, match="features, not logits"):
        TimmExpert("test_resnet", num_classes=0)
