"""The paper's baseline selection methods (Random^MLL, LogME^MLL, LEEP^MLL) and their metrics."""

from ._selectors import LEEPMLLClassifier, LogMEMLLClassifier, RandomMLLClassifier
from ._transferability import leep_score, logme_score

__all__ = ["LEEPMLLClassifier", "LogMEMLLClassifier", "RandomMLLClassifier", "leep_score",
           "logme_score"]
