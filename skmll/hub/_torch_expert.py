"""Any ``torch.nn.Module`` classifier as an expert."""

import copy
import importlib
import re
from collections.abc import Mapping

import torch

from ._base import BaseExpert, ExpertError, hash_state_dict, register_expert
from ._cost import forward_gflops
from ._images import preprocess
from ._heads import check_head_names

# "package.module:factory": a callable named by where it is imported from
_FACTORY_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


@register_expert("torch")
class TorchExpert(BaseExpert):
    """Wrap an ``nn.Module`` that maps ``(n, C, H, W)`` inputs to ``(n, n_outputs)`` logits.

    The module may return the logits tensor itself, a tuple or list whose first element is the
    logits (as many model libraries do), or an object with a ``logits`` tensor (attribute or
    key, as Hugging Face models do); anything else is an :class:`ExpertError`.

    Parameters
    ----------
    module : torch.nn.Module
        The classifier; it is put in eval mode and never trained.
    name : str
        Unique name in the hub.
    input_size : (int, int)
        The (H, W) the module expects; images are resized to it.
    mean, std : float or sequence of float, default 0 and 1
        Per-channel normalisation after ``scale``: ``(x * scale - mean) / std``, x in [0, 1].
    channels : {1, 3}, default 3
        1 feeds the module grayscale (luma) images.
    scale : float, default 1.0
    n_outputs : int or None
        Output size; when None it is found by one forward pass on a blank image.
    batch_size : int, default 64
    device : str or torch.device, default "cpu"
        Where the module runs and images are resized and normalised; CUDA only when named
        (a clear error when it is not available). :meth:`to` moves the expert later.
    precision : {"fp32", "fp16", "bf16"}, default "fp32"
        "fp16" and "bf16" run the module under ``torch.autocast`` (outputs still float32);
        they change the fingerprint, so their labels are cached apart from fp32's. fp32 on
        CUDA runs without TF32.
    head_names : list of str or None
        What each output means, if known (shown by ``explain``; never used to select).

    Attributes
    ----------
    image_input : callable or None
        The model's own preprocessing, set by adapters whose library defines it
        (:class:`HFExpert`, :class:`TimmExpert`): ``image_input(images, device)`` turns a
        canonical batch into the module's input tensor and ``image_input.describe()`` names
        what it does (hashed into the fingerprint). None: skmll resizes the whole image to
        ``input_size`` and normalises with ``scale``, ``mean`` and ``std``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> expert = TorchExpert(net, name="tiny", input_size=(8, 8))
    >>> expert.n_outputs
    4
    >>> expert.logits(np.zeros((2, 16, 16, 3), dtype=np.float32)).shape
    (2, 4)
    """

    image_input = None

    def _count_gflops(self, images):
        return forward_gflops(self, images)

    def __init__(self, module, *, name, input_size, mean=0.0, std=1.0, channels=3, scale=1.0,
                 n_outputs=None, batch_size=64, device="cpu", precision="fp32", head_names=None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        super().__init__(name, input_size=input_size, mean=mean, std=std, channels=channels,
                         scale=scale, batch_size=batch_size, device=device, precision=precision)
        self.module = module.to(self.device).eval()
        self.channels_last = True
        probed = self._choose_layout(need_width=n_outputs is None)
        self.n_outputs = int(n_outputs) if n_outputs is not None else probed
        self.head_names = check_head_names(head_names, self.n_outputs, name)

    def _choose_layout(self, need_width):
        """Channels-last when the module accepts it, else NCHW; returns the output width.

        Channels-last is oneDNN's fast layout for convolutions on CPU (EfficientNet-Lite0: 1.5
        times the images per second here), but a module that calls ``view()`` on a convolution
        output only works on NCHW-contiguous tensors, so one blank image decides. A module that
        fails on NCHW too fails when it is used (or here, when its width must be probed).
        """
        self.module.to(memory_format=torch.channels_last)
        try:
            return self._probe_outputs()
        except ExpertError:   # a bad output is not a layout problem
            raise
        except RuntimeError:
            self.channels_last = False
            self.module.to(memory_format=torch.contiguous_format)
            return self._probe_outputs() if need_width else None

    @property
    def _memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _probe_outputs(self):
        blank = torch.zeros((1, self.channels, *self.input_size), device=self.device)
        with torch.inference_mode():
            out = self._call(blank.contiguous(memory_format=self._memory_format))
        return int(out.reshape(1, -1).shape[1])

    def _call(self, tensor):
        out = self.module(tensor)
        if torch.is_tensor(out):
            return out
        logits = getattr(out, "logits", None)
        if logits is None and isinstance(out, Mapping):
            logits = out.get("logits")
        if logits is None and isinstance(out, (tuple, list)) and out:
            logits = out[0]
        if not torch.is_tensor(logits):
            raise ExpertError(self.name, f"the module returned {type(out).__name__}; expected a "
                              "logits tensor, a tuple or list starting with one, or an object "
                              "with a 'logits' tensor")
        return logits

    def _preprocess(self, images):
        if self.image_input is not None:
            return self.image_input(images, self.device).contiguous(
                memory_format=self._memory_format)
        # resized and normalised where the module runs, already in its memory format
        return preprocess(images, input_size=self.input_size, mean=self.mean, std=self.std,
                          channels=self.channels, scale=self.scale, layout=self.layout,
                          memory_format=self._memory_format, device=self.device)

    def _forward(self, tensor):
        return self._call(tensor).float()

    def _move(self, device):
        self.module.to(device)

    def _weights_digest(self, hasher):
        hasher.update(type(self.module).__qualname__.encode())
        if self.image_input is not None:
            hasher.update(self.image_input.describe().encode())
        hash_state_dict(self.module.state_dict(), hasher)

    path_keywords = ("weights",)

    @classmethod
    def source_is_local_path(cls, spec, base):
        return not is_factory_reference(spec)   # a weights file, or a callable to import

    @classmethod
    def source_imports_code(cls, spec):
        return is_factory_reference(spec)

    @classmethod
    def from_source(cls, spec, *, module_factory=None, weights=None, factory_kwargs=None,
                    **kwargs):
        """``create_expert("torch:package.module:factory", weights=..., input_size=...)``.

        The spec names a callable that returns the ``nn.Module``, imported from an installed
        package (as a hub file can name it); ``factory_kwargs`` go to it. ``weights``, a file,
        is then loaded into the module with ``torch.load(weights_only=True)`` (safetensors
        files with ``safetensors.torch.load_file``): no stored data runs code.

        From Python, the spec may instead be the weights file itself, with the factory given as
        a callable: ``create_expert("torch:/path/weights.pt", module_factory=Net, ...)``.
        Other keyword arguments go to :class:`TorchExpert`.
        """
        if is_factory_reference(spec):
            if module_factory is not None:
                raise TypeError(f"torch:{spec} names its module factory; module_factory= "
                                "is for a spec that is a weights file")
            module_factory = import_reference(spec)
        else:
            if weights is not None:
                raise TypeError(f"torch:{spec} is a weights file; weights= goes with a spec "
                                "'torch:package.module:factory'")
            if not callable(module_factory):
                raise TypeError("torch experts need module_factory= (a callable returning the "
                                "nn.Module whose weights the file holds), or a spec "
                                "'torch:package.module:factory' with weights=")
            weights = spec
        module = module_factory(**(factory_kwargs or {}))
        if weights is not None:
            module.load_state_dict(load_torch_weights(weights))
        kwargs.setdefault("name", spec)
        return cls(module, **kwargs)

    def __deepcopy__(self, memo):
        clone = copy.copy(self)
        clone.module = copy.deepcopy(self.module, memo)
        return clone


def load_torch_weights(path):
    """A state dict from ``path`` without running code: safetensors or ``weights_only``."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def is_factory_reference(spec):
    """Whether ``spec`` names a callable as ``"package.module:attribute"`` (not a file)."""
    return _FACTORY_REFERENCE.fullmatch(str(spec)) is not None


def import_reference(reference):
    """The object that ``"package.module:attribute"`` names, imported from installed code."""
    module_name, _, attribute = reference.partition(":")
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"cannot import {reference!r}: {exc}") from exc
    return found
