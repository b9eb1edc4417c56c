"""HFExpert feeds each architecture family what ``model(**processor(images))`` feeds it.

One tiny random model per family of the paper's hub file (skmll/paper/hub.toml), saved with
``save_pretrained`` beside the image processor class its real checkpoints use, with their
settings scaled from 224 to 32 pixels (resize rule, resample, crop, normalisation, flags). The
settings are those of each checkpoint's ``preprocessor_config.json`` on the Hugging Face Hub
(named per family below), written from memory on a machine without network access.
skmll loads the folder as a user would; the reference is transformers' own path on the same
images decoded as the pipeline decodes them (PIL, converted to RGB), of several sizes and
aspect ratios, a gray and an RGBA one among them.
"""

import numpy as np
import pytest
import torch

from skmll.hub import as_image_batch, map_size_groups, run_expert

from ._parity import parity_images

transformers = pytest.importorskip("transformers")
from skmll.hub._hf_expert import HFExpert  # noqa: E402 - after the importorskip

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
NEAREST, BILINEAR, BICUBIC = 0, 2, 3   # PIL resample codes, as preprocessor_config.json has them
SQUARE = {"height": 32, "width": 32}
CONVNEXT_RULE = {"size": {"shortest_edge": 32}, "crop_pct": 0.875, "resample": BICUBIC}


def _vit_like(config_class, **extra):
    return config_class(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, **extra)


def _cvt():
    two = {"mlp_ratio": [2.0, 2.0], "attention_drop_rate": [0.0, 0.0],
           "drop_rate": [0.0, 0.0], "drop_path_rate": [0.0, 0.0], "qkv_bias": [True, True],
           "cls_token": [False, True], "qkv_projection_method": ["dw_bn", "dw_bn"],
           "kernel_qkv": [3, 3], "padding_kv": [1, 1], "stride_kv": [2, 2],
           "padding_q": [1, 1], "stride_q": [1, 1]}
    return transformers.CvtConfig(embed_dim=[8, 16], num_heads=[1, 2], depth=[1, 2],
                                  patch_sizes=[7, 3], patch_stride=[4, 2], patch_padding=[2, 1],
                                  **two)


