"""TimmExpert feeds a model what timm's evaluation transform makes of PIL images.

The pretrained configs below are those of real timm checkpoints (timm/models/resnet.py,
vision_transformer.py and convnext.py in the installed timm: ``_cfg``, ``_rcfg`` and the
per-tag entries), laid over timm's small ``test_*`` architectures so the tests stay fast. The
reference is ``create_transform(**resolve_model_data_config(model), is_training=False)`` on
the PIL images, as timm's own validation script runs it.
"""

import numpy as np
import pytest
import torch

from skmll.hub import as_image_batch, map_size_groups, run_expert

from ._parity import parity_images

timm = pytest.importorskip("timm")
from skmll.hub._timm_expert import TimmExpert  # noqa: E402 - after the importorskip

# name -> (architecture, pretrained config of a real checkpoint, whether skmll batches it)
CONFIGS = {
    # resnet18.tv_in1k (torchvision's weights): bilinear, crop_pct 0.875
    "bilinear-center": ("test_resnet", {"interpolation": "bilinear", "crop_pct": 0.875,
                                        "crop_mode": "center"}, True),
    # resnet50.a1_in1k (_rcfg): bicubic, crop_pct 0.95
    "bicubic-center": ("test_resnet", {"interpolation": "bicubic", "crop_pct": 0.95,
                                       "crop_mode": "center"}, False),
    # vit_base_patch16_224.augreg2_in21k_ft_in1k: bicubic, crop_pct 0.9, mean and std 0.5
    "vit-bicubic": ("test_vit", {"interpolation": "bicubic", "crop_pct": 0.9,
                                 "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}, False),
    # convnext_tiny.fb_in22k_ft_in1k_384: crop_pct 1.0, crop_mode squash (the whole image)
    "squash": ("test_convnext", {"interpolation": "bicubic", "crop_pct": 1.0,
                                 "crop_mode": "squash"}, False),
    # the same with bilinear: timm's squash mode on skmll's batched path
    "bilinear-squash": ("test_convnext", {"interpolation": "bilinear", "crop_pct": 1.0,
                                          "crop_mode": "squash"}, True),
    # timm's border mode (no shipped checkpoint uses it): keep the ratio, pad to the size
    "border": ("test_efficientnet", {"interpolation": "bilinear", "crop_pct": 0.9,
                                     "crop_mode": "border"}, False),
}


def _timm_reference(model, images):
    """timm's evaluation transform on RGB PIL images, then the model."""
    config = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**config, is_training=False)
    inputs = torch.stack([transform(image.convert("RGB")) for image in images])
    with torch.no_grad():
        return inputs, model(inputs).numpy(), config


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_follow_timms_evaluation_transform(name):
    architecture, overlay, batched = CONFIGS[name]
    torch.manual_seed(0)
    expert = TimmExpert(architecture, num_classes=6, pretrained_cfg_overlay=overlay)
    assert expert.image_input.batched is batched
    images = parity_images()
    expected_inputs, expected, config = _timm_reference(expert.module, images)
    batch = as_image_batch(images)
    inputs = map_size_groups(lambda group: expert.image_input(group, "cpu"), batch)
    # The PIL path is timm's own, bit for bit; the batched path differs by torch's and
    # Pillow's bilinear kernels, each rounding to 8 bits: one level of 255 at most.
    one_level = 1 / 255 / min(config["std"]) + 1e-6
    difference = (inputs - expected_inputs).abs().max().item()
    assert difference <= (one_level if batched else 0.0)
    got = run_expert(expert, batch)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=(0.05 if batched else 1e-4) * scale)
    assert np.ptp(expected, axis=0).max() > 1e-3 * scale   # the images give different logits
    print(f"PARITY timm {name}: input {difference:.2g}, logits "
          f"{np.abs(got - expected).max():.1e} (of {scale:.2g})")


def test_input_size_and_fingerprint_follow_the_config():
    center = TimmExpert("test_resnet", num_classes=6,
                        pretrained_cfg_overlay=CONFIGS["bicubic-center"][1])
    squash = TimmExpert("test_resnet", num_classes=6,
                        pretrained_cfg_overlay={**CONFIGS["bicubic-center"][1],
                                                "crop_mode": "squash"})
    assert center.input_size == squash.input_size == (160, 160)
    assert center.fingerprint != squash.fingerprint   # same weights, other preprocessing
