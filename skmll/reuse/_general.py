"""General zero-shot models: the MLL patch for uncovered classes, and the CLIP / ConSE baselines.

A *general model* is any object with a ``name`` and ``predict_proba(images, class_names)`` that
returns an ``(n, len(class_names))`` array whose rows sum to 1, where ``images`` is skmll's
canonical float32 batch ``(n, H, W, 3)`` in [0, 1]. The MLL classifier asks it about every task
class and lets it decide the classes no expert covers.

Two are provided:

- :class:`CLIPZeroShot`, an image-text model (open_clip or Hugging Face transformers) used the
  usual way: cosine similarity between the image embedding and each class's averaged prompt
  embeddings, scaled by the model's logit scale, softmax.
- :class:`ConSE` (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic
  Embeddings"): an ordinary classifier's top-T head probabilities weight the text embeddings of
  those heads' names; the mixture is compared with the task's class-name embeddings. It needs
  no image-text weights, so it is the offline default.
"""

import json
from functools import partial
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax

from ..hub import MixedSizeBatch, map_size_groups, preprocess, run_expert
from ..hub._base import hash_state_dict, n_heads
from ..hub._preprocess import ProcessorInput, TransformInput
from ..selection import default_text_encoder, embed_texts
from ..utils import check_template, fill_template, hash_json, new_hasher

_OPEN_CLIP_SCHEMAS = ("hf-hub:", "local-dir:")


# --- prompts and class-name embeddings ----------------------------------------------------------

def _template_sets():
    text = resources.files(__package__).joinpath("templates.json").read_text(encoding="utf-8")
    return json.loads(text)


def _resolve_templates(templates):
    """A template-set name from ``templates.json`` or a sequence of ``"...{}..."`` strings."""
    if isinstance(templates, str):
        sets = _template_sets()
        if templates not in sets:
            raise ValueError(f"unknown template set {templates!r}; use one of {sorted(sets)} "
                             "or a list of strings containing '{}'")
        return tuple(sets[templates])
    templates = tuple(templates)
    if not templates:
        raise ValueError("templates must be a non-empty list of strings, each containing '{}' "
                         f"where the class name goes; got {templates!r}")
    return tuple(check_template(t, what="each of templates") for t in templates)


def _check_names(names, what="class_names"):
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of strings, not the string {names!r}")
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings; got {names!r}")
    return names


def _check_class_names(class_names):
    class_names = _check_names(class_names)
    if len(set(class_names)) != len(class_names):
        duplicates = sorted({c for c in class_names if class_names.count(c) > 1})
        raise ValueError(f"class_names must be unique; repeated: {duplicates}")
    return class_names


def _to_numpy(out):
    return out.detach().float().cpu().numpy() if torch.is_tensor(out) else np.asarray(out)


def _unit_rows(array):
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


def zero_shot_weights(encode_text, class_names, templates, *, batch_size=256):
    """Zero-shot classifier weights: each class's prompt embeddings, averaged, unit norm.

    Every template is filled with every class name; the prompt embeddings are normalised,
    averaged per class and normalised again (prompt ensembling, as in CLIP).

    Parameters
    ----------
    encode_text : callable ``list[str] -> (n, d)`` array or tensor
        The text tower.
    class_names : sequence of str
    templates : sequence of str or str
        Prompts with ``{}`` where the class name goes, or the name of a set in the package's
        ``templates.json`` (``"default"``, ``"photo"``, ``"name"``).
    batch_size : int, default 256
        Prompts per ``encode_text`` call.

    Returns
    -------
    weights : ndarray of shape (d, n_classes), float32
        Unit-norm columns, in ``class_names`` order.

    Examples
    --------
    >>> import numpy as np
    >>> def encode(texts):  # a toy text tower: letter counts
    ...     return np.array([[t.count(ch) for ch in "abc"] for t in texts], dtype=float)
    >>> zero_shot_weights(encode, ["a", "cc"], ["{}"]).round(2)
    array([[1., 0.],
           [0., 0.],
           [0., 1.]], dtype=float32)
    """
    class_names = _check_class_names(class_names)
    templates = _resolve_templates(templates)
    prompts = [fill_template(template, name) for name in class_names
               for template in templates]
    parts = [_to_numpy(encode_text(prompts[start:start + batch_size]))
             for start in range(0, len(prompts), batch_size)]
    embeddings = np.concatenate(parts).astype(np.float64)
    if embeddings.ndim != 2 or len(embeddings) != len(prompts):
        raise ValueError(f"encode_text returned shape {embeddings.shape} for {len(prompts)} "
                         "prompts; expected (n_prompts, dim)")
    per_class = _unit_rows(embeddings).reshape(len(class_names), len(templates), -1).mean(axis=1)
    return _unit_rows(per_class).T.astype(np.float32)


