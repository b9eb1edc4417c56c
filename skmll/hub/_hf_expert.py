"""Hugging Face ``transformers`` image classifiers as experts."""

from pathlib import Path

import numpy as np

from ._base import register_expert
from ._preprocess import ProcessorInput
from ._torch_expert import TorchExpert


@register_expert("hf")
class HFExpert(TorchExpert):
    """A ``transformers`` image classifier, from the Hub or a local folder.

    The model is loaded with ``AutoModelForImageClassification`` and fed exactly what
    ``model(**processor(images, return_tensors="pt"))`` feeds it: the saved image processor
    (``AutoImageProcessor``, with its default backend) is called on every batch's 8-bit pixels
    (:class:`~skmll.hub._preprocess.ProcessorInput`). Its resize rule (``size`` as height and
    width, ``shortest_edge``, ConvNeXt's ``crop_pct``), resample, centre crop, rescale,
    normalisation, EfficientNet's ``include_top`` second normalisation and MobileViT's channel
    flip without normalisation are therefore the processor's own, whatever the transformers
    version. A processor that sends another size than the one the classifier was trained at
    (``nvidia/mit-b0``'s Segformer processor: 512 pixels to an ImageNet classifier trained at
    224) is followed too: it is the model's published pipeline, and what transformers'
    ``pipeline("image-classification")`` runs; change it with ``processor_kwargs`` (e.g.
    ``{"size": {"height": 224, "width": 224}}``), which the fingerprint records.

    A model saved without an image processor is preprocessed by skmll instead: the whole image
    resized (bilinear, antialiased) to ``input_size``, then ``(x - mean) / std``; ``mean`` and
    ``std`` must then be given.

    Parameters
    ----------
    model_id_or_path : str or path-like
        A Hub id (``"google/vit-base-patch16-224"``) or a folder written by
        ``save_pretrained``. With ``HF_HUB_OFFLINE=1`` only cached or local models load.
    name : str or None
        Unique name in the hub; defaults to the Hub id or the folder's name.
    input_size : (int, int) or None
        Only for a model without an image processor: the size images are resized to (default:
        the model config's ``image_size``).
    mean, std : float or sequence of float, or None
        Only for a model without an image processor (required then): the normalisation of
        [0, 1] pixels.
    processor_kwargs : dict or None
        Passed to ``AutoImageProcessor.from_pretrained``: settings that replace the saved
        processor's, or ``backend="pil"`` (transformers 5) for the PIL-based processor.
    batch_size : int, default 32
    device : str or torch.device, default "cpu"
        The processor runs there too when it is torchvision-based.
    precision : {"fp32", "fp16", "bf16"}, default "fp32"
        See :class:`TorchExpert`.
    head_names : list of str or None
        What each output means; when None, the model config's ``id2label`` unless it holds
        only the placeholders ``LABEL_<i>`` (so MobileNet v1/v2 have 1,001 heads, head 0 being
        ``"background"``).

    Attributes
    ----------
    image_input : ProcessorInput or None
        The processor run on each batch; None without one.
    input_size : (int, int)
        What the model receives for a square image.
    mean, std, scale : tuple of float, tuple of float, float
        The processor's normalisation, for information (its ``image_mean`` and ``image_std``
        when it normalises, else 0 and 1; ``scale`` is 255 times its rescale factor).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from transformers import (AutoModelForImageClassification, ViTConfig,
    ...                           ViTImageProcessor)
    >>> config = ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1,
    ...                    num_attention_heads=2, intermediate_size=8, num_labels=3)
    >>> folder = tempfile.mkdtemp()
    >>> AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    >>> _ = ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    >>> expert = HFExpert(folder)
    >>> expert.n_outputs, expert.input_size, expert.image_input
    (3, (16, 16), ProcessorInput(ViTImageProcessor))
    >>> expert.logits(np.zeros((2, 20, 30, 3), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, model_id_or_path, *, name=None, input_size=None, mean=None, std=None,
                 processor_kwargs=None, batch_size=32, device="cpu", precision="fp32",
                 head_names=None):
        from transformers import AutoModelForImageClassification

        source = str(model_id_or_path)
        model = AutoModelForImageClassification.from_pretrained(source)
        processor = _load_processor(source, processor_kwargs)
        if processor is None:
            settings = _settings_without_processor(source, model.config, input_size, mean, std)
            image_input = None
        else:
            _refuse_overrides(source, input_size=input_size, mean=mean, std=std)
            image_input = ProcessorInput(processor)
            settings = _processor_settings(image_input)
        super().__init__(model, name=name or _default_name(source),
                         channels=getattr(model.config, "num_channels", 3),
                         n_outputs=model.config.num_labels, batch_size=batch_size, device=device,
                         precision=precision,
                         head_names=head_names or config_head_names(model.config), **settings)
        self.image_input = image_input
        self.model_id_or_path = source

    path_keywords = ()

    @classmethod
    def from_source(cls, spec, **kwargs):
        """``create_expert("hf:google/vit-base-patch16-224")`` or ``"hf:/path/to/folder"``."""
        return cls(spec, **kwargs)

    @classmethod
    def source_is_local_path(cls, spec, base):
        return (base / Path(spec).expanduser()).exists()   # as transformers: a folder first

    @classmethod
    def source_imports_code(cls, spec):
        return False   # remote code is never trusted (no trust_remote_code)


def _default_name(source):
    path = Path(source)
    return path.name if path.is_dir() else source


def _load_processor(source, processor_kwargs):
    """The saved image processor, or None when the model has no preprocessor_config.json."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(source, **(processor_kwargs or {}))
    except OSError:   # transformers' answer for a missing file (other failures propagate)
        if processor_kwargs:
            raise
        return None


def _refuse_overrides(source, **overrides):
    given = sorted(key for key, value in overrides.items() if value is not None)
    if given:
        raise TypeError(f"{source} has an image processor, which decides {given}; change its "
                        "settings with processor_kwargs= (e.g. {'image_mean': [...]}) instead")


def _processor_settings(image_input):
    """input_size (the processor's output for a square image) and its normalisation."""
    processor = image_input.processor
    blank = np.zeros((1, 64, 64, 3), np.float32)
    input_size = tuple(int(s) for s in image_input(blank, "cpu").shape[-2:])
    normalises = bool(getattr(processor, "do_normalize", False))
    rescale = getattr(processor, "rescale_factor", 1 / 255) \
        if getattr(processor, "do_rescale", True) else 1.0
    return {"input_size": input_size,
            "mean": processor.image_mean if normalises else 0.0,
            "std": processor.image_std if normalises else 1.0,
            "scale": 255.0 * rescale}


def _settings_without_processor(source, model_config, input_size, mean, std):
    if input_size is None:
        image_size = getattr(model_config, "image_size", None)
        input_size = None if image_size is None else _pair(image_size)
    settings = {"input_size": input_size, "mean": mean, "std": std}
    missing = [key for key, value in settings.items() if value is None]
    if missing:
        raise ValueError(f"{source} has no image processor (preprocessor_config.json), so "
                         f"skmll preprocesses its images and needs {missing}; pass them as "
                         "arguments")
    return settings


def _pair(size):
    return tuple(size) if isinstance(size, (list, tuple)) else (size, size)


def config_head_names(config):
    """Names from a transformers config's ``id2label``; None for its ``LABEL_<i>`` placeholders."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(config.num_labels)]
    if None in names or names == [f"LABEL_{i}" for i in range(len(names))]:
        return None
    return [str(name) for name in names]
