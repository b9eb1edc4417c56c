"""The model hub: the expert protocol, adapters for model sources, and ``create_expert``.

Each adapter lives in its own ``*_expert.py`` module and registers a source prefix; adding a
model source means adding one such file.
"""

from ._base import (
    BaseExpert,
    Expert,
    ExpertError,
    ModelHub,
    create_expert,
    expert_fingerprint,
    list_expert_sources,
    register_expert,
    run_expert,
)
from ._images import as_image_batch, preprocess
from ._torch_expert import TorchExpert, load_torch_weights

__all__ = [
    "BaseExpert",
    "Expert",
    "ExpertError",
    "ModelHub",
    "TorchExpert",
    "as_image_batch",
    "create_expert",
    "expert_fingerprint",
    "list_expert_sources",
    "load_torch_weights",
    "preprocess",
    "register_expert",
    "run_expert",
]