def _canonical_batch(images, who):
    if isinstance(images, MixedSizeBatch):   # preprocess and run_expert take it size by size
        return images
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{who}: images must be a canonical batch of shape (n, H, W, 3); "
                         f"got {images.shape} (see skmll.hub.as_image_batch)")
    return images


class _PerClassNamesCache:
    """What depends only on the class names, computed once per ``tuple(class_names)``."""

    def __init__(self):
        self._store = {}

    def get(self, class_names, compute):
        key = _check_class_names(class_names)
        if key not in self._store:
            self._store[key] = compute(key)
        return self._store[key]


# --- CLIP ---------------------------------------------------------------------------------------

def _pair(size):
    return (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(s) for s in size)


class _OpenCLIPTowers:
    """An open_clip model and its tokenizer, seen as two towers and a logit scale."""

    def __init__(self, model, tokenizer, device):
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)

    def encode_image(self, pixels):
        return self.model.encode_image(pixels.to(self.device))

    def encode_text(self, texts):
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))

    def logit_scale(self):
        return float(self.model.logit_scale.detach().exp())


def _pooled(output):
    """transformers < 5 returns feature tensors; 5 returns an output object with them pooled."""
    return output if torch.is_tensor(output) else output.pooler_output


class _TransformersTowers:
    """A transformers dual-encoder (``get_image_features`` / ``get_text_features``)."""

    def __init__(self, model, tokenizer, device):
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)

    def encode_image(self, pixels):
        return _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))

    def encode_text(self, texts):
        max_length = self.model.config.text_config.max_position_embeddings
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt").to(self.device)
        return _pooled(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                    attention_mask=tokens["attention_mask"]))

    def logit_scale(self):
        return float(self.model.logit_scale.detach().exp())


def _towers_digest(towers):
    """The towers' declared fingerprint, or a hash of their torch weights and layer kinds; ""
    if neither.

    Hashing reads every weight once (about a second for ViT-B/32); the caller keeps the result.
    """
    declared = getattr(towers, "fingerprint", None)
    if isinstance(declared, str):
        return declared
    model = getattr(towers, "model", None)
    if not isinstance(model, torch.nn.Module):
        return ""
    hasher = new_hasher()
    hasher.update(type(model).__name__.encode())
    # the kinds of layers too: QuickGELU and GELU towers share their weights, not their function
    hasher.update(" ".join(sorted({type(m).__qualname__ for m in model.modules()})).encode())
    hash_state_dict(model.state_dict(), hasher)
    return hasher.hexdigest()


def trained_with_quick_gelu(model_name, pretrained):
    """Whether open_clip's pretrained tag ``pretrained`` of ``model_name`` was trained with
    QuickGELU (its pretrained config's ``quick_gelu``: OpenAI's weights and a few others).

    open_clip builds an architecture such as ``"ViT-B-32"`` with GELU whatever the tag, and only
    warns when the tag says otherwise; :meth:`CLIPZeroShot.from_open_clip` asks this instead.

    Examples
    --------
    >>> trained_with_quick_gelu("ViT-B-32", "openai"), trained_with_quick_gelu("ViT-B-32", None)
    (True, False)
    """
    if pretrained is None:
        return False
    import open_clip

    return bool(open_clip.get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False))


