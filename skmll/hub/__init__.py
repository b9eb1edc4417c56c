"""The model hub: the expert protocol, adapters for model sources, and ``create_expert``.

Each adapter lives in its own ``*_expert.py`` module and registers a source prefix; adding a
model source means adding one such file (or, from another package, an entry point in the
``skmll.experts`` group). A hub can be a list of specifications (:class:`LazyExpert`), written
as a TOML hub file (:meth:`ModelHub.from_toml`, :meth:`ModelHub.to_toml`), whose models are
built only when run.
"""

from ._base import (
    BaseExpert,
    Expert,
    ExpertError,
    create_expert,
    expert_fingerprint,
    list_expert_sources,
    n_heads,
    register_expert,
    run_expert,
    using_expert,
)
from ._cost import ExpertCost, count_gflops, measure_cost
from ._heads import describe_head
from ._hub import ModelHub
from ._hf_expert import HFExpert
from ._images import (
    MixedSizeBatch,
    as_image_batch,
    map_size_groups,
    preprocess,
    set_max_image_pixels,
)
from ._memo import MemoizedExpert
from ._keras_expert import KerasExpert, shipped_keras_experts
from ._onnx_expert import OnnxExpert, shipped_onnx_experts
from ._sklearn_expert import SklearnExpert
from ._spec import LazyExpert
from ._outputs import probabilities_to_logits
from ._timm_expert import TimmExpert
from ._torch_expert import TorchExpert, load_torch_weights

__all__ = [
    "BaseExpert",
    "Expert",
    "ExpertCost",
    "ExpertError",
    "HFExpert",
    "KerasExpert",
    "LazyExpert",
    "MemoizedExpert",
    "MixedSizeBatch",
    "ModelHub",
    "OnnxExpert",
    "SklearnExpert",
    "TimmExpert",
    "TorchExpert",
    "as_image_batch",
    "count_gflops",
    "create_expert",
    "describe_head",
    "expert_fingerprint",
    "list_expert_sources",
    "map_size_groups",
    "measure_cost",
    "n_heads",
    "load_torch_weights",
    "preprocess",
    "probabilities_to_logits",
    "register_expert",
    "run_expert",
    "set_max_image_pixels",
    "shipped_keras_experts",
    "shipped_onnx_experts",
    "using_expert",
]
