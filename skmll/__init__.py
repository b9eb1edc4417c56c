"""skmll: zero-shot image classification from a hub of expert classifiers (Model Label Learning).

The package follows the method's steps: ``semantic_graph`` (the SDAG), ``hub`` (experts and
their adapters), ``labelling`` (Eq. 1-3), ``selection`` (matching, CHCO Eq. 4-11, top-k),
``reuse`` (label profiles, Eq. 12-13, the patch, general models); ``MLLZeroShotClassifier`` ties
them together.
"""

import importlib

from ._version import __version__

# Public names and the submodule each comes from. They are imported on first access (PEP 562),
# so that ``import skmll`` (and the ``skmll --help`` / ``--version`` command line) does not pay
# for torch and scikit-learn until a name is used.
_LAZY = {
    "CLIPZeroShot": ".reuse",
    "ConSE": ".reuse",
    "MLLZeroShotClassifier": "._classifier",
    "ModelHub": ".hub",
    "ModelLabeler": ".labelling",
    "SemanticDAG": ".semantic_graph",
    "TorchExpert": ".hub",
    "chco": ".selection",
    "create_expert": ".hub",
}

_SUBPACKAGES = {"baselines", "cli", "datasets", "exceptions", "hub", "labelling", "metrics",
                "paper", "reuse", "selection", "semantic_graph", "utils", "zoo"}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _SUBPACKAGES:   # ``import skmll; skmll.hub.ModelHub`` as before
        return importlib.import_module(f".{name}", __name__)
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value   # later accesses skip this function
    return value


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})