class CLIPZeroShot:
    """Zero-shot classification with an image-text model (CLIP and kin).

    ``P(c | x) = softmax_c(s * cos(f(x), w_c))``: ``f`` the image tower, ``w_c`` the class's
    averaged prompt embeddings (:func:`zero_shot_weights`), ``s`` the model's logit scale.
    Build it with :meth:`from_open_clip` or :meth:`from_transformers`.

    Parameters
    ----------
    towers : object
        Has ``encode_image(pixels) -> (n, d)`` tensor (``pixels`` an NCHW float tensor),
        ``encode_text(list[str]) -> (m, d)`` tensor and ``logit_scale() -> float``; its
        ``device`` attribute, if any, is where ``image_input`` makes the pixels.
    input_size : (int, int)
        The image tower's input (H, W). Without ``image_input``, images are resized to it
        whole (no crop) and normalised with ``mean`` and ``std``.
    mean, std : sequence of 3 floats
        The image tower's normalisation of [0, 1] pixels.
    templates : str or sequence of str, default "default"
        Prompt templates (see :func:`zero_shot_weights`): ``"default"`` is a 10-prompt
        ensemble, ``"photo"`` the single prompt ``"a photo of a {}."``.
    batch_size : int, default 64
        Images per forward pass.
    name : str, default "clip"
    image_input : callable or None
        The model's own preprocessing, ``image_input(images, device) -> pixels`` with a
        ``describe()`` method (:class:`~skmll.hub._preprocess.TransformInput` for open_clip's
        ``preprocess``, :class:`~skmll.hub._preprocess.ProcessorInput` for a transformers
        processor); :meth:`from_open_clip` and :meth:`from_transformers` set it.

    Attributes
    ----------
    fingerprint : str or None
        A content key of the model's function: the towers' own ``fingerprint`` if they declare
        one, else a hash of the torch weights of ``towers.model``; with the preprocessing,
        templates and name. None when neither exists. It keys the general model's cached work
        (the patch's reference probabilities).

    Notes
    -----
    Text embeddings depend only on the class names, so they are computed once per
    ``tuple(class_names)`` and kept for later calls.

    Examples
    --------
    >>> import numpy as np, torch
    >>> class Towers:  # a toy image-text model: mean colour vs. colour-word vectors
    ...     words = {"red": [1., 0, 0], "green": [0, 1., 0], "blue": [0, 0, 1.]}
    ...     def encode_image(self, pixels):
    ...         return pixels.mean(dim=(2, 3))
    ...     def encode_text(self, texts):
    ...         return torch.tensor([self.words[t] for t in texts])
    ...     def logit_scale(self):
    ...         return 100.0
    >>> clip = CLIPZeroShot(Towers(), input_size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1),
    ...                     templates=["{}"])
    >>> red = np.zeros((1, 8, 8, 3), dtype=np.float32); red[..., 0] = 1
    >>> clip.predict_proba(red, ["green", "red"]).round(3)
    array([[0., 1.]])
    """

    def __init__(self, towers, *, input_size, mean, std, templates="default", batch_size=64,
                 name="clip", image_input=None):
        self.towers = towers
        self.image_input = image_input
        self.input_size = _pair(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.templates = _resolve_templates(templates)
        self.batch_size = int(batch_size)
        self.name = name
        self._text_weights = _PerClassNamesCache()
        self._towers_digest = None

    @property
    def fingerprint(self):
        if self._towers_digest is None:
            self._towers_digest = _towers_digest(self.towers)
        if not self._towers_digest:
            return None
        image_input = None if self.image_input is None else self.image_input.describe()
        return hash_json(["clip", self._towers_digest, self.input_size, self.mean, self.std,
                          self.templates, self.name] + ([image_input] if image_input else []))

    @classmethod
    def from_open_clip(cls, model_name, pretrained=None, *, checkpoint_path=None,
                       quick_gelu=None, templates="default", device="cpu", batch_size=64):
        """Load an open_clip model with its own evaluation preprocessing.

        Images get open_clip's ``preprocess`` for the model (the evaluation transform of
        ``create_model_and_transforms``: for CLIP, the shortest side resized to the input size
        with bicubic interpolation, a centre crop, the model's mean and std), run one PIL image
        at a time as open_clip runs it (:class:`~skmll.hub._preprocess.TransformInput`).

        Parameters
        ----------
        model_name : str
            An open_clip architecture (``"ViT-B-32"``) or a ``"hf-hub:org/repo"`` /
            ``"local-dir:/path"`` source that carries its own config and weights.
        pretrained : str or None
            An open_clip pretrained tag (``"laion2b_s34b_b79k"``), downloaded by open_clip.
        checkpoint_path : path or None
            A local state dict (``.pt`` read with ``torch.load(weights_only=True)``, or
            ``.safetensors``) for the architecture ``model_name``.
        quick_gelu : bool or None
            Build the towers with QuickGELU activations, as OpenAI's CLIP weights were trained.
            None: as the pretrained tag was trained (open_clip's pretrained config says
            ``quick_gelu=True`` for ``"openai"`` and a few others; open_clip itself only warns
            when the architecture disagrees); False for a ``checkpoint_path``, whose training
            open_clip cannot know (pass True for OpenAI weights, or name a ``-quickgelu``
            architecture).
        templates, batch_size
            See :class:`CLIPZeroShot`; the paper prompts with ``templates="photo"``.
        device : str, default "cpu"

        Returns
        -------
        CLIPZeroShot
        """
        import open_clip

        if checkpoint_path is not None:
            if pretrained is not None:
                raise ValueError("give pretrained= (a tag) or checkpoint_path= (a file), not both")
            if str(model_name).startswith(_OPEN_CLIP_SCHEMAS):
                raise ValueError(f"{model_name!r} carries its own weights; checkpoint_path= "
                                 "needs a built-in architecture name such as 'ViT-B-32'")
            if not Path(checkpoint_path).is_file():
                raise FileNotFoundError(f"checkpoint_path {checkpoint_path} does not exist")
            pretrained = str(checkpoint_path)  # open_clip treats an existing path as weights
        if quick_gelu is None:
            quick_gelu = checkpoint_path is None and trained_with_quick_gelu(model_name,
                                                                             pretrained)
        model, _, evaluation = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device, weights_only=True,
            force_quick_gelu=quick_gelu)
        config = open_clip.get_model_preprocess_cfg(model)
        towers = _OpenCLIPTowers(model.eval(), open_clip.get_tokenizer(model_name), device)
        return cls(towers, input_size=config["size"], mean=config["mean"], std=config["std"],
                   templates=templates, batch_size=batch_size, name=f"open_clip:{model_name}",
                   image_input=TransformInput(evaluation))

    @classmethod
    def from_transformers(cls, model_id_or_path, *, templates="default", device="cpu",
                          batch_size=64):
        """Load a transformers CLIP-style model (``CLIPModel`` and kin) with its processor.

        The folder or hub id needs the model, its tokenizer and its image processor config
        (``save_pretrained`` of ``CLIPModel`` and ``CLIPProcessor`` writes all three). Images
        get exactly what the image processor gives them (``CLIPImageProcessor``: shortest
        side resized bicubic, centre crop, rescale, normalise), run on each batch
        (:class:`~skmll.hub._preprocess.ProcessorInput`).

        Parameters
        ----------
        model_id_or_path : str or path
        templates, batch_size
            See :class:`CLIPZeroShot`.
        device : str, default "cpu"

        Returns
        -------
        CLIPZeroShot
        """
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        source = str(model_id_or_path)
        model = AutoModel.from_pretrained(source).to(device).eval()
        image_config = AutoImageProcessor.from_pretrained(source)
        towers = _TransformersTowers(model, AutoTokenizer.from_pretrained(source), device)
        return cls(towers, input_size=model.config.vision_config.image_size,
                   mean=image_config.image_mean, std=image_config.image_std,
                   templates=templates, batch_size=batch_size, name=f"transformers:{source}",
                   image_input=ProcessorInput(image_config))

    def text_weights(self, class_names):
        """The (d, n_classes) unit-norm class embeddings; cached per ``tuple(class_names)``."""
        def compute(names):
            with torch.inference_mode():
                return zero_shot_weights(self.towers.encode_text, names, self.templates)
        return self._text_weights.get(class_names, compute)

    def image_features(self, images):
        """Unit-norm image embeddings ``(n, d)`` of a canonical batch, in batches."""
        images = _canonical_batch(images, self.name)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self._pixels(images[start:start + self.batch_size])
                chunks.append(F.normalize(self.towers.encode_image(pixels).float(), dim=-1).cpu())
        return torch.cat(chunks).numpy().astype(np.float64)

    def _pixels(self, images):
        if self.image_input is None:
            return preprocess(images, input_size=self.input_size, mean=self.mean, std=self.std)
        device = getattr(self.towers, "device", "cpu")
        return map_size_groups(lambda group: self.image_input(group, device), images)

    def predict_proba(self, images, class_names):
        """Class probabilities ``(n, len(class_names))`` for a canonical image batch."""
        weights = self.text_weights(class_names)
        logits = self.towers.logit_scale() * (self.image_features(images) @ weights)
        return softmax(logits, axis=1)

    def __repr__(self):
        return f"CLIPZeroShot(name={self.name!r}, input_size={self.input_size})"


