"""The expert protocol, the hub that holds experts, and the shared adapter machinery.

An expert is any object with ``name`` (str), ``n_outputs`` (int) and ``logits(images)``; see
:class:`Expert` for exactly what it receives and returns. skmll never sees what an expert's
outputs mean: only their values.
"""

import importlib
import pkgutil
from collections.abc import Sequence
from functools import partial
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..utils import hash_array, hash_json, new_hasher
from ._images import MixedSizeBatch, map_size_groups, preprocess


@runtime_checkable
class Expert(Protocol):
    """What skmll needs of a classifier: a name, an output size and logits.

    ``logits(images)`` receives a float32 NumPy array of shape ``(n, H, W, 3)``: RGB, channels
    last, values in [0, 1] (grayscale images have the gray value in all three channels; alpha
    is dropped). H and W are the images' own sizes, never changed by skmll: the SDAG's
    representative images when labelling, the user's images when predicting. All images of one
    call share one size; images of different sizes come in separate calls, one per size (rows
    are put back in order), so an expert must resize to its own input size itself. The array
    is the expert's own copy: writing into it changes nothing elsewhere. ``logits`` returns
    finite ``(n, n_outputs)`` logits, a NumPy array or a torch tensor. skmll never calls an
    expert on anything else (no probe images).

    Labels are cached on disk only for an expert with a ``fingerprint`` attribute: a str that
    names the function it computes and changes whenever that function changes (weights,
    preprocessing or code), e.g. ``"my-net-v3"`` or a hash of its weights file. Two experts
    with the same ``fingerprint`` and ``n_outputs`` share cached labels. Without a
    ``fingerprint`` the expert is pre-tested in memory at every ``fit`` and nothing of it is
    stored, since no key derived from arbitrary code can tell two functions apart. The adapters
    (:class:`TorchExpert`, :class:`OnnxExpert`, ...) hash their weights and preprocessing.

    Examples
    --------
    >>> import numpy as np
    >>> class Brightness:
    ...     name, n_outputs, fingerprint = "brightness", 2, "brightness-v1"
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1)
    >>> isinstance(Brightness(), Expert)
    True
    """

    name: str
    n_outputs: int

    def logits(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


class ExpertError(RuntimeError):
    """An expert raised, or returned something other than a finite (n, n_outputs) array."""

    def __init__(self, expert_name, message):
        super().__init__(f"expert {expert_name!r}: {message}")
        self.expert_name = expert_name
        self.message = message

    def __reduce__(self):  # pickle rebuilds exceptions from args; this one needs both parts
        return type(self), (self.expert_name, self.message)


def n_heads(expert):
    """Heads skmll works with: a single-logit (sigmoid) expert becomes two heads [0, z]."""
    return max(2, int(expert.n_outputs))


def run_expert(expert, images):
    """Call ``expert.logits`` on a canonical batch and check what comes back.

    Images of different sizes (a :class:`MixedSizeBatch`) go to the expert in one call per
    size, and the rows come back in order. An expert that is not a :class:`BaseExpert` gets its
    own copy of the images, so writing into them changes neither the caller's array nor what
    the next expert sees. No call is made for an empty batch.

    Returns
    -------
    ndarray of shape (n, n_heads), float32

    Raises
    ------
    ExpertError
        When the expert raises, or its output has the wrong shape or non-finite values.
    """
    if len(images) == 0:
        return np.zeros((0, n_heads(expert)), dtype=np.float32)
    return map_size_groups(partial(_run_on_one_size, expert), images)


def _run_on_one_size(expert, images):
    # Adapters make new tensors from their input; user code may write into it.
    given = images if isinstance(expert, BaseExpert) else images.copy()
    try:
        out = expert.logits(given)
    except Exception as exc:  # any failure inside user code is reported with the expert's name
        raise ExpertError(expert.name, f"logits() raised {type(exc).__name__}: {exc}") from exc
    out = out.detach().cpu().numpy() if torch.is_tensor(out) else np.asarray(out)
    expected = (len(images), int(expert.n_outputs))
    if out.shape != expected:
        raise ExpertError(expert.name, f"logits() returned shape {out.shape}; expected {expected}")
    if not np.issubdtype(out.dtype, np.number):
        raise ExpertError(expert.name, f"logits() returned dtype {out.dtype}; expected floats")
    out = out.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ExpertError(expert.name, "logits() returned NaN or infinite values")
    if expected[1] == 1:
        out = np.concatenate([np.zeros_like(out), out], axis=1)
    return out


def expert_fingerprint(expert):
    """The key of an expert's cached work, or None when it must not be cached.

    An expert that declares a str ``fingerprint`` (every adapter does: a hash of its weights
    and preprocessing) is keyed by it and its ``n_outputs``. For any other expert no key can be
    derived safely from arbitrary code (two different functions can agree on any probe), so
    the answer is None: its work is done in memory and never stored or loaded. Two None
    identities are not equal experts. The expert is never called.

    Examples
    --------
    >>> class Declared:
    ...     name, n_outputs, fingerprint = "declared", 3, "declared-v2"
    ...     def logits(self, images): ...
    >>> class Anonymous:
    ...     name, n_outputs = "anonymous", 3
    ...     def logits(self, images): ...
    >>> expert_fingerprint(Declared()) == expert_fingerprint(Declared())   # same declared key
    True
    >>> print(expert_fingerprint(Anonymous()))
    None
    """
    # Content only: two experts that compute the same function share their cached work,
    # whatever their names or wrapper classes.
    declared = getattr(expert, "fingerprint", None)
    if isinstance(declared, str):
        return hash_json([int(expert.n_outputs), declared])
    return None


def _validate_expert(expert, position):
    if not isinstance(getattr(expert, "name", None), str) or not expert.name:
        raise TypeError(f"expert at position {position} needs a non-empty str attribute 'name'")
    n_outputs = getattr(expert, "n_outputs", None)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1:
        raise TypeError(f"expert {expert.name!r} needs an int attribute 'n_outputs' >= 1; "
                        f"got {n_outputs!r}")
    if not callable(getattr(expert, "logits", None)):
        raise TypeError(f"expert {expert.name!r} needs a method 'logits(images)'")


class ModelHub(Sequence):
    """An ordered collection of experts with unique names.

    Parameters
    ----------
    experts : iterable of Expert
        Objects with ``name``, ``n_outputs`` and ``logits(images)``.

    Examples
    --------
    >>> import numpy as np
    >>> class Mean:
    ...     name, n_outputs = "mean", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([m, 1 - m], axis=1)
    >>> hub = ModelHub([Mean()])
    >>> len(hub), hub.names
    (1, ['mean'])
    """

    def __init__(self, experts=()):
        self._experts = []
        for expert in experts:
            self.add(expert)

    def add(self, expert):
        """Append an expert; its name must be new to the hub. Returns the hub."""
        _validate_expert(expert, len(self._experts))
        if expert.name in self.names:
            raise ValueError(f"duplicate expert name {expert.name!r}: names in a hub must be unique")
        self._experts.append(expert)
        return self

    def subset(self, names):
        """A new hub holding the named experts, in the given order."""
        return ModelHub([self[name] for name in names])

    @property
    def names(self):
        return [e.name for e in self._experts]

    def __len__(self):
        return len(self._experts)

    def __getitem__(self, key):
        if isinstance(key, str):
            for expert in self._experts:
                if expert.name == key:
                    return expert
            raise KeyError(f"no expert named {key!r} in the hub; it has {self.names}")
        return self._experts[key]

    def __repr__(self):
        return f"ModelHub({self.names})"


class BaseExpert:
    """Shared adapter machinery: batching, preprocessing, inference mode, fingerprints.

    Subclasses implement ``_forward(tensor) -> array or tensor`` and ``_weights_digest(hasher)``
    and set ``n_outputs``; the preprocessing parameters are documented in :func:`preprocess`.
    """

    layout = "NCHW"

    def __init__(self, name, *, input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 channels=3, scale=1.0, batch_size=64):
        self.name = name
        self.input_size = tuple(int(s) for s in input_size)
        self.mean = tuple(float(m) for m in np.broadcast_to(mean, (channels,)))
        self.std = tuple(float(s) for s in np.broadcast_to(std, (channels,)))
        self.channels = int(channels)
        self.scale = float(scale)
        self.batch_size = int(batch_size)
        self._fingerprint = None

    def _preprocess(self, images):
        return preprocess(images, input_size=self.input_size, mean=self.mean, std=self.std,
                          channels=self.channels, scale=self.scale, layout=self.layout)

    def logits(self, images):
        """Logits for a float32 batch ``(n, H, W, 3)`` in [0, 1]; returns ``(n, n_outputs)``.

        A :class:`MixedSizeBatch` is run one size at a time.
        """
        if isinstance(images, MixedSizeBatch):
            return map_size_groups(self.logits, images)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{self.name}: images must have shape (n, H, W, 3); "
                             f"got {images.shape}")
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                out = self._forward(self._preprocess(images[start:start + self.batch_size]))
                out = out.detach().cpu().numpy() if torch.is_tensor(out) else np.asarray(out)
                chunks.append(out.reshape(len(out), -1).astype(np.float32, copy=False))
        if not chunks:
            return np.zeros((0, self.n_outputs), dtype=np.float32)
        return np.concatenate(chunks)

    @property
    def fingerprint(self):
        """Hash of the weights and the preprocessing: the key of this expert's cached label."""
        if self._fingerprint is None:
            h = new_hasher()
            h.update(hash_json([self.input_size, self.mean, self.std, self.channels,
                                self.scale, int(self.n_outputs)]).encode())
            self._weights_digest(h)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, n_outputs={self.n_outputs})"


