"""Step I, model labelling: pre-test experts on the SDAG (Eq. 1-3)."""

from ._labeler import LabellingError, ModelLabeler
from ._labels import ModelLabel, build_labels, mix_successors
from ._pretest import NodeStatistics
from ._store import LabelRecordInfo, LabelStore, PrunePlan

__all__ = ["LabelRecordInfo", "LabelStore", "LabellingError", "ModelLabel", "ModelLabeler",
           "NodeStatistics", "PrunePlan", "build_labels", "mix_successors"]
