"""Fitted scikit-learn classifiers on image pixels as experts, read from skops files."""

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._base import BaseExpert, ExpertError, register_expert
from ._heads import check_head_names
from ._outputs import ModelFileMixin, probabilities_to_logits

_OUTPUTS = ("auto", "decision_function", "predict_proba")


@register_expert("sklearn")
class SklearnExpert(ModelFileMixin, BaseExpert):
    """A fitted scikit-learn classifier on flattened image pixels, read from a skops file.

    The file is read with :func:`skops.io.loads` trusting only the types skops trusts by
    default (scikit-learn's estimators, NumPy, SciPy): a file that names any other type is
    refused with the list of those types, and nothing in it runs. Pickle files are never read.

    The model receives what it was trained on, as the parameters describe it: each image
    resized to ``input_size`` (bilinear, antialiased), converted to ``channels`` (1: luma,
    BT.601), ``(x * scale - mean) / std`` with x in [0, 1], then flattened channels last, as
    ``images.reshape(n, -1)`` flattens a NumPy batch ``(n, H, W)`` or ``(n, H, W, 3)``.

    Parameters
    ----------
    path : str or path-like
        The ``.skops`` file (:func:`skops.io.dump` of the fitted estimator or pipeline). Its
        bytes are kept, so the expert pickles and fingerprints by content.
    input_size : (int, int)
        The (H, W) of the training images; ``H * W * channels`` must equal the model's
        ``n_features_in_``.
    name : str or None
        Unique name in the hub; defaults to the file name without extension.
    channels : {1, 3}, default 1
    mean, std : float or sequence of float, default 0 and 1
    scale : float, default 1.0
        16 for scikit-learn's ``load_digits`` (pixels 0-16), 255 for raw 8-bit pixels.
    output : {"auto", "decision_function", "predict_proba"}, default "auto"
        Which method gives the logits: "auto" takes ``decision_function`` when the model has
        one (a binary model's single score z becomes the two heads ``[0, z]``), else the log of
        ``predict_proba``.
    batch_size : int, default 256
    device : str or torch.device, default "cpu"
        scikit-learn runs on the CPU: another device is accepted (so that a hub can be moved
        as a whole) and the model stays on the CPU, with a warning.
    head_names : list of str or None
        What each output means; the model's ``classes_`` (as text) when None.

    Examples
    --------
    >>> import os, tempfile, numpy as np, skops.io
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> pixels = rng.random((60, 4, 4))
    >>> bright = LogisticRegression().fit(pixels.reshape(60, -1), pixels.mean(axis=(1, 2)) > 0.5)
    >>> path = os.path.join(tempfile.mkdtemp(), "bright.skops")
    >>> skops.io.dump(bright, path)
    >>> expert = SklearnExpert(path, input_size=(4, 4))
    >>> expert.name, expert.n_outputs, expert.head_names
    ('bright', 2, ['False', 'True'])
    >>> expert.logits(np.ones((1, 4, 4, 3), dtype=np.float32)).argmax(axis=1)
    array([1])
    """

    _runtime = "model"
    layout = "NHWC"   # flattened channels last, as NumPy's reshape of (n, H, W, C)

    def __init__(self, path, *, input_size, name=None, channels=1, mean=0.0, std=1.0,
                 scale=1.0, output="auto", batch_size=256, device="cpu", head_names=None):
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}; got {output!r}")
        self._model_bytes = Path(path).read_bytes()
        self._path_name = Path(path).name
        super().__init__(name or Path(path).stem, input_size=input_size, mean=mean, std=std,
                         channels=channels, scale=scale, batch_size=batch_size, device=device)
        self.model = self._rebuild()
        self.output = _output_method(self.model, output, self.name)
        self._check_features()
        self.n_outputs = len(self.model.classes_)
        self.head_names = check_head_names(
            head_names if head_names is not None else [str(c) for c in self.model.classes_],
            self.n_outputs, self.name)

    def _rebuild(self):
        import skops.io

        if not zipfile.is_zipfile(io.BytesIO(self._model_bytes)):
            raise ValueError(f"{self._path_name} is not a skops file (the zip archive "
                             "skops.io.dump writes); pickle files are never read")
        untrusted = skops.io.get_untrusted_types(data=self._model_bytes)
        if untrusted:
            raise ExpertError(self.name, f"{self._path_name} refused: it names types that skops "
                              f"does not trust by default: {untrusted} (skmll runs no code from "
                              "a model file; save a model made of scikit-learn, NumPy and SciPy "
                              "types)")
        return skops.io.loads(self._model_bytes)

    def _check_features(self):
        expected = self.input_size[0] * self.input_size[1] * self.channels
        n_features = getattr(self.model, "n_features_in_", None)
        if n_features is not None and n_features != expected:
            raise ValueError(f"{self.name}: the model takes {n_features} features, but "
                             f"input_size {self.input_size} x {self.channels} channel(s) gives "
                             f"{expected} pixels")

    def _move(self, device):
        if device.type != "cpu":
            warnings.warn(f"{self.name}: scikit-learn runs on the CPU; the expert stays there "
                          f"(asked for {str(device)!r})", UserWarning, stacklevel=3)

    def _forward(self, tensor):
        pixels = tensor.numpy().reshape(len(tensor), -1).astype(np.float64)
        scores = np.asarray(getattr(self.model, self.output)(pixels), dtype=np.float64)
        if self.output == "predict_proba":
            return probabilities_to_logits(scores)
        if scores.ndim == 1:   # a binary model's score for classes_[1]
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        return scores.astype(np.float32)

    def _weights_digest(self, hasher):
        hasher.update(f"sklearn|{self.output}|".encode())
        hasher.update(self._model_bytes)


def _output_method(model, output, name):
    if output == "auto":
        output = ("decision_function" if hasattr(model, "decision_function")
                  else "predict_proba")
    if not callable(getattr(model, output, None)) or not hasattr(model, "classes_"):
        raise ValueError(f"{name}: the model has no {output}() or no classes_: a fitted "
                         "scikit-learn classifier is needed")
    return output
