"""timm image classifiers as experts."""

from pathlib import Path

import numpy as np

from ._base import register_expert
from ._preprocess import TransformInput
from ._torch_expert import TorchExpert, load_torch_weights


@register_expert("timm")
class TimmExpert(TorchExpert):
    """A ``timm`` model, by architecture name, with pretrained or local weights.

    Images get timm's evaluation preprocessing for the model's pretrained config:
    ``create_transform(**resolve_model_data_config(model), is_training=False)``, with its input
    size, interpolation, ``crop_pct``, ``crop_mode`` (center, squash or border), mean and std.
    The transform's own steps run on each batch (:class:`~skmll.hub._preprocess.TransformInput`):
    on the whole batch as 8-bit pixels when they are torchvision's bilinear Resize, CenterCrop,
    ToTensor and Normalize (one 8-bit level from timm's PIL path at most), on one PIL image at
    a time, exactly as timm runs them, otherwise (bicubic, most timm models' interpolation;
    ``crop_mode="border"``). A single-channel model (``in_chans=1``) has no such transform in
    timm for RGB input: skmll resizes the whole image to the input size and takes its luma.

    Parameters
    ----------
    model_name : str
        A name ``timm.create_model`` knows, e.g. ``"resnet18"`` or ``"hf-hub:timm/..."``.
    name : str or None
        Unique name in the hub; defaults to ``model_name``, or to the checkpoint's file name
        when ``checkpoint_path`` is given.
    checkpoint_path : str or path-like or None
        Local weights (a state dict), read without running code: ``torch.load`` with
        ``weights_only=True``, or safetensors. When ``num_classes`` is None the classifier size
        is read from the checkpoint.
    pretrained : bool, default False
        Let timm download its pretrained weights (needs network access or a filled cache);
        ignored when ``checkpoint_path`` is given.
    num_classes : int or None
        Classifier size; None keeps the architecture's default (or the checkpoint's).
    batch_size : int, default 64
    device : str or torch.device, default "cpu"
    precision : {"fp32", "fp16", "bf16"}, default "fp32"
        See :class:`TorchExpert`.
    head_names : list of str or None
        What each output means. When None and timm's pretrained ImageNet weights are used
        unchanged, the class descriptions of timm's ``ImageNetInfo`` (e.g. ``"jersey, T-shirt,
        tee shirt"``); otherwise unknown.
    **model_kwargs
        Passed to ``timm.create_model`` (e.g. ``drop_rate``, ``in_chans``).

    Examples
    --------
    >>> import numpy as np
    >>> expert = TimmExpert("test_resnet", num_classes=4)
    >>> expert.n_outputs, expert.input_size
    (4, (160, 160))
    >>> expert.logits(np.zeros((2, 32, 32, 3), dtype=np.float32)).shape
    (2, 4)
    """

    def __init__(self, model_name, *, name=None, checkpoint_path=None, pretrained=False,
                 num_classes=None, batch_size=64, device="cpu", precision="fp32",
                 head_names=None, **model_kwargs):
        import timm

        if num_classes is not None:
            model_kwargs["num_classes"] = num_classes
        model = timm.create_model(model_name, pretrained=pretrained and checkpoint_path is None,
                                  **model_kwargs)
        if checkpoint_path is not None:
            _load_checkpoint(model, checkpoint_path, resize_classifier=num_classes is None)
            name = name or Path(checkpoint_path).stem
        if model.num_classes < 1:
            raise ValueError(f"{model_name} with num_classes=0 returns features, not logits")
        config = timm.data.resolve_model_data_config(model)
        channels = int(model_kwargs.get("in_chans", 3))
        mean, std = config["mean"], config["std"]
        if channels == 1:  # timm keeps RGB statistics for single-channel models: average them
            mean, std = np.mean(mean), np.mean(std)
        if head_names is None and pretrained and checkpoint_path is None:
            head_names = imagenet_head_names(model)
        super().__init__(model, name=name or model_name, input_size=config["input_size"][1:],
                         mean=mean, std=std, channels=channels, n_outputs=model.num_classes,
                         batch_size=batch_size, device=device, precision=precision,
                         head_names=head_names)
        if channels == 3:
            self.image_input = TransformInput(
                timm.data.create_transform(**config, is_training=False))
        self.model_name = model_name

    path_keywords = ("checkpoint_path",)

    @classmethod
    def from_source(cls, spec, **kwargs):
        """``create_expert("timm:resnet18", checkpoint_path=..., num_classes=...)``."""
        return cls(spec, **kwargs)

    @classmethod
    def source_is_local_path(cls, spec, base):
        return False   # an architecture name timm knows

    @classmethod
    def source_imports_code(cls, spec):
        return False


def _load_checkpoint(model, path, *, resize_classifier):
    state = load_torch_weights(path)
    classifier = model.pretrained_cfg.get("classifier")
    weight = state.get(f"{classifier}.weight") if isinstance(classifier, str) else None
    if resize_classifier and weight is not None and weight.shape[0] != model.num_classes:
        model.reset_classifier(int(weight.shape[0]))
    model.load_state_dict(state)


def imagenet_head_names(model):
    """The ImageNet class descriptions of a timm model with its pretrained classifier, or None.

    Read through timm's public ``ImageNetInfo`` for the ImageNet subset its classifier size
    names (1k, 12k, 21k, 22k); None when the classifier was resized away from the pretrained
    one or its size names no ImageNet subset.
    """
    from timm.data import ImageNetInfo, infer_imagenet_subset

    pretrained_classes = model.pretrained_cfg.get("num_classes")
    subset = infer_imagenet_subset(model)
    if subset is None or model.num_classes != pretrained_classes:
        return None
    return ImageNetInfo(subset).label_descriptions()
