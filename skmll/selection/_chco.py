"""Classification Head Combination Optimization (CHCO), Eq. 4-11 of the MLL paper.

A model's label columns ``s^c`` (mean logit of every head on node ``c``) become the head-class
probabilities ``P`` (Eq. 4, a softmax over heads). A combination ``X`` (heads x classes) gives
each class ``c`` a binary predictor ``x_c``; ``A = P^T X`` holds its expected outputs
``A[c', c] = p_c(c')`` (Eq. 7-8) and its loss is (Eq. 9)::

    L_c = -log A[c, c] - 1/(C-1) * sum_{c' != c} log(1 - A[c', c])

CHCO minimises ``sum_c L_c`` with every row of ``X`` in ``{x >= 0, sum(x) <= 1}`` (Eq. 5-6, 10).

The solver works on many models at once, as tensors of shape
(models, classes, heads). It is a scaled projected gradient method, run as a block
Gauss-Seidel sweep over a few groups of interleaved heads (each group sees the ``A`` left by
the previous one, as in the paper's per-head loop, while each step stays vectorised):

* metric: the Hessian of the loss with respect to one row of ``X`` is diagonal (each entry of
  the row feeds a different class), so its exact diagonal is the natural per-head step scale;
* step length: Barzilai-Borwein in that metric, per model and head group;
* direction: the scaled gradient step projected row by row onto ``{x >= 0, sum(x) <= 1}``;
* exact line search along that direction, done on ``A`` (linear in ``X``), so it costs
  O(C^2) per model and keeps every loss finite;
* stopping: the Frank-Wolfe duality gap, an upper bound on the distance to the optimum,
  below ``tol * max(1, objective)``, or no decrease at all in a few sweeps in a row (near
  the optimum the gap shrinks like the distance to it, the objective like its square, so the
  gap can stay above a tiny ``tol`` once no float64 step improves the objective).

Models are sorted by head count and grouped into padded blocks (padding heads have zero
probability, so they never move) that are small enough to stay in cache; converged models
leave their block early, and a block's last few slow models continue in a later round
together with those of the other blocks.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

__all__ = ["chco", "chco_loss", "chco_lower_bounds", "chco_many", "head_class_probabilities",
           "heu"]

# Padded (models x classes x heads) entries per block: a few MB per array, so a block's working
# set stays in cache. Measured on the benchmark: larger blocks are not faster.
_BLOCK_ENTRIES = 2**20
# A scaled step longer than this is no more useful than this one (rows live in [0, 1]); the cap
# keeps ``x - g / h`` free of cancellation for heads whose probabilities are tiny.
_MAX_STEP = 1e3
# Floor of the metric where the gradient is 0 too (padding heads): any positive value works;
# this one keeps sums of inverses finite.
_MIN_METRIC = 1e-280
# Bounds on the step scale, relative to the plain diagonal-Newton step.
_MIN_SCALE, _MAX_SCALE = 1e-6, 1e6
# Head groups per sweep: at most _MAX_GROUPS, each with at least this many heads per class
# (a group's line search costs O(models x C^2), so groups must not get too small).
_MAX_GROUPS = 4
_HEADS_PER_CLASS_PER_GROUP = 4
# A block stops once at most this fraction of its models still runs; they go on in the next
# round together with the stragglers of the other blocks.
_STRAGGLERS = 0.25
_LINE_SEARCH_ITER = 30
# The line search stops once the derivative is this small relative to its value at 0.
_LINE_SEARCH_TOL = 1e-10
# Sweeps in a row without a decrease of the objective after which a model has converged.
_PATIENCE = 3
# Bisection steps for the reach of a class in the shared-heads bound (from above: 2^-30).
_BISECTIONS = 30


def _as_matrix(values, name):
    """Check a (n_heads, n_classes) array: 2-D, non-empty, finite; returns float64."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_heads, n_classes), "
                         f"got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} needs at least one head and one class, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def head_class_probabilities(scores):
    """Head-class probability matrix ``P`` of Eq. 4: a softmax over heads, column by column.

    Parameters
    ----------
    scores : array-like of shape (n_heads, n_classes)
        Model label columns: the mean logit of every head on every target class.

    Returns
    -------
    P : ndarray of shape (n_heads, n_classes), float64
        ``P[h, c] = exp(scores[h, c]) / sum_h' exp(scores[h', c])``; every column sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> head_class_probabilities(np.log([[1.0, 1.0], [3.0, 1.0]]))
    array([[0.25, 0.5 ],
           [0.75, 0.5 ]])
    """
    scores = _as_matrix(scores, "scores")
    # Subtracting the column maximum leaves the softmax unchanged and keeps exp() finite.
    weights = np.exp(scores - scores.max(axis=0, keepdims=True))
    return weights / weights.sum(axis=0, keepdims=True)


