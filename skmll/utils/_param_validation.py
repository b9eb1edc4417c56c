"""scikit-learn's parameter-validation machinery, imported in one place.

``Interval``, ``StrOptions``, ``HasMethods`` and ``_fit_context`` are private in scikit-learn;
every skmll estimator reaches them through this module, so a change on scikit-learn's side is
mended here once (imbalanced-learn does the same through its ``sklearn_compat`` module).
"""

import os
from numbers import Integral, Real

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)

# ``cache_dir`` means the same everywhere: None the default folder, False off, else a path.
CACHE_DIR_CONSTRAINTS = [None, str, os.PathLike, Options(bool, {False})]

__all__ = ["CACHE_DIR_CONSTRAINTS", "HasMethods", "Integral", "Interval", "InvalidParameterError",
           "Options", "Real", "StrOptions", "_fit_context"]
