"""Step I, model labelling: pre-test experts on the SDAG (Eq. 1-3)."""

from ._digest import DIGEST_PREFIX, label_dir_digest
from ._labeldir import (
    HUB_FILE,
    SDAG_MANIFEST,
    ExpertRecordStatus,
    expert_statuses,
    load_label_dir,
    open_hub,
    read_sdag_manifest,
    save_label_dir,
)
from ._labeler import LabellingError, ModelLabeler, StaleLabelsError
from ._labels import ModelLabel, build_labels, mix_successors, sdag_key
from ._pretest import NodeStatistics, run_over_nodes
from ._references import (
    HeldImages,
    NoReferenceImagesError,
    StoredReferenceImages,
    holds_images,
    save_reference_images,
)
from ._store import STORE_FOLDER, LabelRecordInfo, LabelStore, PrunePlan

__all__ = ["DIGEST_PREFIX", "HUB_FILE", "SDAG_MANIFEST", "STORE_FOLDER", "ExpertRecordStatus",
           "HeldImages", "LabelRecordInfo", "LabelStore", "LabellingError", "ModelLabel",
           "ModelLabeler", "NoReferenceImagesError", "NodeStatistics", "PrunePlan",
           "StaleLabelsError", "StoredReferenceImages", "build_labels", "expert_statuses",
           "holds_images", "label_dir_digest", "load_label_dir", "mix_successors", "open_hub",
           "read_sdag_manifest", "run_over_nodes", "save_label_dir", "save_reference_images",
           "sdag_key"]
