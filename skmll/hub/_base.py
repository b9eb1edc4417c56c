"""The expert protocol, the hub that holds experts, and the shared adapter machinery.

An expert is any object with ``name`` (str), ``n_outputs`` (int) and ``logits(images)``; see
:class:`Expert` for exactly what it receives and returns. skmll never sees what an expert's
outputs mean: only their values.
"""

import contextlib
import importlib
import importlib.metadata
import os
import pkgutil
import warnings
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

    An expert may also have ``head_names`` (a list of str, one per output) saying what its
    outputs mean; they only make explanations readable (:func:`describe_head`), and skmll
    never uses them to label, select or predict.

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


def validate_expert(expert, position):
    """Raise unless ``expert`` meets the protocol: a name, ``n_outputs`` >= 1, ``logits``."""
    if not isinstance(getattr(expert, "name", None), str) or not expert.name:
        raise TypeError(f"expert at position {position} needs a non-empty str attribute 'name'")
    if getattr(expert, "loads_on_demand", False) and expert.declared("n_outputs") is None:
        return   # checked when the expert is built: reading n_outputs here would build it
    n_outputs = getattr(expert, "n_outputs", None)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1:
        raise TypeError(f"expert {expert.name!r} needs an int attribute 'n_outputs' >= 1; "
                        f"got {n_outputs!r}")
    if not callable(getattr(expert, "logits", None)):
        raise TypeError(f"expert {expert.name!r} needs a method 'logits(images)'")


class BaseExpert:
    """Shared adapter machinery: batching, preprocessing, inference mode, fingerprints, device.

    Subclasses implement ``_forward(tensor) -> array or tensor`` and ``_weights_digest(hasher)``
    and set ``n_outputs``; the preprocessing parameters are documented in :func:`preprocess`.
    ``device`` and ``precision`` are checked by :func:`check_device` and
    :func:`check_precision`; a subclass that runs elsewhere than torch overrides ``_move``
    (called by :meth:`to`) and refuses the precisions its runtime cannot honour.
    """

    layout = "NCHW"
    head_names = None   # what each output means, where the model or the user says (explain only)

    # What a hub file must know of an adapter's source without building it (read by
    # LazyExpert; an adapter that does not subclass BaseExpert may declare the same): the
    # keyword arguments that name local files, resolved against the hub file's folder...
    path_keywords = ()

    @classmethod
    def source_is_local_path(cls, spec, base):
        """Whether ``spec`` (the source after ``"<prefix>:"``) names a local file or folder,
        resolved against the folder ``base``."""
        return False

    @classmethod
    def source_imports_code(cls, spec):
        """Whether building from ``spec`` imports and runs code it names (only with consent
        when a hub file came with a label directory)."""
        return False

    def __init__(self, name, *, input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 channels=3, scale=1.0, batch_size=64, device="cpu", precision="fp32"):
        self.name = name
        self.input_size = tuple(int(s) for s in input_size)
        self.mean = tuple(float(m) for m in np.broadcast_to(mean, (channels,)))
        self.std = tuple(float(s) for s in np.broadcast_to(std, (channels,)))
        self.channels = int(channels)
        self.scale = float(scale)
        self.batch_size = int(batch_size)
        self.device = self._check_device(device)
        self.precision = check_precision(precision)
        self._fingerprint = None

    def to(self, device):
        """Run this expert on ``device`` from now on (moved in place, as ``nn.Module.to``).

        Returns the expert. The fingerprint, hence cached labels, does not depend on the device.

        Raises
        ------
        ValueError
            When ``device`` is not a device name, or names a CUDA device that is not available.
        """
        device = self._check_device(device)
        if device != self.device:
            self._move(device)
            self.device = device
        return self

    def _move(self, device):
        raise NotImplementedError(f"{type(self).__name__} cannot move to {device}")

    @staticmethod
    def _check_device(device):
        """The checked device; adapters whose runtime is not torch check it their own way."""
        return check_device(device)

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
        with torch.inference_mode(), precision_context(self.device, self.precision):
            for start in range(0, len(images), self.batch_size):
                out = self._forward(self._preprocess(images[start:start + self.batch_size]))
                out = (out.detach().float().cpu().numpy() if torch.is_tensor(out)
                       else np.asarray(out))
                chunks.append(out.reshape(len(out), -1).astype(np.float32, copy=False))
        if not chunks:
            return np.zeros((0, self.n_outputs), dtype=np.float32)
        return np.concatenate(chunks)

    @property
    def fingerprint(self):
        """Hash of the weights, the preprocessing and a reduced precision: the key of this
        expert's cached label. The device is not part of it (fp32 runs agree across devices to
        float rounding); fp16 and bf16 change outputs, so they are."""
        if self._fingerprint is None:
            h = new_hasher()
            identity = [self.input_size, self.mean, self.std, self.channels, self.scale,
                        int(self.n_outputs)]
            if self.precision != "fp32":   # fp32 keeps the fingerprints labels were cached under
                identity.append(self.precision)
            h.update(hash_json(identity).encode())
            self._weights_digest(h)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, n_outputs={self.n_outputs})"


