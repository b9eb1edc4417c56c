"""The interim MLL patch: a general zero-shot model for the classes the hub cannot serve."""

import numpy as np


def normalise_rows(scores):
    """Rows scaled to sum to 1; an all-zero row becomes uniform."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / max(scores.shape[1], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, scores / totals, uniform)


def patch_probabilities(expert_proba, general_proba, covered):
    """DESIGN decision 6: ``P(c|x) = P_g(Y^e|x) P_mll(c|x)`` on covered classes, ``P_g(c|x)`` else.

    Parameters
    ----------
    expert_proba : ndarray (n, n_covered)
        The experts' distribution over covered classes (rows sum to 1).
    general_proba : ndarray (n, n_classes)
        The general model's distribution over all classes.
    covered : bool ndarray (n_classes,)

    Returns
    -------
    ndarray (n, n_classes), rows sum to 1.

    Examples
    --------
    >>> patch_probabilities(np.array([[0.9, 0.1]]), np.array([[0.3, 0.3, 0.4]]),
    ...                     np.array([True, True, False])).round(2).tolist()
    [[0.54, 0.06, 0.4]]
    """
    covered = np.asarray(covered, dtype=bool)
    general_proba = normalise_rows(general_proba)
    result = general_proba.copy()
    mass = general_proba[:, covered].sum(axis=1, keepdims=True)
    result[:, covered] = mass * expert_proba
    return result
