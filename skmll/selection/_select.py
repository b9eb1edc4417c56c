"""Selection of expert predictors per class (Algorithm 1, line 10; DESIGN decision 4)."""

import numpy as np


def select_predictors(losses, k, beta=np.inf):
    """Per class, up to ``k`` models with the smallest reuse loss ``L_c^m <= beta``.

    Parameters
    ----------
    losses : ndarray of shape (n_models, n_classes)
        CHCO losses (Eq. 9), the task-specific reuse scores; lower is better.
    k : int
        Reuse budget.
    beta : float
        Threshold (the paper's beta; Algorithm 1 writes delta there by a typo).

    Returns
    -------
    list of int ndarrays, one per class, model indices ordered by increasing loss.

    Examples
    --------
    >>> select_predictors(np.array([[0.2, 3.0], [0.1, 0.5], [0.9, 0.4]]), k=2, beta=1.0)
    [array([1, 0]), array([2, 1])]
    """
    losses = np.asarray(losses, dtype=np.float64)
    order = np.argsort(losses, axis=0, kind="stable")[:k]
    chosen = []
    for c in range(losses.shape[1]):
        column = order[:, c]
        keep = np.isfinite(losses[column, c]) & (losses[column, c] <= beta)
        chosen.append(column[keep])
    return chosen
