"""Shared by the file-based adapters: reading a model's output kind, size and input agreement."""

import importlib.util
from pathlib import Path

import numpy as np

# float32 cannot tell probabilities closer than this to 0 or 1 apart, so clipping there keeps
# every logarithm finite without changing any ranking the model can express
_PROBABILITY_FLOOR = 1e-7

_OUTPUT_KINDS = ("auto", "logits", "probabilities")


def probabilities_to_logits(probabilities):
    """Logits that give back ``probabilities``: log-probabilities, or log-odds for one column.

    A softmax of log-probabilities returns the probabilities, so they are valid logits (any
    per-row constant aside). A single column holds a sigmoid's ``p``; its log-odds ``z`` is what
    the expert's two heads ``[0, z]`` need to give back ``[1 - p, p]``.

    Examples
    --------
    >>> import numpy as np
    >>> logits = probabilities_to_logits(np.array([[0.25, 0.75]]))
    >>> (np.exp(logits) / np.exp(logits).sum()).round(2).tolist()
    [[0.25, 0.75]]
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _PROBABILITY_FLOOR,
                1 - _PROBABILITY_FLOOR)
    logits = np.log(p) - np.log1p(-p) if p.shape[1] == 1 else np.log(p)
    return logits.astype(np.float32)


def check_output_kind(output):
    """Validate an ``output=`` argument of the ONNX and Keras adapters."""
    if output not in _OUTPUT_KINDS:
        raise ValueError(f"output must be one of {_OUTPUT_KINDS}; got {output!r}")
    return output


def agree_with_model(given, from_model, what):
    """The user's value, checked against the model's fixed one; the model's when not given."""
    if given is None:
        if from_model is None and what == "input_size":
            raise ValueError("the model's input size is not fixed; pass input_size=(H, W)")
        return from_model
    if from_model is not None and tuple(np.atleast_1d(given)) != tuple(np.atleast_1d(from_model)):
        raise ValueError(f"{what}={given} disagrees with the model's input, which needs "
                         f"{from_model}")
    return given


def count_outputs(expert, dims):
    """Output width from the model's output dims, or from one forward pass where they vary."""
    if all(isinstance(d, int) for d in dims):
        return int(np.prod(dims))
    blank = np.zeros((1, *expert.input_size, 3), dtype=np.float32)
    return int(expert._forward(expert._preprocess(blank)).shape[1])


class ModelFileMixin:
    """For experts read from one model file whose runtime object does not pickle.

    The expert keeps the file's bytes (``_model_bytes``); pickling drops the runtime object
    named by ``_runtime`` and ``_rebuild()`` makes it again from the bytes on load, so the same
    loader serves construction and unpickling. ``create_expert("<source>:/path", **kwargs)``
    passes the path to the constructor.
    """

    _runtime = None   # name of the attribute that holds the runtime object

    @classmethod
    def from_source(cls, spec, **kwargs):
        return cls(spec, **kwargs)

    @classmethod
    def source_is_local_path(cls, spec, base):
        return True   # the source is the model file

    def _rebuild(self):
        raise NotImplementedError

    def __getstate__(self):
        state = self.__dict__.copy()
        del state[self._runtime]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        setattr(self, self._runtime, self._rebuild())


def shipped_model_file(package, relative_path):
    """The path of a model file inside an installed package, or None when either is missing.

    The package is located, not imported: model packages often pin heavy dependencies that
    skmll does not need, so they are installed with ``--no-deps`` and may not import.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative_path
    return path if path.is_file() else None
