"""skmll: zero-shot image classification from a hub of expert classifiers (Model Label Learning)."""

from ._version import __version__
from .hub import ModelHub, TorchExpert, create_expert

__all__ = ["ModelHub", "TorchExpert", "__version__", "create_expert"]
