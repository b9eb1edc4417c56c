"""CLIPZeroShot feeds its image tower what open_clip's ``preprocess`` / CLIPProcessor make.

Tiny random CLIPs built offline; the images are PIL images of several sizes and aspect ratios,
gray and RGBA among them. The reference is each library's own path: open_clip's evaluation
transform from ``create_model_and_transforms``, and ``CLIPImageProcessor`` with the settings of
openai/clip-vit-base-patch32's preprocessor_config.json (shortest edge 224, 224 centre crop,
bicubic, OpenAI mean and std) scaled to 32 pixels.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skmll.hub import as_image_batch, map_size_groups
from skmll.reuse._general import CLIPZeroShot, trained_with_quick_gelu

from ..hub._parity import parity_images

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
CLASSES = ["red apple", "green field", "blue sky"]


@pytest.fixture(scope="module")
def open_clip_checkpoint(tmp_path_factory):
    """A tiny open_clip ViT CLIP (OpenAI's preprocessing config), its weights in a file."""
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("clip_parity")
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "patch_size": 8, "layers": 1, "width": 32,
                             "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                           "layers": 1}}
    (folder / "skmll-parity-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "skmll-parity-clip.json")
    torch.manual_seed(3)
    model, _, evaluation = open_clip.create_model_and_transforms("skmll-parity-clip")
    torch.save(model.state_dict(), folder / "weights.pt")
    return model.eval(), evaluation, folder / "weights.pt"


def _unit(features):
    return F.normalize(features.double(), dim=-1).numpy()


def test_open_clip_image_tower_gets_open_clips_preprocess(open_clip_checkpoint):
    model, evaluation, weights = open_clip_checkpoint
    clip = CLIPZeroShot.from_open_clip("skmll-parity-clip", checkpoint_path=weights,
                                       templates="photo")
    images = parity_images()
    expected_inputs = torch.stack([evaluation(image.convert("RGB")) for image in images])
    batch = as_image_batch(images)
    inputs = map_size_groups(lambda group: clip.image_input(group, "cpu"), batch)
    torch.testing.assert_close(inputs, expected_inputs, rtol=0, atol=0)   # bicubic: PIL path
    with torch.no_grad():
        expected = _unit(model.encode_image(expected_inputs))
    features = clip.image_features(batch)
    np.testing.assert_allclose(features, expected, atol=1e-6)
    print(f"PARITY open_clip: input 0, unit image features {np.abs(features - expected).max():.1e}")
    assert clip.templates == ("a photo of a {}.",)
    assert clip.predict_proba(batch, CLASSES).shape == (len(images), 3)


def test_quick_gelu_as_the_weights_were_trained(open_clip_checkpoint):
    from open_clip.transformer import QuickGELU

    def activations(clip):
        return {type(module) for module in clip.towers.model.modules()
                if isinstance(module, (QuickGELU, torch.nn.GELU))}

    weights = open_clip_checkpoint[2]
    plain = CLIPZeroShot.from_open_clip("skmll-parity-clip", checkpoint_path=weights)
    quick = CLIPZeroShot.from_open_clip("skmll-parity-clip", checkpoint_path=weights,
                                        quick_gelu=True)
    assert activations(plain) == {torch.nn.GELU} and activations(quick) == {QuickGELU}
    assert quick.fingerprint != plain.fingerprint
    images = as_image_batch(parity_images())
    assert np.abs(quick.image_features(images) - plain.image_features(images)).max() > 1e-4
    # open_clip's registry: OpenAI's tags were trained with QuickGELU, LAION's were not
    assert trained_with_quick_gelu("ViT-B-32", "openai")
    assert not trained_with_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")


def test_transformers_clip_gets_clip_processors_pixels(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8)
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(tmp_path)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, resample=3,
        image_mean=OPENAI_MEAN, image_std=OPENAI_STD).save_pretrained(tmp_path)
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    images = parity_images()
    expected_inputs = processor(images=[image.convert("RGB") for image in images],
                                return_tensors="pt")["pixel_values"]

    # the image path alone: from_transformers' ProcessorInput on skmll's batch
    from skmll.hub._preprocess import ProcessorInput

    image_input = ProcessorInput(processor)
    inputs = map_size_groups(lambda group: image_input(group, "cpu"), as_image_batch(images))
    torch.testing.assert_close(inputs, expected_inputs, rtol=0, atol=0)
    print("PARITY transformers clip: input 0 (the image tower's input)")
