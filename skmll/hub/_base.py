"""The expert protocol, the hub that holds experts, and the shared adapter machinery.

An expert is any object with ``name`` (str), ``n_outputs`` (int) and ``logits(images)``, where
``images`` is a float32 batch ``(n, H, W, 3)`` in [0, 1] and the result is ``(n, n_outputs)``.
skmll never sees what an expert's outputs mean: only their values.
"""

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..utils import hash_array, hash_json, new_hasher
from ._images import preprocess


@runtime_checkable
class Expert(Protocol):
    """What skmll needs of a classifier: a name, an output size and logits."""

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
    """Call ``expert.logits`` and check what comes back; returns float32 ``(n, n_heads)``.

    Raises
    ------
    ExpertError
        When the expert raises, or its output has the wrong shape or non-finite values.
    """
    try:
        out = expert.logits(images)
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
    """A content key for an expert's function.

    Uses ``expert.fingerprint`` (adapters hash their weights and preprocessing) when present;
    otherwise the expert's outputs on a fixed, seeded probe batch.
    """
    # Content only: two experts that compute the same function share their cached work,
    # whatever their names or wrapper classes.
    declared = getattr(expert, "fingerprint", None)
    if isinstance(declared, str):
        return hash_json([int(expert.n_outputs), declared])
    probe = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
    out = np.round(run_expert(expert, probe).astype(np.float64), 4)
    return hash_json([int(expert.n_outputs), "probe", hash_array(out)])


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
        """Logits for a float32 batch ``(n, H, W, 3)`` in [0, 1]; returns ``(n, n_outputs)``."""
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
