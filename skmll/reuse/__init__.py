"""Step III, model reuse: entropy-weighted ensembles (Eq. 12-13), label profiles, the patch, general
models."""

from ._ensemble import ensemble_scores, entropy_confidence
from ._general import CLIPZeroShot, ConSE, imagenet_class_names, imagenet_wnids, zero_shot_weights
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

__all__ = ["CLIPZeroShot", "ConSE", "imagenet_class_names", "imagenet_wnids", "zero_shot_weights",
           "calibrate_patch", "check_general_proba", "ensemble_scores", "entropy_confidence",
           "fit_patch_calibration", "general_model_proba", "log_profiles", "normalise_rows",
           "patch_probabilities", "profile_posterior", "routing_scores"]
