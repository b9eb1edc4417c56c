"""Transferability scores the paper's baselines use as reuse metrics: LogME and LEEP."""

import numpy as np
from sklearn.utils.validation import check_X_y

# LogME's fixed-point iteration settles in a few steps when samples outnumber features; with
# more features than samples it crawls, hence the generous cap (each step costs O(rank)).
_LOGME_MAX_ITER = 1000
_LOGME_TOL = 1e-9


def _check_inputs(values, y, what):
    values, y = check_X_y(values, y, dtype=np.float64, ensure_min_samples=2,
                          estimator=what)
    classes, targets = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{what} needs at least two distinct labels in y; got "
                         f"{len(classes)}")
    return values, targets, len(classes)


def _posterior_terms(alpha, beta, s, z, outside, n):
    """LogME's gamma, ``||m||^2`` and ``||F m - y||^2`` for the posterior mean ``m``, per column.

    ``s`` are the feature singular values (r,), ``z = U^T y`` (r, K), ``outside`` the squared
    norm of the targets outside the feature span (K,).
    """
    sigma = (s ** 2)[:, None]
    denominator = alpha + beta * sigma
    gamma = (beta * sigma / denominator).sum(axis=0)      # effective number of parameters
    weight_norm = ((beta * s[:, None] * z / denominator) ** 2).sum(axis=0)
    # A perfect fit would make beta infinite: the floor keeps the evidence finite.
    residual = np.maximum(outside + ((alpha * z / denominator) ** 2).sum(axis=0), 1e-12 * n)
    return gamma, weight_norm, residual


def logme_score(features, y):
    """LogME (You et al. 2021): the maximised log evidence of a linear model, per sample.

    For each one-hot column of the target, a Bayesian linear regression ``y = F w + noise`` with
    prior ``w ~ N(0, 1/alpha)`` and noise precision ``beta`` is fitted by maximising its
    marginal evidence over ``alpha`` and ``beta`` (MacKay's fixed-point updates), computed
    through one SVD of the features. The score is the evidence divided by the number of
    samples, averaged over the columns. Higher means the features predict the target better.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Features of each sample, e.g. an expert's logits.
    y : array-like of shape (n_samples,)
        Labels (at least two distinct values).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> informative = np.c_[y + 0.1 * rng.normal(size=200), rng.normal(size=200)]
    >>> bool(logme_score(informative, y) > logme_score(rng.normal(size=(200, 2)), y))
    True
    """
    features, targets, n_classes = _check_inputs(features, y, "logme_score")
    n = len(targets)
    one_hot = np.eye(n_classes)[targets]
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    # Directions with no variance carry no evidence; the rank cut follows numpy's matrix_rank.
    keep = s > (s.max(initial=0.0) * max(features.shape) * np.finfo(np.float64).eps)
    # The evidence is invariant to scaling the features (alpha absorbs it), so scaling the
    # largest singular value to 1 keeps the iteration in a well-conditioned range.
    s = s[keep] / s[keep].max() if keep.any() else s[keep]
    u = u[:, keep]
    z = u.T @ one_hot                                     # targets in the feature basis, (r, K)
    outside = (one_hot ** 2).sum(axis=0) - (z ** 2).sum(axis=0)   # the part no weight can fit
    alpha, beta = np.ones(n_classes), np.ones(n_classes)
    for _ in range(_LOGME_MAX_ITER):
        gamma, weight_norm, residual = _posterior_terms(alpha, beta, s, z, outside, n)
        new_alpha = gamma / np.maximum(weight_norm, 1e-30)
        new_beta = (n - gamma) / residual
        converged = (np.all(np.abs(new_alpha - alpha) <= _LOGME_TOL * alpha)
                     and np.all(np.abs(new_beta - beta) <= _LOGME_TOL * beta))
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    _, weight_norm, residual = _posterior_terms(alpha, beta, s, z, outside, n)
    # D/2 log(alpha) - 1/2 log|alpha I + beta F^T F| reduces to this sum over the rank:
    # directions without variance contribute exactly zero.
    log_det_ratio = np.log1p(beta * (s ** 2)[:, None] / alpha).sum(axis=0)
    evidence = (n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi) - beta / 2 * residual
                - alpha / 2 * weight_norm - log_det_ratio / 2)
    return float(np.mean(evidence / n))


def leep_score(probabilities, y):
    """LEEP (Nguyen et al. 2020): log expected empirical prediction of a source model.

    With ``theta(x)`` the source model's distribution over its own labels ``z``, the empirical
    joint ``P(y, z) = mean_i theta(x_i)_z [y_i = y]`` gives ``P(y | z)``; the score is
    ``mean_i log sum_z P(y_i | z) theta(x_i)_z``. Higher (closer to 0) is better.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, n_source_labels)
        The source model's output distribution per sample (rows sum to 1).
    y : array-like of shape (n_samples,)
        Target labels (at least two distinct values).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1])
    >>> sharp = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    >>> bool(leep_score(sharp, y) > leep_score(np.full((4, 2), 0.5), y))
    True
    """
    theta, targets, n_classes = _check_inputs(probabilities, y, "leep_score")
    if (theta < 0).any() or not np.allclose(theta.sum(axis=1), 1, atol=1e-4):
        raise ValueError("leep_score needs probabilities: non-negative rows that sum to 1 "
                         "(apply a softmax to logits first)")
    one_hot = np.eye(n_classes)[targets]
    joint = one_hot.T @ theta / len(targets)              # P(y, z), (K, Z)
    marginal = joint.sum(axis=0)                          # P(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = np.where(marginal > 0, joint / marginal, 0.0)    # P(y | z)
    # Each sample's own mass keeps P(y_i | z) theta_iz > 0, so the log is finite.
    expected = (conditional[targets] * theta).sum(axis=1)
    return float(np.mean(np.log(expected)))
