"""Model reuse: entropy-weighted ensembles of one-vs-rest expert predictors (Eq. 12-13)."""

import numpy as np


def entropy_confidence(probabilities):
    """``1 - H(p) / log(H)`` per row (Eq. 13 numerator): 1 for a one-hot, 0 for uniform."""
    p = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(probabilities * np.log(p)).sum(axis=1)
    return np.clip(1.0 - entropy / np.log(probabilities.shape[1]), 0.0, 1.0)


def ensemble_scores(outputs, combinations):
    """Eq. 12 for every class at once.

    Parameters
    ----------
    outputs : list of ndarray (n, H_m)
        Each selected model's softmax output on the batch (each model ran once).
    combinations : list of ndarray (H_m, n_classes)
        Column c holds the head weights ``x_c^m`` when model m serves class c, zeros otherwise.

    Returns
    -------
    ndarray of shape (n, n_classes)
        ``p_c^k(x)``; the entropy weights of Eq. 13 are normalised over the models serving each
        class. Where all of them are fully uncertain (weights sum to 0), they count equally.
    """
    n = len(outputs[0])
    n_classes = combinations[0].shape[1]
    weighted = np.zeros((n, n_classes))
    weight_sum = np.zeros((n, n_classes))
    plain = np.zeros((n, n_classes))
    n_serving = np.zeros(n_classes)
    for probabilities, combination in zip(outputs, combinations):
        serves = combination.any(axis=0)
        predictor = probabilities @ combination          # F_m(x)^T x_c^m for every class
        confidence = entropy_confidence(probabilities)[:, None]
        weighted += confidence * predictor
        weight_sum += confidence * serves
        plain += predictor
        n_serving += serves
    uncertain = weight_sum <= 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(uncertain, plain / np.maximum(n_serving, 1), weighted / weight_sum)
    return np.nan_to_num(scores)