def _as_probabilities(values):
    """Check that columns are probability distributions over heads; renormalise rounding."""
    probabilities = _as_matrix(values, "probabilities")
    if np.any(probabilities < 0):
        raise ValueError("probabilities must be non-negative")
    sums = probabilities.sum(axis=0)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
        raise ValueError("with probabilities=True every column must sum to 1 over the heads "
                         f"(column sums range from {sums.min():.6g} to {sums.max():.6g})")
    return probabilities / sums


def _probabilities(scores, probabilities):
    return _as_probabilities(scores) if probabilities else head_class_probabilities(scores)


def _losses(A):
    """Eq. 9 for every model and class: ``A`` (..., C, C) -> (..., C); inf outside the domain."""
    n_classes = A.shape[-1]
    with np.errstate(divide="ignore"):
        losses = -np.log(np.maximum(np.diagonal(A, axis1=-2, axis2=-1), 0.0))
        if n_classes > 1:
            log_rest = np.log1p(-np.minimum(A, 1.0))
            diagonal = np.arange(n_classes)
            log_rest[..., diagonal, diagonal] = 0.0
            losses = losses - log_rest.sum(axis=-2) / (n_classes - 1)
    return losses


def _loss_derivatives(A):
    """First and second derivatives of Eq. 10 with respect to each entry of ``A`` (Eq. 11)."""
    n_classes = A.shape[-1]
    if n_classes > 1:
        with np.errstate(divide="ignore"):  # A[c, c] may be 1; the diagonal is replaced below
            rest = 1.0 / (1.0 - A)
        first = rest / (n_classes - 1)
        second = first * rest
    else:
        first, second = np.zeros_like(A), np.zeros_like(A)
    diagonal = np.arange(n_classes)
    inverse = 1.0 / A[..., diagonal, diagonal]
    first[..., diagonal, diagonal] = -inverse
    second[..., diagonal, diagonal] = inverse * inverse
    return first, second


def chco_loss(P, X):
    """Per-class losses ``L_c`` of Eq. 9 for a combination ``X``.

    Parameters
    ----------
    P : array-like of shape (n_heads, n_classes)
        Head-class probabilities (:func:`head_class_probabilities`).
    X : array-like of shape (n_heads, n_classes)
        Combination: column ``c`` weighs the heads of the predictor for class ``c``.

    Returns
    -------
    losses : ndarray of shape (n_classes,)
        ``inf`` where a logarithm's argument is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.9, 0.2], [0.1, 0.8]])
    >>> chco_loss(P, np.eye(2)).round(4)
    array([0.3285, 0.3285])
    """
    P = _as_matrix(P, "P")
    X = _as_matrix(X, "X")
    if X.shape != P.shape:
        raise ValueError(f"X has shape {X.shape}, P has shape {P.shape}")
    return _losses(P.T @ X)


def _single_head_losses(P):
    """``L_c`` of the predictor that is head ``h`` alone: P (..., H, C) -> (..., H, C)."""
    n_classes = P.shape[-1]
    with np.errstate(divide="ignore"):
        own = -np.log(P)
        if n_classes == 1:
            return own
        log_rest = np.log1p(-P)
    # Sum log(1 - p) over the other classes without forming inf - inf when some p == 1.
    certain = np.isinf(log_rest)
    finite_total = np.where(certain, 0.0, log_rest).sum(axis=-1, keepdims=True)
    others = finite_total - np.where(certain, 0.0, log_rest)
    others[certain.sum(axis=-1, keepdims=True) - certain > 0] = -np.inf
    return own - others / (n_classes - 1)


def heu(scores, *, probabilities=False):
    """The paper's HEU ablation: per class, the one head with the smallest loss.

    Each class is served by a single head, chosen independently of the other classes, so a
    head may serve several classes.

    Parameters
    ----------
    scores : array-like of shape (n_heads, n_classes)
        Model label columns (mean logits), or probabilities when ``probabilities=True``.
    probabilities : bool, default False
        The input is already ``P``: every column a distribution over heads.

    Returns
    -------
    X : ndarray of shape (n_heads, n_classes)
        One-hot columns.
    losses : ndarray of shape (n_classes,)
        ``L_c`` of each chosen head (Eq. 9).

    Examples
    --------
    >>> import numpy as np
    >>> X, losses = heu(np.array([[4.0, 0.0], [0.0, 4.0], [0.0, 0.0]]))
    >>> X.argmax(axis=0)
    array([0, 1])
    """
    P = _probabilities(scores, probabilities)
    candidates = _single_head_losses(P)
    best = candidates.argmin(axis=0)
    classes = np.arange(P.shape[1])
    X = np.zeros_like(P)
    X[best, classes] = 1.0
    return X, candidates[best, classes]


