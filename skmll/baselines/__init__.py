"""The paper's baseline selection methods (Random^MLL, LogME^MLL, LEEP^MLL) and their metrics.

:data:`SELECTION_METHODS` names every selection method, MLL's own among them: the command
line's ``--selection`` reads it.
"""

from .._classifier import MLLZeroShotClassifier
from ._selectors import (LEEPMLLClassifier, LogMEMLLClassifier, RandomMLLClassifier,
                         select_by_transferability)
from ._transferability import leep_score, logme_score

SELECTION_METHODS = {
    "chco": MLLZeroShotClassifier,
    "random": RandomMLLClassifier,
    "logme": LogMEMLLClassifier,
    "leep": LEEPMLLClassifier,
}
"""Every selection method by name: the classifier class that selects that way (CHCO, the
paper's method, and the baselines)."""

__all__ = ["SELECTION_METHODS", "LEEPMLLClassifier", "LogMEMLLClassifier", "RandomMLLClassifier",
           "leep_score", "logme_score", "select_by_transferability"]