@contextlib.contextmanager
def using_expert(expert):
    """Run ``expert`` within the block; a :class:`~skmll.hub.LazyExpert` built in it is released
    after.

    One that was built before the block stays built. Other experts are left as they are.
    Labelling runs each expert's node shards in such a block, so a worker holds one lazily
    built model at a time.

    Examples
    --------
    >>> import numpy as np
    >>> from skmll.hub import LazyExpert
    >>> expert = LazyExpert("timm:test_resnet", num_classes=2, n_outputs=2)
    >>> with using_expert(expert):
    ...     _ = expert.logits(np.zeros((1, 32, 32, 3), dtype=np.float32))
    ...     expert.is_loaded
    True
    >>> expert.is_loaded
    False
    """
    borrowed = getattr(expert, "_borrowed", None)   # an expert that loads on demand
    if borrowed is None:
        yield expert
        return
    with borrowed():
        yield expert



def move_experts(experts, device):
    """Move every expert that can move (has ``to(device)``) to ``device``, in place.

    Adapters (:class:`BaseExpert`) and :class:`LazyExpert` can; an expert written against the
    bare protocol cannot, and stays where it is, with a warning naming it. Returns the experts.

    Raises
    ------
    ValueError
        When ``device`` names no device or one this machine does not have (before any expert
        moves).
    """
    check_device(device)
    experts = list(experts)
    unmoved = [e.name for e in experts if not callable(getattr(e, "to", None))]
    for expert in experts:
        if expert.name not in unmoved:
            expert.to(device)
    if unmoved:
        warnings.warn(f"experts {unmoved} have no to(device) method and stay where they run; "
                      f"the others now run on {device!r}", UserWarning, stacklevel=3)
    return experts


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_device(device):
    """``device`` as a ``torch.device``, refused when it cannot be used here.

    Parameters
    ----------
    device : str or torch.device
        E.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``. Nothing is chosen for the caller: CUDA is used
        only when named.

    Raises
    ------
    ValueError
        When ``device`` names no device, or a CUDA (or MPS) device this machine does not have.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu' is not a torch device name (e.g. 'cpu', 'cuda', 'cuda:1')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device name (e.g. 'cpu', 'cuda', "
                         "'cuda:1')") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but torch finds no CUDA GPU "
                             f"here (torch.cuda.is_available() is False; torch "
                             f"{torch.__version__}, CUDA build {torch.version.cuda})")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} was asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was asked for, but MPS is not available here")
    return parsed


def check_precision(precision):
    """``precision`` checked: one of "fp32", "fp16", "bf16"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}; got {precision!r}")
    return precision


def precision_context(device, precision):
    """The context a forward pass runs in: autocast to fp16 or bf16, or strict fp32.

    fp32 on CUDA turns TF32 off for convolutions and matrix products while it lasts (torch lets
    cuDNN use TF32 by default, ~1e-3 relative error), so fp32 labels agree with the CPU's to
    float rounding. fp16 and bf16 run under ``torch.autocast``; outputs still come back as
    float32.
    """
    if precision != "fp32":
        return torch.autocast(device.type, dtype=PRECISIONS[precision])
    if device.type == "cuda":
        return _strict_fp32()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _strict_fp32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


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

# Other packages add sources through this entry-point group: the entry point's name is the
# prefix and its object the adapter class, e.g. ``mysource = "mypackage.experts:MyExpert"``.
ENTRY_POINT_GROUP = "skmll.experts"

_PATH_SUFFIXES = (".onnx", ".keras", ".h5", ".pt", ".pth", ".safetensors", ".bin")


