"""Classification Head Combination Optimization (CHCO), Eq. 4-11 of the paper.

For one expert with label scores ``S`` (heads x classes), ``P = softmax`` over heads of each
column (Eq. 4). A combination ``X`` (heads x classes) has rows in ``{x >= 0, sum(x) <= 1}``
(Eq. 5-6). With ``A = P^T X``, ``A[c', c]`` is the expected output of class c's predictor on
class c' (Eq. 7-8) and the loss of class c is (Eq. 9)

    L_c = -log A[c, c] - 1/(C - 1) * sum_{c' != c} log(1 - A[c', c]),

convex in ``X``; CHCO minimises ``sum_c L_c`` (Eq. 10). The paper cycles over heads with
gradient steps (Eq. 11) and simplex projections; here every head of every expert moves at once:
accelerated projected gradient (FISTA with adaptive restart and per-expert backtracking) on one
padded tensor problem, so a hub of thousands of experts is solved in a few batched products.
"""

import numpy as np
from scipy.special import softmax


def head_class_probabilities(scores):
    """Eq. 4: softmax over heads (axis 0) of each class column; float64."""
    scores = _check_matrix(scores, "scores")
    return softmax(scores, axis=0)


def _check_matrix(matrix, what):
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (n_heads, n_classes) array; got shape "
                         f"{matrix.shape}")
    if matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return matrix


def _probabilities(scores, probabilities):
    if not probabilities:
        return head_class_probabilities(scores)
    P = _check_matrix(scores, "probabilities")
    if (P < 0).any() or not np.allclose(P.sum(axis=0), 1.0, atol=1e-6):
        raise ValueError("with probabilities=True each column must be a distribution over heads "
                         "(non-negative, summing to 1)")
    return P