# --- ConSE --------------------------------------------------------------------------------------

def _timm_info_file(filename):
    """A file of timm's package data, found without importing timm (which imports torchvision)."""
    spec = find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the ImageNet-1k class list is read from timm's package data: "
                          "pip install timm, or pass head_names= yourself")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / filename


def imagenet_wnids():
    """The 1000 ImageNet-1k WordNet ids in sorted order, the usual head order of classifiers.

    Returns
    -------
    list of str

    Examples
    --------
    >>> wnids = imagenet_wnids()
    >>> len(wnids), wnids[0]
    (1000, 'n01440764')
    """
    return _timm_info_file("imagenet_synsets.txt").read_text(encoding="utf-8").split()


def imagenet_class_names():
    """Names of the 1000 ImageNet-1k heads in sorted-wnid order: the synsets' lemmas.

    Each name lists the synset's lemmas, e.g. ``"tabby, tabby cat"``, which a text encoder
    reads better than the first lemma alone.

    Returns
    -------
    list of str

    Examples
    --------
    >>> names = imagenet_class_names()
    >>> len(names), names[281]
    (1000, 'tabby, tabby cat')
    """
    lines = _timm_info_file("imagenet_synset_to_lemma.txt").read_text(encoding="utf-8")
    lemmas = dict(line.split("\t", 1) for line in lines.splitlines() if line)
    return [lemmas[wnid] for wnid in imagenet_wnids()]


