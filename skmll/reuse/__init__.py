"""Step III, model reuse: entropy-weighted ensembles (Eq. 12-13), label profiles, the patch, general
models."""

from ._ensemble import ensemble_scores, entropy_confidence
from ._general import CLIPZeroShot, ConSE, imagenet_class_names, imagenet_wnids, zero_shot_weights
from ._patch import normalise_rows, patch_probabilities
from ._profile import log_profiles, profile_posterior

__all__ = ["CLIPZeroShot", "ConSE", "imagenet_class_names", "imagenet_wnids", "zero_shot_weights",
           "ensemble_scores", "entropy_confidence", "log_profiles", "normalise_rows",
           "patch_probabilities", "profile_posterior"]