def chco_lower_bounds(score_list, *, probabilities=False):
    """Lower bounds on every model's CHCO loss ``L_c`` for every class, without solving.

    For any feasible combination (in particular CHCO's optimum), column ``x_c`` lies in the box
    ``[0, 1]^H``. With ``a = p_c . x_c`` the expected output on class c and ``b`` the mean
    expected output on the other classes, Jensen's inequality gives
    ``L_c >= -log(a) - log(1 - b)``; for a given ``a`` the smallest ``b`` in the box is a
    fractional knapsack (heads taken in decreasing order of ``p_hc / q_h``, ``q_h`` the head's
    mean probability on the other classes), a convex piecewise-linear function of ``a``. The
    bound is the exact minimum of this one-dimensional convex function over ``a``.

    The second bound counts that the classes share the heads (each row of ``X`` sums to at
    most 1) and that CHCO's solution costs at most the uniform combination's total loss (the
    solver starts from it or from a better point and never increases the objective): an
    expert whose columns look alike cannot give one class much without starving the others,
    so its losses stay near the uniform ``2 log C - log(C - 1)``, above the first bound's
    ``2 log 2`` (see ``_shared_heads_bounds``). The larger of the two is returned. They let a
    large hub rule out experts that cannot enter any class's top k without solving for them.

    Parameters
    ----------
    score_list : sequence of array-like, each of shape (n_heads_m, n_classes)
        As in :func:`chco_many`.
    probabilities : bool, default False
        The inputs are already ``P``.

    Returns
    -------
    ndarray of shape (n_models, n_classes)
        ``0 <= bound <= L_c`` of any feasible combination of that model whose total loss is
        at most the uniform combination's (CHCO's solutions, :func:`chco_many`'s included).

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[6.0, 0.0, 1.0], [0.0, 6.0, 1.0]]).T
    >>> chco_lower_bounds([scores]).round(4)   # tight here: chco's losses are 0.0116 too
    array([[0.0116, 0.0116]])
    """
    P_list = [_probabilities(scores, probabilities) for scores in score_list]
    if not P_list:
        return np.zeros((0, 0))
    n_classes = P_list[0].shape[1]
    if any(P.shape[1] != n_classes for P in P_list):
        raise ValueError("all models must share the same classes (n_classes differs)")
    bounds = np.empty((len(P_list), n_classes))
    by_heads = {}
    for i, P in enumerate(P_list):
        by_heads.setdefault(len(P), []).append(i)
    for members in by_heads.values():   # models of one head count as one array
        bounds[members] = _lower_bounds(np.stack([P_list[i] for i in members]))
    return bounds


def _lower_bounds(P):
    """``chco_lower_bounds`` for models of one shape: P (m, H, C) -> (m, C)."""
    return np.maximum(_knapsack_bounds(P), _shared_heads_bounds(P))


