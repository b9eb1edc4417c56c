"""Reuse rules by name: how the selected experts' softmax outputs become class probabilities.

The classifier's ``reuse`` parameter, its parameter constraints and the command line all read
:data:`REUSE_RULES`: a new rule is one entry here.
"""

from dataclasses import dataclass
from typing import Callable

from ._ensemble import ensemble_scores
from ._patch import normalise_rows
from ._profile import log_profiles, profile_posterior


@dataclass(frozen=True)
class ReuseRule:
    """One way to combine the selected experts' outputs over the covered classes.

    Attributes
    ----------
    description : str
        What the rule does, in a few words (the classifier's ``explain`` quotes it).
    reader : callable
        ``reader(profiles, head_weights) -> ndarray``: what reads one expert's softmax output,
        made once at ``fit`` from the expert's label profiles (n_covered, n_heads), its mean
        softmax output on each covered class's node, and its head weights (n_heads,
        n_covered), zero for the classes it does not serve.
    combine : callable
        ``combine(outputs, readers) -> ndarray (n, n_covered)``: class probabilities (rows sum
        to 1) from each expert's softmax output on a batch (n, n_heads) and its reader.
    """

    description: str
    reader: Callable
    combine: Callable


def _log_profiles(profiles, head_weights):
    return log_profiles(profiles)


def _head_weights(profiles, head_weights):
    return head_weights


def _entropy_weighted(outputs, combinations):
    return normalise_rows(ensemble_scores(outputs, combinations))


REUSE_RULES = {
    "profile": ReuseRule("each expert's whole output read through its label profiles",
                         _log_profiles, profile_posterior),
    "entropy": ReuseRule("head combinations weighted by entropy (Eq. 12-13)",
                         _head_weights, _entropy_weighted),
}
"""Reuse rules by name (:class:`ReuseRule`): ``"profile"``, each selected expert's whole output
read through its label profiles, as independent witnesses (:func:`profile_posterior`);
``"entropy"``, the paper's Eq. 12-13, each class's head combinations weighted by output entropy
(:func:`ensemble_scores`)."""
