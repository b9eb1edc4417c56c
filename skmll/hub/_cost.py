"""What running an expert costs per image: FLOPs counted from its computation, time measured.

FLOPs follow PyTorch's :class:`torch.utils.flop_counter.FlopCounterMode` convention: a
multiply-add is two FLOPs, and only the operations that carry the arithmetic are counted
(convolutions, matrix products, attention); element-wise operations, normalisation and the
expert's preprocessing (resizing, scaling) are not. Torch-based adapters are counted by running
their forward under that mode; ONNX graphs are counted from their nodes with the same formulas,
so an ONNX export of a module gives the module's count.
"""

import contextlib
import math
import statistics
import time
from dataclasses import asdict, dataclass
from numbers import Real

import torch

from ._base import run_expert, using_expert
from ._images import as_image_batch
from ._memo import MemoizedExpert

# Images an expert's FLOPs are counted on (per-image FLOPs do not depend on how many).
FLOP_COUNT_IMAGES = 2

# ONNX operations that carry arithmetic the graph count below has no formula for: a graph that
# holds one has no count (None), rather than one that leaves that arithmetic out.
@dataclass(frozen=True)
class ExpertCost:
    """What one forward pass of an expert costs per image.

    Parameters
    ----------
    gflops : float or None
        Billions of FLOPs per image (a multiply-add counts two, as in
        :class:`torch.utils.flop_counter.FlopCounterMode`); None when the computation cannot
        be counted (a protocol expert that declares no ``gflops_per_image``, an ONNX graph with
        operations that have no formula).
    ms_per_image : float
        Milliseconds per image, measured on this machine (preprocessing included).

    Examples
    --------
    >>> cost = ExpertCost(gflops=0.6, ms_per_image=2.5)
    >>> cost.value("gflops"), cost.value("ms")
    (0.6, 2.5)
    >>> ExpertCost.from_dict(cost.to_dict()) == cost
    True
    """

    gflops: float
    ms_per_image: float

    def __post_init__(self):
        if self.gflops is not None:
            _check_amount(self.gflops, "gflops")
            object.__setattr__(self, "gflops", float(self.gflops))
        _check_amount(self.ms_per_image, "ms_per_image")
        object.__setattr__(self, "ms_per_image", float(self.ms_per_image))

    def value(self, unit):
        """The cost in ``unit``: "gflops" or "ms" (None where it is unknown)."""
        if unit == "gflops":
            return self.gflops
        if unit == "ms":
            return self.ms_per_image
        raise ValueError(f"unit must be 'gflops' or 'ms'; got {unit!r}")

    def to_dict(self):
        """The cost as a JSON-able dict (what a label record stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, entries):
        """Read :meth:`to_dict`'s output back.

        Raises
        ------
        ValueError
            When ``entries`` is not such a dict or holds values that are not costs.
        """
        if not isinstance(entries, dict) or set(entries) != {"gflops", "ms_per_image"}:
            raise ValueError(f"a cost is a dict with keys gflops and ms_per_image; got "
                             f"{entries!r:.200}")
        return cls(**entries)


def _check_amount(value, what):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0; got {value!r}")


def _inner(expert):
    """The expert that computes: a memoized expert's own (its memory would skip the work)."""
    return expert.expert if isinstance(expert, MemoizedExpert) else expert


