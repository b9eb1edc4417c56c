"""skmll: zero-shot image classification from a hub of expert classifiers (Model Label Learning).

The package follows the method's steps: ``semantic_graph`` (the SDAG), ``hub`` (experts and
their adapters), ``labelling`` (Eq. 1-3), ``selection`` (matching, CHCO Eq. 4-11, top-k),
``reuse`` (label profiles, Eq. 12-13, the patch, general models); ``MLLZeroShotClassifier`` ties them together.
"""

from ._classifier import MLLZeroShotClassifier
from ._version import __version__
from .hub import ModelHub, TorchExpert, create_expert
from .labelling import ModelLabeler
from .reuse import CLIPZeroShot, ConSE
from .selection import chco
from .semantic_graph import SemanticDAG

__all__ = ["CLIPZeroShot", "ConSE", "MLLZeroShotClassifier", "ModelHub", "ModelLabeler", "SemanticDAG", "TorchExpert",
           "__version__", "chco", "create_expert"]
