"""Step I, model labelling: pre-test experts on the SDAG (Eq. 1-3)."""

from ._labeler import LabellingError, ModelLabeler
from ._labels import ModelLabel, build_labels, mix_successors
from ._pretest import NodeStatistics

__all__ = ["LabellingError", "ModelLabel", "ModelLabeler", "NodeStatistics", "build_labels",
           "mix_successors"]
