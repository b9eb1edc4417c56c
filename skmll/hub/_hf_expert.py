"""Hugging Face ``transformers`` image classifiers as experts."""

from pathlib import Path

from ._base import register_expert
from ._torch_expert import TorchExpert


@register_expert("hf")
class HFExpert(TorchExpert):
    """A ``transformers`` image classifier, from the Hub or a local folder.

    The model is loaded with ``AutoModelForImageClassification``. Input size, mean, std and
    rescaling are read once from the saved image processor's settings; batches are then
    preprocessed by skmll (resize to the processor's crop or target size, no crop), never by the
    processor itself.

    Parameters
    ----------
    model_id_or_path : str or path-like
        A Hub id (``"google/vit-base-patch16-224"``) or a folder written by
        ``save_pretrained``. With ``HF_HUB_OFFLINE=1`` only cached or local models load.
    name : str or None
        Unique name in the hub; defaults to the Hub id or the folder's name.
    input_size : (int, int) or None
        Overrides the size read from the image processor or the model config.
    mean, std : float or sequence of float, or None
        Override the processor's normalisation; required when the model has no image processor.
    batch_size : int, default 32
    device : str or torch.device, default "cpu"
    precision : {"fp32", "fp16", "bf16"}, default "fp32"
        See :class:`TorchExpert`.
    head_names : list of str or None
        What each output means; when None, the model config's ``id2label`` unless it holds
        only the placeholders ``LABEL_<i>``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from transformers import AutoModelForImageClassification, ViTConfig
    >>> config = ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1,
    ...                    num_attention_heads=2, intermediate_size=8, num_labels=3)
    >>> folder = tempfile.mkdtemp()
    >>> AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    >>> expert = HFExpert(folder, mean=0.5, std=0.5)
    >>> expert.n_outputs, expert.input_size
    (3, (16, 16))
    >>> expert.logits(np.zeros((2, 20, 20, 3), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, model_id_or_path, *, name=None, input_size=None, mean=None, std=None,
                 batch_size=32, device="cpu", precision="fp32", head_names=None):
        from transformers import AutoModelForImageClassification

        source = str(model_id_or_path)
        model = AutoModelForImageClassification.from_pretrained(source)
        settings = _processor_settings(source, model.config)
        if input_size is not None:
            settings["input_size"] = input_size
        settings.update({key: value for key, value in (("mean", mean), ("std", std))
                         if value is not None})
        missing = [key for key in ("input_size", "mean", "std") if settings.get(key) is None]
        if missing:
            raise ValueError(f"{source} has no image processor settings for {missing}; pass them "
                             "as arguments")
        super().__init__(model, name=name or _default_name(source),
                         channels=getattr(model.config, "num_channels", 3),
                         n_outputs=model.config.num_labels, batch_size=batch_size, device=device,
                         precision=precision,
                         head_names=head_names or config_head_names(model.config), **settings)
        self.model_id_or_path = source

    @classmethod
    def from_source(cls, spec, **kwargs):
        """``create_expert("hf:google/vit-base-patch16-224")`` or ``"hf:/path/to/folder"``."""
        return cls(spec, **kwargs)


def _default_name(source):
    path = Path(source)
    return path.name if path.is_dir() else source


def _processor_settings(source, model_config):
    """input_size / mean / std / scale from the saved image processor (None where unknown)."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(source).to_dict()
    except (OSError, ValueError):  # no preprocessor_config.json: fall back to the model config
        processor = {}
    normalize = processor.get("do_normalize", True)
    # the processor expects 0-255 pixels and multiplies them by rescale_factor
    rescale = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1
    return {
        "input_size": _input_size(processor, model_config),
        "mean": processor.get("image_mean") if normalize else 0.0,
        "std": processor.get("image_std") if normalize else 1.0,
        "scale": 255.0 * rescale,
    }


def _input_size(processor, model_config):
    crop = processor.get("crop_size") or {}
    if processor.get("do_center_crop") and "height" in crop:
        return crop["height"], crop["width"]
    size = processor.get("size") or {}
    if "height" in size:
        return size["height"], size["width"]
    if "shortest_edge" in size:
        return size["shortest_edge"], size["shortest_edge"]
    image_size = getattr(model_config, "image_size", None)
    if image_size is None:
        return None
    return tuple(image_size) if isinstance(image_size, (list, tuple)) else (image_size,) * 2


def config_head_names(config):
    """Names from a transformers config's ``id2label``; None for its ``LABEL_<i>`` placeholders."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(config.num_labels)]
    if None in names or names == [f"LABEL_{i}" for i in range(len(names))]:
        return None
    return [str(name) for name in names]