def register_expert(prefix):
    """Class decorator: make ``create_expert(f"{prefix}:<spec>", ...)`` build this adapter.

    The class needs a classmethod ``from_source(spec, **kwargs)`` that takes ``name=``. Adapter
    modules live in ``skmll.hub`` and end in ``_expert``; they are found and imported on first
    use. Other packages register through the ``skmll.experts`` entry-point group (see
    :func:`create_expert`). Registering a prefix that is taken warns and replaces its adapter.
    """
    if not isinstance(prefix, str) or not prefix or ":" in prefix:
        raise ValueError(f"an expert source prefix must be a non-empty str without ':'; "
                         f"got {prefix!r}")

    def decorator(cls):
        previous = _SOURCES.get(prefix)
        if previous is not None and previous is not cls:
            warnings.warn(f"expert source {prefix!r} of {_qualified(previous)} is replaced by "
                          f"{_qualified(cls)}", stacklevel=2)
        _SOURCES[prefix] = cls
        return cls
    return decorator


def _qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _discover_adapters():
    # the adapter modules beside this one, found by file name (importing the package itself
    # from here would make every module of it depend on every other)
    for module in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if module.name.endswith("_expert"):
            importlib.import_module(f"{__package__}.{module.name}")


def _entry_points():
    return {entry.name: entry
            for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def list_expert_sources():
    """The prefixes ``create_expert`` understands, e.g. ``['hf', 'keras', 'onnx', ...]``.

    Includes the sources other packages declare in the ``skmll.experts`` entry-point group,
    without importing them.
    """
    _discover_adapters()
    return sorted(set(_SOURCES) | set(_entry_points()))


def split_source(source):
    """``"<prefix>:<spec>"`` split into its prefix and a non-empty spec, both checked.

    Raises
    ------
    ValueError
        When there is no prefix (a path is named as such), the spec is empty, or no adapter
        has the prefix.
    """
    prefix, sep, spec = str(source).partition(":")
    if not sep:
        hint = ""
        if "/" in prefix or "\\" in prefix or prefix.endswith(_PATH_SUFFIXES):
            hint = f"; {source!r} looks like a path: prefix it with its source, e.g. 'onnx:'"
        raise ValueError(f"expert source {source!r} has no prefix: use '<prefix>:<spec>' with a "
                         f"prefix in {list_expert_sources()}{hint}")
    if not spec.strip():
        raise ValueError(f"expert source {source!r} names no model after {prefix + ':'!r}")
    if find_adapter(prefix) is None:
        raise ValueError(f"unknown expert source {source!r}; use '<prefix>:<spec>' with a "
                         f"prefix in {list_expert_sources()}")
    return prefix, spec


def find_adapter(prefix):
    """The adapter class of ``prefix`` (built in, or from an entry point); None if unknown."""
    _discover_adapters()
    if prefix not in _SOURCES:
        entry = _entry_points().get(prefix)
        if entry is None:
            return None
        adapter = entry.load()
        if not callable(getattr(adapter, "from_source", None)):
            raise TypeError(f"entry point {entry.name} = {entry.value!r} of group "
                            f"{ENTRY_POINT_GROUP!r} is not an adapter: it has no from_source()")
        _SOURCES.setdefault(prefix, adapter)   # its module may have registered it already
    return _SOURCES[prefix]


def create_expert(source, **kwargs):
    """Build an expert from ``"<prefix>:<spec>"``, e.g. ``"timm:resnet18"`` or ``"onnx:m.onnx"``.

    Keyword arguments go to the adapter's ``from_source``. Prefixes come from skmll's adapters
    and from other packages' ``skmll.experts`` entry points; see :func:`list_expert_sources`.
    To build the expert only when it is first run, use :class:`LazyExpert`.

    Raises
    ------
    ValueError
        For a source without a known prefix or with an empty spec.

    Examples
    --------
    >>> expert = create_expert("timm:test_resnet", num_classes=3, name="tiny")
    >>> expert.name, expert.n_outputs
    ('tiny', 3)
    >>> create_expert("timm:")
    Traceback (most recent call last):
    ...
    ValueError: expert source 'timm:' names no model after 'timm:'
    """
    prefix, spec = split_source(source)
    return find_adapter(prefix).from_source(spec, **kwargs)