def hash_state_dict(state_dict, hasher):
    """Feed a torch state dict (names, dtypes, shapes, values) into ``hasher``."""
    for key in sorted(state_dict):
        value = state_dict[key]
        hasher.update(key.encode())
        if torch.is_tensor(value):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            hash_array(value.numpy(), hasher)


# --- registry: ``create_expert("timm:resnet18")`` ------------------------------------------------

_SOURCES = {}


def register_expert(prefix):
    """Class decorator: make ``create_expert(f"{prefix}:<spec>", ...)`` build this adapter.

    The class needs a classmethod ``from_source(spec, **kwargs)``. Adapter modules live in
    ``skmll.hub`` and end in ``_expert``; they are found and imported on first use.
    """
    def decorator(cls):
        _SOURCES[prefix] = cls
        return cls
    return decorator


def _discover_adapters():
    from . import __path__ as hub_path
    for module in pkgutil.iter_modules(hub_path):
        if module.name.endswith("_expert"):
            importlib.import_module(f"{__package__}.{module.name}")


def list_expert_sources():
    """The prefixes ``create_expert`` understands, e.g. ``['hf', 'keras', 'onnx', ...]``."""
    _discover_adapters()
    return sorted(_SOURCES)


def create_expert(source, **kwargs):
    """Build an expert from ``"<prefix>:<spec>"``, e.g. ``"timm:resnet18"`` or ``"onnx:m.onnx"``.

    Keyword arguments go to the adapter's ``from_source``. See :func:`list_expert_sources`.
    """
    prefix, sep, spec = str(source).partition(":")
    _discover_adapters()
    if not sep or prefix not in _SOURCES:
        raise ValueError(f"unknown expert source {source!r}; use '<prefix>:<spec>' with a prefix "
                         f"in {sorted(_SOURCES)}")
    return _SOURCES[prefix].from_source(spec, **kwargs)
