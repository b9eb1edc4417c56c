"""Profile reuse: the selected experts' outputs read through their model labels (naive Bayes).

The paper's ensemble (Eq. 12-13) compares one-vs-rest scores of different experts across
classes as if they were calibrated against each other. They are not: an expert that never saw
a garment still puts all its probability on some head when shown one, so a footwear expert's
"sandal" predictor fires on T-shirts. The model label already records how every expert responds
to every task class: row ``c`` of the label's mean softmax outputs is the expected output of
the expert on images of node ``c``. Profile reuse treats each selected expert's output ``q(x)``
as a soft draw from a categorical distribution whose parameters are that profile, and combines
the experts as independent witnesses::

    log P(c | x) = sum_m  q_m(x) . log mu_m[c]  + const

so an expert's response counts as evidence for ``c`` only in so far as it is typical of ``c``
and atypical of the other task classes, on the reference images of the SDAG.
"""

import numpy as np
from scipy.special import log_softmax

# Share of each profile spread uniformly over the heads (additive smoothing): a head that never
# fired on a node's reference images is rare, not impossible, on a task image of that class.
PROFILE_SMOOTHING = 1e-2


def log_profiles(mean_probabilities, smoothing=PROFILE_SMOOTHING):
    """Smoothed log profiles of one expert: (n_classes, n_heads) mean softmax rows -> logs.

    Parameters
    ----------
    mean_probabilities : array-like of shape (n_classes, n_heads)
        The label's mean softmax output of the expert on each task class's node.
    smoothing : float in [0, 1)
        Mixing weight of the uniform distribution over heads.

    Returns
    -------
    ndarray of shape (n_classes, n_heads)

    Examples
    --------
    >>> log_profiles(np.array([[1.0, 0.0]]), smoothing=0.5).round(3).tolist()
    [[-0.288, -1.386]]
    """
    mu = np.asarray(mean_probabilities, dtype=np.float64)
    if mu.ndim != 2 or not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError("mean_probabilities must be a finite, non-negative 2-D array "
                         f"(n_classes, n_heads); got shape {mu.shape}")
    mu = mu / np.maximum(mu.sum(axis=1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore"):   # without smoothing, a head never seen is impossible
        return np.log((1.0 - smoothing) * mu + smoothing / mu.shape[1])


def profile_posterior(outputs, profiles):
    """Posterior over the task classes from several experts' softmax outputs.

    Parameters
    ----------
    outputs : list of ndarray (n, H_m)
        Each expert's softmax output on the batch (each expert ran once).
    profiles : list of ndarray (n_classes, H_m)
        Each expert's log profiles (:func:`log_profiles`).

    Returns
    -------
    ndarray of shape (n, n_classes), rows sum to 1.

    Examples
    --------
    >>> profiles = [log_profiles(np.array([[0.9, 0.1], [0.2, 0.8]]), smoothing=0.0)]
    >>> profile_posterior([np.array([[1.0, 0.0], [0.0, 1.0]])], profiles).round(3).tolist()
    [[0.818, 0.182], [0.111, 0.889]]
    """
    log_likelihood = sum(q @ log_mu.T for q, log_mu in zip(outputs, profiles))
    return np.exp(log_softmax(log_likelihood, axis=1))
