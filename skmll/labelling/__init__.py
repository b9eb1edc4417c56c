"""Step I, model labelling: pre-test experts on the SDAG (Eq. 1-3)."""

from ._digest import label_dir_digest
from ._labeldir import (
    ExpertRecordStatus,
    expert_statuses,
    load_label_dir,
    read_sdag_manifest,
    save_label_dir,
)
from ._labeler import LabellingError, ModelLabeler, StaleLabelsError
from ._labels import ModelLabel, build_labels, mix_successors, sdag_key
from ._pretest import NodeStatistics, run_over_nodes
from ._store import LabelRecordInfo, LabelStore, PrunePlan

__all__ = ["ExpertRecordStatus", "LabelRecordInfo", "LabelStore", "LabellingError", "ModelLabel",
           "ModelLabeler", "NodeStatistics", "PrunePlan", "StaleLabelsError", "build_labels",
           "expert_statuses", "label_dir_digest", "load_label_dir", "mix_successors",
           "read_sdag_manifest", "run_over_nodes", "save_label_dir", "sdag_key"]