def count_gflops(expert, images):
    """Billions of FLOPs per image of one forward pass of ``expert``, or None if uncountable.

    The forward runs at the expert's own preprocessing (its input size), on up to
    ``FLOP_COUNT_IMAGES`` of ``images``; the preprocessing itself is not counted.

    Each adapter counts itself, through its method ``_count_gflops(images)``:

    - :class:`TorchExpert` and the adapters built on it (:class:`TimmExpert`,
      :class:`HFExpert`) and :class:`KerasExpert` (on the torch backend) run their forward
      under :class:`torch.utils.flop_counter.FlopCounterMode` (:func:`forward_gflops`).
    - :class:`OnnxExpert` is counted from its graph without running it: Conv, ConvTranspose,
      Gemm and MatMul nodes, with shapes from ONNX shape inference at the expert's input size;
      a graph that holds operations without a formula (recurrent layers, Einsum, quantised or
      control-flow nodes) or whose shapes cannot be inferred gives None.
    - Any other expert (the protocol: an object with ``logits``) may declare its count as a
      ``gflops_per_image`` attribute; otherwise None.

    A :class:`LazyExpert` is built for the count (and released after, unless it was built
    before); a :class:`MemoizedExpert` is counted through the expert it wraps.

    Parameters
    ----------
    expert : Expert
    images : array-like of images
        What the expert is run on (any form :func:`as_image_batch` reads); only the first
        ``FLOP_COUNT_IMAGES`` are used, and ONNX graphs need none.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        When a declared ``gflops_per_image`` is not a finite number >= 0.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skmll.hub import TorchExpert
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> expert = TorchExpert(net, name="tiny", input_size=(8, 8))
    >>> count_gflops(expert, np.zeros((2, 16, 16, 3), np.float32)) * 1e9   # 2 * 192 * 4
    1536.0
    """
    expert = _inner(expert)
    if getattr(expert, "loads_on_demand", False):   # a specification: count the built model
        with using_expert(expert):
            return count_gflops(expert.load(), images)
    count = getattr(expert, "_count_gflops", None)
    if callable(count):
        return count(images)
    declared = getattr(expert, "gflops_per_image", None)
    if declared is None:
        return None
    _check_amount(declared, f"expert {expert.name!r}: gflops_per_image")
    return float(declared)


def forward_gflops(expert, images):
    """Billions of FLOPs per image of ``expert.logits`` on up to ``FLOP_COUNT_IMAGES`` of
    ``images``, counted by :class:`torch.utils.flop_counter.FlopCounterMode`, less what the
    expert's ``_preprocess`` counts: how torch-based adapters count themselves."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = as_image_batch(images)[:FLOP_COUNT_IMAGES]
    if len(batch) == 0:
        raise ValueError(f"expert {expert.name!r}: FLOPs are counted on images; got none")
    # The whole call (device, precision and batching as logits() runs them), less what its
    # preprocessing counts (a grayscale conversion is a small matrix product).
    with _mha_fastpath_off(), FlopCounterMode(display=False) as whole:
        expert.logits(batch)
    with torch.inference_mode(), FlopCounterMode(display=False) as preprocessing:
        expert._preprocess(batch)
    flops = whole.get_total_flops() - preprocessing.get_total_flops()
    return flops / len(batch) / 1e9


@contextlib.contextmanager
def _mha_fastpath_off():
    """torch's fused inference path of ``nn.MultiheadAttention`` is one operation that
    FlopCounterMode has no formula for (it would count its projections as 0); the unfused
    path computes the same with counted matrix products."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def measure_cost(expert, images, *, repeats=5):
    """An expert's :class:`ExpertCost` on ``images``: counted FLOPs and measured time.

    The time is the **median** over ``repeats`` timed calls of ``run_expert(expert, images)``
    (the whole batch in one call, preprocessing included), after one untimed warm-up call that
    builds a :class:`LazyExpert` and fills the runtime's caches; divided by the number of
    images. A :class:`MemoizedExpert` is timed through the expert it wraps (its memory would
    time a lookup). Threads are whatever torch and onnxruntime are set to.

    Parameters
    ----------
    expert : Expert
    images : array-like of images
        Any form :func:`as_image_batch` reads; the batch size is their number.
    repeats : int, default=5

    Returns
    -------
    ExpertCost

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skmll.hub import TorchExpert
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> cost = measure_cost(TorchExpert(net, name="tiny", input_size=(8, 8)),
    ...                     np.zeros((4, 8, 8, 3), np.float32), repeats=3)
    >>> cost.gflops * 1e9, cost.ms_per_image > 0
    (1536.0, True)
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    batch = as_image_batch(images)
    if len(batch) == 0:
        raise ValueError("a cost is measured on images; got none")
    expert = _inner(expert)
    with using_expert(expert):
        run_expert(expert, batch)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            run_expert(expert, batch)
            seconds.append(time.perf_counter() - start)
        gflops = count_gflops(expert, batch)
    return ExpertCost(gflops, statistics.median(seconds) * 1000 / len(batch))