# family -> (tiny config, architecture, processor class, its real checkpoints' settings)
FAMILIES = {
    # microsoft/resnet-50: ConvNext processor, shortest edge 224 / crop_pct 0.875, bicubic
    "resnet": (lambda T: T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
               None, "ConvNextImageProcessor", {**CONVNEXT_RULE, **IMAGENET}),
    # google/vit-base-patch16-224: 224 x 224, bilinear, mean and std 0.5
    "vit": (lambda T: _vit_like(T.ViTConfig), None, "ViTImageProcessor",
            {"size": SQUARE, "resample": BILINEAR, **HALF}),
    # facebook/deit-base-patch16-224: 256 x 256 then a 224 centre crop, bicubic
    "deit": (lambda T: _vit_like(T.DeiTConfig), "DeiTForImageClassification",
             "DeiTImageProcessor", {"size": {"height": 37, "width": 37}, "crop_size": SQUARE,
                                    "do_center_crop": True, "resample": BICUBIC, **IMAGENET}),
    # facebook/convnext-tiny-224: shortest edge 224, crop_pct 0.875, bicubic
    "convnext": (lambda T: T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
                 None, "ConvNextImageProcessor", {**CONVNEXT_RULE, **IMAGENET}),
    # microsoft/swin-tiny-patch4-window7-224: a ViT processor, 224 x 224, bicubic
    "swin": (lambda T: T.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1],
                                    num_heads=[1, 2], window_size=4),
             None, "ViTImageProcessor", {"size": SQUARE, "resample": BICUBIC, **IMAGENET}),
    # microsoft/beit-base-patch16-224: 224 x 224, no crop, bilinear, mean and std 0.5
    "beit": (lambda T: _vit_like(T.BeitConfig, use_mean_pooling=True), None,
             "BeitImageProcessor", {"size": SQUARE, "do_center_crop": False,
                                    "resample": BILINEAR, **HALF}),
    # microsoft/dit-base-finetuned-rvlcdip: a BEiT with the BEiT processor, bilinear, 0.5
    "dit": (lambda T: _vit_like(T.BeitConfig, use_absolute_position_embeddings=True), None,
            "BeitImageProcessor", {"size": SQUARE, "do_center_crop": False,
                                   "resample": BILINEAR, **HALF}),
    # google/efficientnet-b0: 224 x 224, nearest, include_top (a second normalisation)
    "efficientnet": (lambda T: T.EfficientNetConfig(image_size=32, width_coefficient=0.1,
                                                    depth_coefficient=0.1, hidden_dim=128),
                     None, "EfficientNetImageProcessor",
                     {"size": SQUARE, "resample": NEAREST, "include_top": True,
                      "do_center_crop": False, "image_mean": IMAGENET["image_mean"],
                      "image_std": [0.47853944, 0.4732864, 0.47434163]}),
    # google/mobilenet_v1_1.0_224: shortest edge 256, 224 centre crop, bilinear, 0.5
    "mobilenet_v1": (lambda T: T.MobileNetV1Config(image_size=32, depth_multiplier=0.1),
                     None, "MobileNetV1ImageProcessor",
                     {"size": {"shortest_edge": 37}, "crop_size": SQUARE,
                      "resample": BILINEAR, **HALF}),
    # google/mobilenet_v2_1.0_224: the same rule
    "mobilenet_v2": (lambda T: T.MobileNetV2Config(image_size=32, depth_multiplier=0.1),
                     None, "MobileNetV2ImageProcessor",
                     {"size": {"shortest_edge": 37}, "crop_size": SQUARE,
                      "resample": BILINEAR, **HALF}),
    # apple/mobilevit-small: shortest edge 288, 256 crop, bilinear, BGR, not normalised
    "mobilevit": (lambda T: T.MobileViTConfig(image_size=32, hidden_sizes=[16, 16, 16],
                                              neck_hidden_sizes=[8, 8, 16, 16, 16, 32, 32]),
                  None, "MobileViTImageProcessor",
                  {"size": {"shortest_edge": 36}, "crop_size": SQUARE, "resample": BILINEAR,
                   "do_flip_channel_order": True}),
    # facebook/levit-128S: shortest edge 224 (resized to 256/224 of it), 224 crop, bicubic
    "levit": (lambda T: T.LevitConfig(image_size=32, hidden_sizes=[16, 32, 48],
                                      num_attention_heads=[1, 2, 3], depths=[1, 1, 1],
                                      key_dim=[8, 8, 8]),
              "LevitForImageClassificationWithTeacher", "LevitImageProcessor",
              {"size": {"shortest_edge": 32}, "crop_size": SQUARE, "resample": BICUBIC,
               **IMAGENET}),
    # facebook/regnet-y-040: ConvNext processor, shortest edge 224 / crop_pct 0.875
    "regnet": (lambda T: T.RegNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                        groups_width=8),
               None, "ConvNextImageProcessor", {**CONVNEXT_RULE, **IMAGENET}),
    # microsoft/cvt-13: ConvNext processor, shortest edge 224 / crop_pct 0.875
    "cvt": (lambda T: _cvt(), None, "ConvNextImageProcessor", {**CONVNEXT_RULE, **IMAGENET}),
    # nvidia/mit-b0: Segformer processor, 512 x 512 (twice and more the classifier's 224)
    "segformer": (lambda T: T.SegformerConfig(num_encoder_blocks=2, depths=[1, 1],
                                              sr_ratios=[2, 1], hidden_sizes=[8, 16],
                                              patch_sizes=[7, 3], strides=[4, 2],
                                              num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
                  None, "SegformerImageProcessor",
                  {"size": {"height": 72, "width": 72}, "resample": BILINEAR, **IMAGENET}),
    # microsoft/focalnet-tiny: Bit processor, shortest edge 256, 224 crop, bicubic
    "focalnet": (lambda T: T.FocalNetConfig(image_size=32, patch_size=4, embed_dim=8,
                                            depths=[1, 1], focal_levels=[1, 1],
                                            focal_windows=[3, 3]),
                 None, "BitImageProcessor",
                 {"size": {"shortest_edge": 37}, "crop_size": SQUARE, "resample": BICUBIC,
                  **IMAGENET}),
}