class ConSE:
    """Zero-shot classification by convex combination of semantic embeddings (ConSE).

    For an image, the expert's softmax picks its ``top_t`` most probable heads; their name
    embeddings, weighted by those probabilities (renormalised over the top T), give the image
    a point in text-embedding space. Its cosine similarity ``s_c`` with each task class's
    name embedding gives ``P(c | x) = softmax_c(s_c / temperature)``.

    Parameters
    ----------
    expert : Expert
        Any skmll expert (``name``, ``n_outputs``, ``logits(images)``).
    head_names : sequence of str
        What each of the expert's heads means, in head order (a single-logit expert has two
        heads: negative, positive).
    text_encoder : callable ``list[str] -> (n, d)`` or None
        None uses skmll's default (all-MiniLM-L6-v2, offline).
    top_t : int, default 10
        Heads mixed per image (at most the number of heads).
    temperature : float, default 0.05
        Softmax temperature over cosine similarities.
    templates : str or sequence of str or None
        Prompt templates for head and class names (see :func:`zero_shot_weights`); None embeds
        the bare names, which suits sentence encoders.

    Attributes
    ----------
    fingerprint : str or None
        A content key of the model's function (the expert's and the text encoder's declared
        fingerprints, head names, ``top_t``, ``temperature``, templates); None when the expert
        or the encoder declares none. It keys the general model's cached work (the patch's
        reference probabilities).

    Notes
    -----
    A head's name is embedded once, the first time the head is among an image's top T;
    class-name embeddings once per ``tuple(class_names)``.

    Examples
    --------
    >>> import numpy as np
    >>> class Brightness:  # an "expert" with heads dark / bright
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([10 * (0.5 - m), 10 * (m - 0.5)], axis=1)
    >>> conse = ConSE(Brightness(), ["night", "day"], top_t=1)
    >>> images = np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))]).astype(np.float32)
    >>> conse.predict_proba(images, ["daytime", "nighttime"]).argmax(axis=1)
    array([1, 0])
    """

    def __init__(self, expert, head_names, *, text_encoder=None, top_t=10, temperature=0.05,
                 templates=None):
        head_names = _check_names(head_names, "head_names")  # may repeat: ImageNet has 2 cranes
        if len(head_names) != n_heads(expert):
            raise ValueError(f"expert {expert.name!r} has {n_heads(expert)} heads but "
                             f"{len(head_names)} head names were given")
        if int(top_t) < 1 or not float(temperature) > 0:
            raise ValueError(f"top_t must be >= 1 and temperature > 0; got {top_t}, {temperature}")
        self.expert = expert
        self.head_names = head_names
        self.text_encoder = text_encoder if text_encoder is not None else default_text_encoder()
        self.top_t = int(top_t)
        self.temperature = float(temperature)
        self.templates = _resolve_templates(templates if templates is not None else "name")
        self.name = f"conse:{expert.name}"
        self._name_vectors = {}
        self._class_embeddings = _PerClassNamesCache()

    @property
    def fingerprint(self):
        parts = [getattr(self.expert, "fingerprint", None),
                 getattr(self.text_encoder, "fingerprint", None)]
        if not all(isinstance(part, str) for part in parts):
            return None
        return hash_json(["conse", *parts, int(self.expert.n_outputs), self.head_names,
                          self.top_t, self.temperature, self.templates])

    @classmethod
    def from_imagenet(cls, expert, **kwargs):
        """ConSE over an ImageNet-1k classifier whose heads are in sorted-wnid order.

        Keyword arguments go to :class:`ConSE`; head names are :func:`imagenet_class_names`.
        """
        return cls(expert, imagenet_class_names(), **kwargs)

    def _embed(self, names):
        encode = partial(embed_texts, self.text_encoder)
        return zero_shot_weights(encode, names, self.templates).T  # (n_names, d)

    def _head_vectors(self, heads):
        """Unit embeddings ``(len(heads), d)`` of the given heads' names.

        Names are embedded the first time one of their heads reaches an image's top T: most
        of a 1000-head classifier's names are never needed for a given set of images.
        """
        names = [self.head_names[h] for h in heads]
        new = sorted(set(names) - self._name_vectors.keys())
        if new:
            self._name_vectors.update(zip(new, self._embed(new)))
        return np.stack([self._name_vectors[name] for name in names])

    def class_embeddings(self, class_names):
        """Unit-norm embeddings ``(n_classes, d)``; cached per ``tuple(class_names)``."""
        return self._class_embeddings.get(class_names, self._embed)

    def semantic_embedding(self, images):
        """Each image's probability-weighted mixture of its top-T head embeddings ``(n, d)``."""
        images = _canonical_batch(images, self.name)
        probabilities = softmax(run_expert(self.expert, images).astype(np.float64), axis=1)
        top_t = min(self.top_t, probabilities.shape[1])
        top = np.argpartition(-probabilities, top_t - 1, axis=1)[:, :top_t]
        weights = np.take_along_axis(probabilities, top, axis=1)
        weights /= weights.sum(axis=1, keepdims=True)
        heads, position = np.unique(top, return_inverse=True)
        vectors = self._head_vectors(heads)[position.reshape(top.shape)]  # (n, top_t, d)
        return np.einsum("nt,ntd->nd", weights, vectors)

    def predict_proba(self, images, class_names):
        """Class probabilities ``(n, len(class_names))`` for a canonical image batch."""
        classes = self.class_embeddings(class_names)
        similarity = _unit_rows(self.semantic_embedding(images)) @ classes.T
        return softmax(similarity / self.temperature, axis=1)

    def __repr__(self):
        return (f"ConSE(expert={self.expert.name!r}, n_heads={len(self.head_names)}, "
                f"top_t={self.top_t}, temperature={self.temperature})")
