"""Step III, model reuse: reuse rules by name, entropy-weighted ensembles (Eq. 12-13), label
profiles, the patch, general models."""

from ._ensemble import ensemble_scores, entropy_confidence
from ._general import (
    CLIPZeroShot,
    ConSE,
    imagenet_class_names,
    imagenet_wnids,
    trained_with_quick_gelu,
    zero_shot_weights,
)
from ._patch import (
    calibrate_patch,
    check_general_proba,
    fit_patch_calibration,
    general_model_proba,
    normalise_rows,
    patch_probabilities,
    routing_scores,
)
from ._profile import log_profiles, profile_posterior
from ._rules import REUSE_RULES, ReuseRule

__all__ = ["REUSE_RULES", "CLIPZeroShot", "ConSE", "ReuseRule", "calibrate_patch",
           "check_general_proba", "ensemble_scores", "entropy_confidence", "fit_patch_calibration",
           "general_model_proba", "imagenet_class_names", "imagenet_wnids", "log_profiles",
           "normalise_rows", "patch_probabilities", "profile_posterior", "routing_scores",
           "trained_with_quick_gelu", "zero_shot_weights"]
