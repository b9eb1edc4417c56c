"""The errors skmll raises on purpose, in one place."""

from .hub import ExpertError
from .labelling import LabellingError, StaleLabelsError

__all__ = ["ExpertError", "LabellingError", "StaleLabelsError"]