def _losses(P, X):
    """Eq. 9 for stacked problems: P, X of shape (..., H, C) -> (..., C); inf outside the domain."""
    A = np.swapaxes(P, -1, -2) @ X
    C = A.shape[-1]
    diagonal = np.diagonal(A, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(diagonal > 0, -np.log(np.where(diagonal > 0, diagonal, 1)), np.inf)
        if C == 1:
            return own
        rest = 1 - A
        off = np.where(rest > 0, np.log(np.where(rest > 0, rest, 1)), -np.inf)
        idx = np.arange(C)
        off[..., idx, idx] = 0
        return own - off.sum(axis=-2) / (C - 1)


def chco_loss(P, X):
    """Eq. 9: the loss ``L_c`` of every class for head-class probabilities ``P`` and ``X``.

    Examples
    --------
    >>> P = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> chco_loss(P, np.eye(2)).round(3).tolist()
    [0.21, 0.21]
    """
    return _losses(np.asarray(P, np.float64), np.asarray(X, np.float64))


def _gradient(P, X):
    """Eq. 11 for all heads at once: G = P @ W (stacked)."""
    A = np.swapaxes(P, -1, -2) @ X
    C = A.shape[-1]
    idx = np.arange(C)
    with np.errstate(divide="ignore"):
        W = (1.0 / ((C - 1) * (1 - A))) if C > 1 else np.zeros_like(A)
        W[..., idx, idx] = -1.0 / A[..., idx, idx]
    return P @ W


def project_rows(V):
    """Euclidean projection of every row onto ``{x >= 0, sum(x) <= 1}`` (Duchi et al. 2008)."""
    shape = V.shape
    V = V.reshape(-1, shape[-1])
    out = np.clip(V, 0, None)
    over = out.sum(axis=1) > 1
    if over.any():
        rows = V[over]
        ordered = -np.sort(-rows, axis=1)
        cumulative = np.cumsum(ordered, axis=1) - 1
        k = np.arange(1, rows.shape[1] + 1)
        support = (ordered - cumulative / k) > 0
        last = support.shape[1] - 1 - np.argmax(support[:, ::-1], axis=1)
        theta = cumulative[np.arange(len(rows)), last] / (last + 1)
        out[over] = np.clip(rows - theta[:, None], 0, None)
    return out.reshape(shape)


def _single_head_costs(P):
    """Eq. 9 of "head h alone serves class c" for every (h, c): (..., H, C)."""
    C = P.shape[-1]
    with np.errstate(divide="ignore"):
        own = -np.log(P)
        rest = np.log1p(-np.minimum(P, 1 - 1e-16))
    if C == 1:
        return own
    return own - (rest.sum(axis=-1, keepdims=True) - rest) / (C - 1)


def _one_head_start(P, valid):
    """A feasible start: one distinct head per class, greedily by single-head loss."""
    costs = np.where(valid[..., None], _single_head_costs(P), np.inf)
    X = np.zeros_like(P)
    for m in np.flatnonzero(valid.sum(axis=1) >= P.shape[-1]):
        taken = costs[m].copy()
        for c in np.argsort(taken.min(axis=0)):
            h = int(np.argmin(taken[:, c]))
            X[m, h, c] = 1.0
            taken[h] = np.inf
    return X


def chco_many(score_list, *, probabilities=False, tol=1e-9, max_iter=20000):
    """CHCO for many experts and one set of classes, solved as one batched tensor problem.

    Parameters
    ----------
    score_list : list of ndarray (n_heads_m, n_classes)
        Each expert's label scores for the task's classes (or probabilities, see below).
    probabilities : bool, default=False
        The inputs are already head-class probabilities (columns sum to 1).
    tol : float
        Stop an expert when its objective improves by less than ``tol`` (relative) per step.
    max_iter : int

    Returns
    -------
    list of (X, losses)
        ``X`` (n_heads_m, n_classes) with rows >= 0 summing to at most 1, and Eq. 9 losses.
    """
    Ps = [_probabilities(s, probabilities) for s in score_list]
    if not Ps:
        return []
    C = Ps[0].shape[1]
    if any(P.shape[1] != C for P in Ps):
        raise ValueError("every expert's scores must have the same number of classes")
    results = [None] * len(Ps)
    # Group experts of similar head counts so padding stays small.
    order = np.argsort([P.shape[0] for P in Ps], kind="stable")
    for group in np.array_split(order, max(1, int(np.ceil(len(Ps) / 256)))):
        solved = _solve_padded([Ps[i] for i in group], tol, max_iter)
        for i, result in zip(group, solved):
            results[i] = result
    return results


def _solve_padded(Ps, tol, max_iter):
    M, C = len(Ps), Ps[0].shape[1]
    H = max(P.shape[0] for P in Ps)
    P = np.zeros((M, H, C))
    valid = np.zeros((M, H), bool)
    for m, Pm in enumerate(Ps):
        P[m, :len(Pm)] = Pm
        valid[m, :len(Pm)] = True
    uniform = np.where(valid[..., None], 1.0 / C, 0.0)
    start = _one_head_start(P, valid)
    f_uniform, f_start = _losses(P, uniform).sum(-1), _losses(P, start).sum(-1)
    X = np.where((f_start < f_uniform)[:, None, None], start, uniform)
    X = _fista(P, X, valid, tol, max_iter)
    losses = _losses(P, X)
    return [(X[m, :len(Pm)].copy(), losses[m]) for m, Pm in enumerate(Ps)]


def _fista(P, X, valid, tol, max_iter):
    """Accelerated projected gradient with per-problem backtracking and adaptive restart."""
    M = len(P)
    mask = valid[..., None]
    f = _losses(P, X).sum(-1)
    step = np.full(M, 1.0)
    momentum = np.ones(M)
    Y, f_y = X.copy(), f.copy()
    active = np.ones(M, bool)
    quiet = np.zeros(M, int)
    for _ in range(max_iter):
        if not active.any():
            break
        a = np.flatnonzero(active)
        G = _gradient(P[a], Y[a])
        while True:  # backtracking on the problems whose step is too long
            t = step[a][:, None, None]
            candidate = np.where(mask[a], project_rows(Y[a] - t * G), 0.0)
            f_c = _losses(P[a], candidate).sum(-1)
            diff = candidate - Y[a]
            bound = f_y[a] + (G * diff).sum((-1, -2)) + (diff ** 2).sum((-1, -2)) / (2 * t[:, 0, 0])
            ok = np.isfinite(f_c) & (f_c <= bound + 1e-12 * np.abs(bound))
            if ok.all() or (step[a] < 1e-14).all():
                break
            step[a[~ok]] *= 0.5
        improved = f_c < f[a]
        # Adaptive restart: when the accelerated point did not help, restart from X.
        restart = ~improved
        new_x = np.where(improved[:, None, None], candidate, X[a])
        new_f = np.where(improved, f_c, f[a])
        t_next = (1 + np.sqrt(1 + 4 * momentum[a] ** 2)) / 2
        beta = np.where(restart, 0.0, (momentum[a] - 1) / t_next)
        Y[a] = new_x + beta[:, None, None] * (new_x - X[a])
        Y[a] = np.where(mask[a], np.clip(Y[a], 0, None), 0.0)
        f_y[a] = _losses(P[a], Y[a]).sum(-1)
        bad = ~np.isfinite(f_y[a])
        Y[a[bad]] = new_x[bad]
        f_y[a[bad]] = new_f[bad]
        momentum[a] = np.where(restart, 1.0, t_next)
        gain = (f[a] - new_f) / np.maximum(np.abs(f[a]), 1e-12)
        X[a], f[a] = new_x, new_f
        step[a] *= 1.25
        quiet[a] = np.where(gain < tol, quiet[a] + 1, 0)
        active[a[quiet[a] >= 5]] = False
    return X


def chco(scores, *, probabilities=False, tol=1e-9, max_iter=20000):
    """CHCO (Eq. 4-11) for one expert.

    Parameters
    ----------
    scores : ndarray of shape (n_heads, n_classes)
        Label scores (mixed mean logits) of the matched nodes, one column per class; or
        head-class probabilities when ``probabilities=True``.
    probabilities : bool, default=False
    tol, max_iter : see :func:`chco_many`

    Returns
    -------
    X : ndarray (n_heads, n_classes)
        Head weights of each class's one-vs-rest predictor; rows >= 0 with sum <= 1.
    losses : ndarray (n_classes,)
        Eq. 9 per class: the task-specific reuse scores (lower is better).

    Examples
    --------
    >>> S = np.array([[4.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    >>> X, losses = chco(S)
    >>> X.argmax(axis=0).tolist(), bool(losses.max() < 0.2)
    ([0, 1], True)
    """
    return chco_many([scores], probabilities=probabilities, tol=tol, max_iter=max_iter)[0]


def heu(scores, *, probabilities=False):
    """The paper's ablation HEU: per class, the single head with the smallest Eq. 9 loss.

    Returns ``(X, losses)`` with one-hot columns (a head may serve several classes).
    """
    P = _probabilities(scores, probabilities)
    costs = _single_head_costs(P)
    X = np.zeros_like(P)
    X[costs.argmin(axis=0), np.arange(P.shape[1])] = 1.0
    return X, _losses(P, X)