def _knapsack_bounds(P):
    """The first bound of ``chco_lower_bounds``: P (..., H, C) -> (..., C)."""
    n_classes = P.shape[-1]
    if n_classes == 1:
        return np.zeros(P.shape[:-2] + (1,))   # every head for the only class: a = 1
    Q = (P.sum(axis=-1, keepdims=True) - P) / (n_classes - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(P > 0, P / Q, -np.inf)
    order = np.argsort(-ratio, axis=-2, kind="stable")
    P, Q = np.take_along_axis(P, order, axis=-2), np.take_along_axis(Q, order, axis=-2)
    # Segment i of the knapsack path runs from (A0, B0) to (A0 + P_i, B0 + Q_i).
    A1, B1 = np.cumsum(P, axis=-2), np.cumsum(Q, axis=-2)
    A0, B0 = A1 - P, B1 - Q
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = Q / P
        # d/da [-log a - log(1 - B0 - slope (a - A0))] = 0 at a = (1 - B0 + slope A0) / 2 slope
        stationary = np.where(slope > 0, (1 - B0 + slope * A0) / (2 * slope), np.inf)
        a = np.clip(stationary, A0, A1)
        b = B0 + np.where(P > 0, slope * (a - A0), 0.0)
        values = -np.log(a) - np.log1p(-np.minimum(b, 1.0))
    values[~(P > 0) | ~np.isfinite(values)] = np.inf
    return np.maximum(values.min(axis=-2), 0.0)

def _gamma(a, t):
    """``-log a - log(1 - max(0, a - t))``: the least loss of a class whose expected output on
    itself is ``a`` when its columns are on average ``t`` apart (in total variation)."""
    with np.errstate(divide="ignore"):
        return -np.log(a) - np.log1p(-np.maximum(a - t, 0.0))


def _mean_distances(P):
    """Per class, a bound on the mean total-variation distance of its column from the others'
    (through the task's mean column): P (m, H, C) -> (m, C)."""
    n_classes = P.shape[-1]
    spread = 0.5 * np.abs(P - P.mean(axis=2, keepdims=True)).sum(axis=1)
    return np.minimum(spread + (spread.sum(axis=1, keepdims=True) - spread) / (n_classes - 1), 1)


def _shared_heads_bounds(P):
    """The second bound of ``chco_lower_bounds``: P (m, H, C) -> (m, C).

    Every head's row sums to at most 1 over the classes, so the classes share the heads:
    ``sum_c a_c <= S = sum_h max_c P[h, c]`` with ``a_c = p_c . x_c``; and a solution's total
    loss is at most the uniform combination's, ``U = C (2 log C - log(C - 1))``, which the
    solver starts from or beats and only ever decreases. Per class, Jensen's inequality gives
    ``L_c >= gamma(a_c, t_c)`` with ``t_c`` (bounded through the task's mean column) the mean
    total-variation distance of ``p_c`` from the other columns. So feasible ``a`` satisfy
    ``sum_c gamma(a_c, t_c) <= U`` and ``sum_c a_c <= S``; for any ``lam >= 0``, weighing the
    second into the first bounds each ``a_c`` from above by the largest ``a`` with
    ``gamma(a, t_c) + lam a <= U + lam S - sum_{c' != c} min_a' [gamma(a', t_c') + lam a']``
    (found by bisection from above, so never understated). The bound is ``gamma`` at the
    smallest such reach over a grid of ``lam``, or at ``gamma``'s own minimiser if that is
    smaller. An expert whose columns all look alike cannot favour one class: its bound comes
    close to the uniform loss ``2 log C - log(C - 1)`` (2.22 of 2.41 for C = 10), where the
    first bound stays below ``2 log 2``.
    """
    n_models, n_heads, n_classes = P.shape
    if n_classes < 2:
        return np.zeros((n_models, n_classes))
    t = _mean_distances(P)
    shared = P.max(axis=2).sum(axis=1)[:, None, None]
    total = n_classes * (2 * np.log(n_classes) - np.log(n_classes - 1)) * (1 + 1e-9) + 1e-9
    lam = n_classes * np.concatenate([[0.0], 2.0 ** np.arange(-4, 4)])[None, None, :]
    t3 = t[:, :, None]
    # gamma(a) + lam a is convex with a kink at a = t; its minimiser is on one side of it
    with np.errstate(divide="ignore"):
        left = np.clip(1.0 / lam, 1e-300, np.maximum(t3, 1e-300))
    right = np.clip(2 * (1 + t3) / (2 + lam * (1 + t3) + np.sqrt(4 + (lam * (1 + t3)) ** 2)),
                    t3, 1.0)
    left_value, right_value = _gamma(left, t3) + lam * left, _gamma(right, t3) + lam * right
    low = np.where(left_value < right_value, left, right)
    least = np.minimum(left_value, right_value)                                     # (m, C, L)
    allowance = total + lam * shared - least.sum(axis=1, keepdims=True) + least
    high = np.ones_like(low)
    unlimited = _gamma(high, t3) + lam * high <= allowance
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        fits = _gamma(middle, t3) + lam * middle <= allowance
        low, high = np.where(fits, middle, low), np.where(fits, high, middle)
    reach = np.where(unlimited, 1.0, high).min(axis=2)
    return _gamma(np.minimum(reach, (1 + t) / 2), t)


def _check_init(init, P):
    X = _as_matrix(init, "init")
    if X.shape != P.shape:
        raise ValueError(f"init has shape {X.shape}, expected {P.shape}")
    if np.any(X < 0) or np.any(X.sum(axis=1) > 1 + 1e-9):
        raise ValueError("init must be feasible: non-negative rows with sums <= 1")
    X = X / np.maximum(X.sum(axis=1, keepdims=True), 1.0)
    if not np.all(np.isfinite(_losses(P.T @ X))):
        raise ValueError("init gives an infinite loss; every class needs some weight")
    return X


def _project_rows(Y, inverse_weights):
    """Row-wise weighted projection onto ``{x >= 0, sum(x) <= 1}``; rows lie along axis 1.

    Minimises ``sum_c w_c (x_c - y_c)^2``: ``x_c = max(y_c - t / w_c, 0)`` with ``t = 0`` when
    that is feasible, else the ``t > 0`` that makes the row sum 1. ``t`` is found with
    Michelot's active-set iteration, started from the lower bound ``max_c (y_c - 1) w_c``
    (no ``x_c`` exceeds 1): each pass drops the entries that the current ``t`` sends below
    zero; ``t`` only grows and never overshoots, so it is exact after at most C passes. After
    the first pass only the rows still changing are iterated, gathered as (classes, rows).
    """
    threshold = np.maximum(((Y - 1.0) / inverse_weights).max(axis=1, keepdims=True), 0.0)
    X, unsettled = _michelot_pass(Y, inverse_weights, Y > threshold * inverse_weights, axis=1)
    if unsettled.any():
        models, heads = np.nonzero(unsettled.squeeze(1))
        Y, inverse_weights = (np.moveaxis(a, 1, 0)[:, models, heads] for a in (Y, inverse_weights))
        active = Y > threshold[models, 0, heads] * inverse_weights
        while True:
            rows, unsettled = _michelot_pass(Y, inverse_weights, active, axis=0)
            if not unsettled.any():
                break
            active &= rows > 0
        np.moveaxis(X, 1, 0)[:, models, heads] = rows
    return X


def _michelot_pass(Y, inverse_weights, active, axis):
    """One Michelot update of the threshold from ``active``; returns (x, rows not settled)."""
    excess = np.where(active, Y, 0.0).sum(axis=axis, keepdims=True) - 1.0
    spread = np.where(active, inverse_weights, 0.0).sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        threshold = np.maximum(np.where(spread > 0, excess / spread, 0.0), 0.0)
    X = np.where(active, Y - threshold * inverse_weights, 0.0)
    unsettled = (active & (X <= 0)).any(axis=axis, keepdims=True)
    return X, unsettled


def _line_search(A, Ad):
    """Minimise ``sum L(A + lam * Ad)`` over lam in [0, 1] for every model.

    Every term of Eq. 10 is ``-w log(z + lam dz)`` (``z = A[c, c]`` or ``1 - A[c', c]``), so
    the change of the objective is ``-sum w log1p(lam * r)`` with ``r = dz / z``: computed this
    way it stays exact when it is far below the objective's rounding error, which is what
    lets ill-conditioned models keep improving. Safeguarded Newton on the derivative inside
    the interval where every ``1 + lam * r`` is positive, bisecting when Newton is slow.

    Returns
    -------
    step : ndarray of shape (n_models,)
        The step with the largest decrease seen (0 if none decreases the objective).
    change : ndarray of shape (n_models,)
        The objective's change at that step (<= 0).
    """
    n_models, n_classes = A.shape[:2]
    diagonal = np.arange(n_classes)
    with np.errstate(divide="ignore", invalid="ignore"):  # the diagonal is replaced below
        rates = -Ad / (1.0 - A)
    rates[:, diagonal, diagonal] = Ad[:, diagonal, diagonal] / A[:, diagonal, diagonal]
    rates = rates.reshape(n_models, -1)
    weights = np.full((n_classes, n_classes), 1.0 / max(n_classes - 1, 1))
    weights[diagonal, diagonal] = 1.0
    weights = weights.ravel()
    step, change = np.zeros(n_models), np.zeros(n_models)
    at = np.flatnonzero(rates @ weights > 0)  # the slope -sum(w r) is negative
    rates, steepness = rates[at], rates[at] @ weights
    with np.errstate(divide="ignore", over="ignore"):  # tiny rates: no limit
        limit = np.where(rates < 0, -1.0 / rates, np.inf).min(axis=1)
    low, high = np.zeros(len(at)), np.minimum(limit, 1.0)
    trial = np.where(limit > 1.0, 1.0, 0.5 * limit)
    best_step, best_change = np.zeros(len(at)), np.zeros(len(at))
    for _ in range(_LINE_SEARCH_ITER):
        if not len(at):
            break
        scaled = trial[:, None] * rates
        trial_change = -(np.log1p(scaled) @ weights)
        scaled = rates / (1.0 + scaled)
        derivative = -(scaled @ weights)
        curvature = (scaled * scaled) @ weights
        better = trial_change < best_change
        best_step = np.where(better, trial, best_step)
        best_change = np.where(better, trial_change, best_change)
        descending = derivative <= 0
        low, high = np.where(descending, trial, low), np.where(descending, high, trial)
        middle = 0.5 * (low + high)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = trial - derivative / curvature
        newton = np.where((newton > low) & (newton < high), newton, middle)
        # Right of the minimum, next to a log singularity, Newton crawls: at least bisect.
        trial = np.where(descending, newton, np.minimum(newton, middle))
        done = (np.abs(derivative) <= _LINE_SEARCH_TOL * steepness) | (high - low <= 1e-15 * high)
        step[at[done]], change[at[done]] = best_step[done], best_change[done]
        keep = ~done
        at, rates, steepness, low, high, trial, best_step, best_change = (
            a[keep] for a in (at, rates, steepness, low, high, trial, best_step, best_change))
    step[at], change[at] = best_step, best_change
    return step, change


class _Block:
    """Models of similar head counts, padded to (models, classes, heads) float64 arrays.

    ``starts`` holds each model's starting X (None: the default start) and ``scales`` its
    step scale, both carried over from an earlier round for models that needed more sweeps.
    """

    def __init__(self, probability_list, starts, scales):
        n_models, n_classes = len(probability_list), probability_list[0].shape[1]
        self.sizes = np.array([len(P) for P in probability_list])
        n_heads = self.sizes.max()
        self.Pt = np.zeros((n_models, n_classes, n_heads))
        self.Xt = np.zeros_like(self.Pt)
        for i, (P, X) in enumerate(zip(probability_list, starts)):
            self.Pt[i, :, :len(P)] = P.T
            if X is not None:
                self.Xt[i, :, :len(P)] = X.T
        given = np.array([X is not None for X in starts])
        if not given.all():
            self.Xt[~given] = _default_starts(self.Pt[~given], self.sizes[~given])
        self.scales = np.asarray(scales, dtype=float)

    def solve(self, tol, budget):
        """Minimise until converged, out of ``budget`` sweeps, or left among a few stragglers.

        Block Gauss-Seidel over head groups: each group takes a scaled projected gradient
        step with an exact line search, and the next group sees the updated ``A``. When many
        heads move at once their effects on ``A`` add up, so a step for all heads together
        must be cut short (models unrelated to the task, whose heads all look alike, suffer
        most); groups of interleaved heads keep much of the benefit of the paper's per-head
        loop at the cost of a vectorised pass. Once most models have converged the block
        stops: its stragglers join those of other blocks in the next round, so that a few
        slow models do not run many sweeps of small, overhead-bound array operations.

        Returns
        -------
        X : list of ndarray (n_heads_m, n_classes)
        status : ndarray of str ("converged", "exhausted" or "unfinished")
        sweeps : ndarray of int, sweeps used per model
        scales : ndarray, step scale per model
        """
        n_models, n_classes, n_heads = self.Pt.shape
        n_groups = _n_groups(n_heads, n_classes)
        groups = [np.s_[:, :, k::n_groups] for k in range(n_groups)]
        P = [np.ascontiguousarray(self.Pt[group]) for group in groups]
        squared = [p * p for p in P]
        X = [np.ascontiguousarray(self.Xt[group]) for group in groups]
        status = np.full(n_models, "unfinished")
        sweeps, stalls = np.zeros(n_models, dtype=int), np.zeros(n_models, dtype=int)
        scale = np.tile(self.scales, (n_groups, 1))
        index = np.arange(n_models)
        A = sum(p @ np.swapaxes(x, 1, 2) for p, x in zip(P, X))
        first, second = _loss_derivatives(A)
        # Per group, its last step s: the change of A it made, dL/dA before it and <s, J s>.
        moved = np.zeros((n_groups,) + A.shape)
        before = np.zeros_like(moved)
        metric_norm = np.zeros((n_groups, n_models))
        while True:
            G = [np.swapaxes(first, 1, 2) @ p for p in P]
            gap = (first * A).sum(axis=(1, 2)) - sum(
                np.minimum(g.min(axis=1), 0.0).sum(axis=1) for g in G)
            objective = _losses(A).sum(axis=1)
            done = (gap <= tol * np.maximum(np.abs(objective), 1.0)) | (stalls >= _PATIENCE)
            status[index[done]] = "converged"
            exhausted = ~done & (sweeps[index] >= budget[index])
            status[index[exhausted]] = "exhausted"
            leaving = done | exhausted
            if leaving.all() or (leaving.any() and
                                 (~leaving).sum() <= _STRAGGLERS * n_models < len(index)):
                leaving[:] = True
            if leaving.any():
                for group, x in zip(groups, X):
                    self.Xt[(index[leaving],) + group[1:]] = x[leaving]
                self.scales[index[leaving]] = np.exp(np.log(scale[:, leaving]).mean(axis=0))
                keep = ~leaving
                if not keep.any():
                    break
                index, A, first, second = index[keep], A[keep], first[keep], second[keep]
                P, squared, X, G = ([a[keep] for a in arrays] for arrays in (P, squared, X, G))
                scale, stalls, metric_norm = scale[:, keep], stalls[keep], metric_norm[:, keep]
                moved, before = moved[:, keep], before[:, keep]
            progress = np.zeros(len(index), dtype=bool)
            for k in range(n_groups):
                # Barzilai-Borwein in the diagonal metric, from the group's last step s:
                # <s, J s> / <s, y>, y the change of its gradient since; as G = P dL/dA,
                # <s, y> is computed on A.
                curvature = (moved[k] * (first - before[k])).sum(axis=(1, 2))
                with np.errstate(divide="ignore", invalid="ignore"):
                    scale[k] = np.clip(np.where(curvature > 0, metric_norm[k] / curvature,
                                                scale[k]), _MIN_SCALE, _MAX_SCALE)
                gradient = G[0] if k == 0 else np.swapaxes(first, 1, 2) @ P[k]
                step, Ad, metric_norm[k] = _group_step(A, second, P[k], squared[k], X[k],
                                                       gradient, scale[k])
                moved[k], before[k] = step[:, None, None] * Ad, first
                A += moved[k]
                first, second = _loss_derivatives(A)
                progress |= step > 0
            stalls = np.where(progress, 0, stalls + 1)
            sweeps[index] += 1
        combinations = [x[:, :size].T for x, size in zip(self.Xt, self.sizes)]
        return combinations, status, sweeps, self.scales


def _default_starts(Pt, sizes):
    """Per model, the better of two feasible starts: uniform rows, or the HEU heads.

    ``Pt`` is (models, classes, heads); a head that HEU picks for k classes gives each 1/k,
    so that its row still sums to 1.
    """
    n_models, n_classes, n_heads = Pt.shape
    real_heads = np.arange(n_heads) < sizes[:, None]
    uniform = np.repeat(real_heads[:, None, :] / n_classes, n_classes, axis=1)
    best = _single_head_losses(np.swapaxes(Pt, 1, 2)).argmin(axis=1)
    heu_start = np.zeros_like(Pt)
    heu_start[np.arange(n_models)[:, None], np.arange(n_classes), best] = 1.0
    heu_start /= np.maximum(heu_start.sum(axis=1, keepdims=True), 1.0)
    uniform_loss = _losses(Pt @ np.swapaxes(uniform, 1, 2)).sum(axis=1)
    heu_loss = _losses(Pt @ np.swapaxes(heu_start, 1, 2)).sum(axis=1)
    return np.where((heu_loss < uniform_loss)[:, None, None], heu_start, uniform)


def _group_step(A, second, P, squared, X, gradient, scale):
    """Move one head group (``X`` in place) along its scaled projected gradient direction.

    Returns
    -------
    step : ndarray (n_models,), from the exact line search.
    Ad : ndarray (n_models, C, C), the change of A per unit step.
    metric_norm : ndarray (n_models,), ``<s, J s>`` for the step ``s`` taken, with ``J`` the
        unscaled diagonal of the Hessian.
    """
    metric = np.swapaxes(second / scale[:, None, None], 1, 2) @ squared
    np.maximum(metric, np.abs(gradient) / _MAX_STEP, out=metric)
    np.maximum(metric, _MIN_METRIC, out=metric)
    inverse_metric = np.reciprocal(metric, out=metric)
    D = _project_rows(X - gradient * inverse_metric, inverse_metric)
    D -= X
    Ad = P @ np.swapaxes(D, 1, 2)
    step, _ = _line_search(A, Ad)
    X += step[:, None, None] * D
    metric_norm = step * step * scale * np.einsum("bij,bij->b", D / inverse_metric, D)
    return step, Ad, metric_norm


def _n_groups(n_heads, n_classes):
    """Head groups for the block Gauss-Seidel sweep (see _Block.solve)."""
    return int(np.clip(n_heads // (_HEADS_PER_CLASS_PER_GROUP * n_classes), 1, _MAX_GROUPS))


def _blocks(sizes, n_classes):
    """Group model indices (largest first) into blocks of at most _BLOCK_ENTRIES padded entries."""
    order = np.argsort(-np.asarray(sizes), kind="stable")
    block = []
    for i in order:
        if block and (len(block) + 1) * sizes[block[0]] * n_classes > _BLOCK_ENTRIES:
            yield block
            block = []
        block.append(i)
    if block:
        yield block


def chco_many(score_list, *, probabilities=False, tol=1e-9, max_iter=1000, init=None):
    """Solve CHCO for many models with the same classes as batched tensor problems.

    Parameters
    ----------
    score_list : sequence of array-like, each of shape (n_heads_m, n_classes)
        Model label columns (mean logits), or probabilities when ``probabilities=True``.
        Head counts may differ between models; the number of classes may not.
    probabilities : bool, default False
        The inputs are already ``P``: every column a distribution over heads (checked).
    tol : float, default 1e-9
        Stop a model when its Frank-Wolfe duality gap, which bounds how far its objective
        ``sum_c L_c`` is above the optimum, is at most ``tol * max(1, objective)``.
    max_iter : int, default 1000
        Sweeps (one step of every head group) per model; a
        :class:`~sklearn.exceptions.ConvergenceWarning` names the models that needed more.
    init : sequence of array-like or None, default None
        Feasible starting combinations (one per model, or None for the default start: the
        better of uniform rows and the HEU heads).

    Returns
    -------
    results : list of (X, losses)
        Per model, the combination ``X`` of shape (n_heads_m, n_classes) (rows non-negative,
        row sums at most 1) and its per-class losses ``L_c`` (Eq. 9), shape (n_classes,).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> results = chco_many([rng.normal(size=(5, 3)), rng.normal(size=(8, 3))])
    >>> [X.shape for X, losses in results]
    [(5, 3), (8, 3)]
    """
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter}")
    P_list = [_probabilities(scores, probabilities) for scores in score_list]
    if not P_list:
        return []
    n_classes = P_list[0].shape[1]
    if any(P.shape[1] != n_classes for P in P_list):
        raise ValueError("all models must share the same classes (n_classes differs)")
    if init is None:
        init = [None] * len(P_list)
    if len(init) != len(P_list):
        raise ValueError(f"init has {len(init)} entries for {len(P_list)} models")
    starts = [None if X is None else _check_init(X, P) for X, P in zip(init, P_list)]
    sizes = np.array([len(P) for P in P_list])
    scales = np.ones(len(P_list))
    budget = np.full(len(P_list), max_iter)
    results = [None] * len(P_list)
    not_converged = []
    pending = np.arange(len(P_list))
    # The products here are small; multithreaded BLAS only adds contention (with torch
    # loaded, 2-thread OpenBLAS made them 30 times slower on a 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        while len(pending):
            stragglers = []
            for members in _blocks(sizes[pending], n_classes):
                members = pending[members]
                block = _Block([P_list[i] for i in members], [starts[i] for i in members],
                               scales[members])
                X_list, status, sweeps, scales[members] = block.solve(tol, budget[members])
                budget[members] -= sweeps
                for i, X, state in zip(members, X_list, status):
                    if state == "unfinished":
                        starts[i] = X
                        stragglers.append(i)
                    else:
                        results[i] = _finish(P_list[i], X)
                        if state == "exhausted":
                            not_converged.append(int(i))
            pending = np.array(stragglers, dtype=int)
    if not_converged:
        warning = ConvergenceWarning(
            f"CHCO did not reach tol={tol} within max_iter={max_iter} for models "
            f"{sorted(not_converged)[:10]}{' ...' if len(not_converged) > 10 else ''}")
        warning.models = sorted(not_converged)   # all of them, for callers that name models
        warnings.warn(warning, stacklevel=2)
    return results


def _finish(P, X):
    """Make the constraints hold exactly despite rounding; return X and its losses."""
    X = np.maximum(X, 0.0)
    X /= np.maximum(X.sum(axis=1, keepdims=True), 1.0)
    return X, _losses(P.T @ X)


def chco(scores, *, probabilities=False, tol=1e-9, max_iter=1000, init=None):
    """Combine a model's classification heads into one predictor per class (CHCO).

    Minimises ``sum_c L_c`` (Eq. 9-10) over combinations ``X`` whose rows are non-negative
    and sum to at most 1 (Eq. 5-6). The problem is convex; see :func:`chco_many` for the
    solver, which this function runs on one model.

    Parameters
    ----------
    scores : array-like of shape (n_heads, n_classes)
        Model label columns (mean logits per head and class), or probabilities when
        ``probabilities=True``.
    probabilities : bool, default False
        The input is already ``P``: every column a distribution over heads (checked).
    tol : float, default 1e-9
        Relative Frank-Wolfe duality gap at which to stop (bounds the objective's distance
        to the optimum).
    max_iter : int, default 1000
        Sweeps over the heads; a :class:`~sklearn.exceptions.ConvergenceWarning` says when
        they were not enough.
    init : array-like of shape (n_heads, n_classes) or None, default None
        Feasible starting combination (for example a loose solution to refine).

    Returns
    -------
    X : ndarray of shape (n_heads, n_classes)
        Column ``c`` is the head combination ``x_c`` of the predictor for class ``c``.
    losses : ndarray of shape (n_classes,)
        ``L_c`` of each predictor: the reuse scores (smaller is better).

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[6.0, 0.0, 1.0], [0.0, 6.0, 1.0]]).T  # 3 heads, 2 classes
    >>> X, losses = chco(scores)
    >>> X.round(2)
    array([[1. , 0. ],
           [0. , 1. ],
           [0.5, 0.5]])
    >>> losses.round(4)
    array([0.0116, 0.0116])
    """
    return chco_many([scores], probabilities=probabilities, tol=tol, max_iter=max_iter,
                     init=None if init is None else [init])[0]