def _save_family(folder, family):
    make_config, architecture, processor_class, settings = FAMILIES[family]
    config = make_config(transformers)
    # MobileNet v1/v2 checkpoints have 1,001 heads (background first), the others a few here
    config.num_labels = 1001 if family.startswith("mobilenet") else 4
    if architecture is not None:
        config.architectures = [architecture]
    torch.manual_seed(0)
    model = transformers.AutoModelForImageClassification.from_config(config).eval()
    _give_signal(model)
    model.save_pretrained(folder)
    getattr(transformers, processor_class)(**settings).save_pretrained(folder)
    return model


def _give_signal(model):
    """Weights whose logits vary with the image: some families start with zero heads or with
    initial scales under which a tiny random net's features vanish before the head."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()   # identity: unit scale, zero shift, unit running var
    for parameter in model.parameters():
        if parameter.dim() > 1:
            torch.nn.init.kaiming_normal_(parameter, nonlinearity="relu")


def _reference_inputs(folder, images, backend):
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend=backend)
    return processor(images=[image.convert("RGB") for image in images],
                     return_tensors="pt")["pixel_values"]


def _reference_logits(model, pixel_values):
    with torch.no_grad():
        return model(pixel_values=pixel_values).logits.numpy()


def assert_parity(expert, model, folder, backend=None, label=""):
    """skmll's model input equals the processor's bit for bit; logits agree to float rounding
    (the model runs skmll's images in groups of one size, in channels-last memory)."""
    images = parity_images()
    batch = as_image_batch(images)
    expected_inputs = _reference_inputs(folder, images, backend)
    inputs = map_size_groups(lambda group: expert.image_input(group, "cpu"), batch)
    torch.testing.assert_close(inputs, expected_inputs, rtol=0, atol=0)
    got, expected = run_expert(expert, batch), _reference_logits(model, expected_inputs)
    assert got.shape == (len(images), model.config.num_labels)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert np.ptp(expected, axis=0).max() > 1e-4   # the images give different logits
    print(f"PARITY {label}: input 0, logits {np.abs(got - expected).max():.1e} "
          f"(of {np.abs(expected).max():.2g})")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_equal_the_processor_path(tmp_path, family):
    model = _save_family(tmp_path, family)
    assert_parity(HFExpert(tmp_path), model, tmp_path, label=f"hf {family}")


@pytest.mark.parametrize("family", ["efficientnet", "mobilevit", "resnet"])
def test_pil_backend_on_request(tmp_path, family):
    model = _save_family(tmp_path, family)
    expert = HFExpert(tmp_path, processor_kwargs={"backend": "pil"})
    assert not expert.image_input.on_tensors
    assert_parity(expert, model, tmp_path, backend="pil", label=f"hf {family} (pil backend)")
    assert expert.fingerprint != HFExpert(tmp_path).fingerprint


def test_heads_come_from_the_model_config(tmp_path):
    model = _save_family(tmp_path, "mobilenet_v2")
    labels = ["background"] + [f"class {i}" for i in range(1, 1001)]
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.save_pretrained(tmp_path)
    expert = HFExpert(tmp_path)
    assert expert.n_outputs == 1001 and expert.head_names[0] == "background"
    assert expert.head_names[1000] == "class 1000"


def test_processor_decides_the_input_size(tmp_path):
    _save_family(tmp_path, "segformer")
    assert HFExpert(tmp_path).input_size == (72, 72)   # the processor's, not the config's
    resized = HFExpert(tmp_path, processor_kwargs={"size": {"height": 32, "width": 32}})
    assert resized.input_size == (32, 32)
    with pytest.raises(TypeError, match="processor_kwargs"):
        HFExpert(tmp_path, mean=0.5, std=0.5)
