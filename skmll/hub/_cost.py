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

from ._base import run_expert
from ._images import as_image_batch
from ._keras_expert import KerasExpert
from ._memo import MemoizedExpert
from ._onnx_expert import OnnxExpert
from ._spec import LazyExpert, using_expert
from ._torch_expert import TorchExpert

# Images an expert's FLOPs are counted on (per-image FLOPs do not depend on how many).
FLOP_COUNT_IMAGES = 2

# ONNX operations that carry arithmetic the graph count below has no formula for: a graph that
# holds one has no count (None), rather than one that leaves that arithmetic out.
_UNCOUNTED_ONNX_OPS = {
    "Einsum", "LSTM", "GRU", "RNN", "If", "Loop", "Scan", "ConvInteger", "MatMulInteger",
    "QLinearConv", "QLinearMatMul", "DeformConv", "Attention", "MultiHeadAttention",
}


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

    - :class:`TorchExpert` and the adapters built on it (:class:`TimmExpert`,
      :class:`HFExpert`) and :class:`KerasExpert` (on the torch backend) run their forward
      under :class:`torch.utils.flop_counter.FlopCounterMode`.
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
    if isinstance(expert, LazyExpert):
        with using_expert(expert):
            return count_gflops(expert.load(), images)
    if isinstance(expert, OnnxExpert):
        return onnx_gflops(expert)
    if isinstance(expert, (TorchExpert, KerasExpert)):
        return _counted_forward(expert, images)
    declared = getattr(expert, "gflops_per_image", None)
    if declared is None:
        return None
    _check_amount(declared, f"expert {expert.name!r}: gflops_per_image")
    return float(declared)


def _counted_forward(expert, images):
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


def onnx_gflops(expert):
    """Billions of FLOPs per image of an :class:`OnnxExpert`'s graph at its input size.

    Conv and ConvTranspose count ``2 * output (input) elements * weight elements per output
    (input) channel``, Gemm and MatMul ``2 * M * N * K`` (batched MatMul: times the batch), as
    :class:`torch.utils.flop_counter.FlopCounterMode` counts the same operations; biases and
    element-wise operations are not counted.

    Parameters
    ----------
    expert : OnnxExpert

    Returns
    -------
    float or None
        None when the graph holds an operation without a formula (see :func:`count_gflops`)
        or a counted node's shapes cannot be inferred.
    """
    import onnx

    model = onnx.load_from_string(expert._model_bytes)
    graph_input = _image_input(model)
    batch = expert._static_batch or 1
    h, w = expert.input_size
    dims = [batch, expert.channels, h, w] if expert.layout == "NCHW" else \
        [batch, h, w, expert.channels]
    for dim, value in zip(graph_input.type.tensor_type.shape.dim, dims):
        dim.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = _known_shapes(inferred.graph)
    functions = {f.name for f in model.functions}
    total = 0
    for node in inferred.graph.node:
        if node.op_type in _UNCOUNTED_ONNX_OPS or node.op_type in functions \
                or node.domain not in ("", "ai.onnx"):
            return None
        flops = _node_flops(node, shapes)
        if flops is None:
            return None
        total += flops
    return total / batch / 1e9


def _image_input(model):
    initialisers = {init.name for init in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initialisers)


def _known_shapes(graph):
    """Name -> shape (tuple of int) for every value whose dimensions are all known."""
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value")
                                                              for d in dims):
            shapes.setdefault(value.name, tuple(d.dim_value for d in dims))
    return shapes


def _node_flops(node, shapes):
    """FLOPs of one node (0 for operations not counted); None when a needed shape is unknown."""
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    if any(name not in shapes for name in (*node.input[:2], node.output[0])):
        return None
    first, weight, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
    if node.op_type == "Conv":   # each output element: one multiply-add per weight it reads
        return 2 * math.prod(out) * math.prod(weight[1:])
    if node.op_type == "ConvTranspose":   # each input element is spread over its outputs
        return 2 * math.prod(first) * math.prod(weight[1:])
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        inner = first[0] if trans_a else first[1]
        return 2 * math.prod(out) * inner
    return 2 * math.prod(out) * first[-1]   # MatMul: each output element sums over K


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

