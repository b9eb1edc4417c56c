"""A bound on an expert's CHCO loss for one class that holds whatever the task's other classes.

For an expert and a node ``n``, let ``p_n`` be its stored head distribution there (the column
of CHCO's ``P`` for a class matched to ``n``, Eq. 4) and ``beta`` the coordinate-wise median of
its distributions over all nodes. The node's *responsiveness* is

    d_n = 1/2 * || p_n - beta ||_1,

how far the expert's answer on ``n`` is from its answer on a typical node. The index keeps, per
node, the experts in decreasing order of ``d_n`` (rounded up, so that it never understates).

**The bound.** Take a task with classes ``c = 1..C`` (C >= 2) at distinct nodes and any feasible
combination ``X`` (rows non-negative, summing to at most 1, so each column ``x_c`` lies in
``[0, 1]^H``). With ``a = p_c . x_c`` and ``b' = p_c' . x_c``, ``a - b' = (p_c - p_c') . x_c``
is at most the total-variation distance ``t = TV(p_c, p_c')``, so ``b' >= a - t``, and

    -log a - log(1 - b') >= min_a [-log a - log(1 - max(0, a - t))] = -2 log((1 + t) / 2) =: g(t):

for ``a <= t`` the left side is at least ``-log t``, for ``a >= t`` it is convex in ``a`` with
its minimum at ``a = (1 + t) / 2``, and ``-log t >= g(t)`` (AM-GM). Eq. 9's loss is the mean
of these pair terms over the other classes, ``L_c = 1/(C-1) sum_c' [-log a - log(1 - b')]``, so
``L_c >= 1/(C-1) sum_c' g(t_cc')``; and the triangle inequality gives
``t_cc' <= d_c + d_c'``. As ``g`` decreases,

    L_c >= 1/(C-1) * sum_{c' != c} g(min(1, d_c + d_c'))                           (*)

for CHCO's solution and for any other feasible ``X``, whatever the other classes are: only their
responsiveness enters. An expert that answers every node alike (small ``d``) cannot tell the
classes apart, and (*) says so (``g(0) = 2 log 2``, the loss of a coin flip). An expert never
read in any of the task's lists has a ``d`` below the last one read in each, so (*) at those
values bounds all of them at once: that is the threshold algorithm's stopping rule.

A task of one class has no bound (every expert scores 0 there); (*) is then 0.
"""

import numpy as np

D_LEVELS = 255
"""Responsiveness is stored as ceil(d * D_LEVELS) in one byte."""


def responsiveness(rows):
    """``d_n`` of every node: rows (n_nodes, n_heads) of head distributions -> (n_nodes,).

    Rows are normalised to sum 1 first, as CHCO's columns are.

    Examples
    --------
    >>> responsiveness(np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])).round(2)
    array([0. , 0. , 0.4])
    """
    P = np.asarray(rows, dtype=np.float64)
    return block_responsiveness([P], P.sum(axis=1))


def block_responsiveness(blocks, sums):
    """:func:`responsiveness` from the rows' head blocks (any iterable of (n_nodes, w) arrays
    covering the heads in order) and their sums: the median and the distance add up over
    heads, so no more than one block is ever normalised at once."""
    distance = np.zeros(len(sums))
    for block in blocks:
        block = block / sums[:, None]
        distance += np.abs(block - np.median(block, axis=0)).sum(axis=1)
    return 0.5 * distance


def quantise_up(d):
    """``d`` as bytes, rounded up (a stored value never understates how responsive)."""
    # The small relative slack covers float rounding of d itself.
    return np.minimum(np.ceil(np.asarray(d) * (1 + 1e-9) * D_LEVELS), D_LEVELS).astype(np.uint8)


def dequantise(stored):
    return np.asarray(stored, dtype=np.float64) / D_LEVELS


def pair_bound(t):
    """``g(t) = -2 log((1 + t) / 2)``, the least loss of a class against one other at TV ``t``."""
    return -2.0 * np.log1p(np.minimum(t, 1.0)) + 2.0 * np.log(2.0)


def loss_bounds(d):
    """Bound (*) for every class: ``d`` (..., C) responsiveness -> (..., C) lower bounds.

    Examples
    --------
    >>> loss_bounds(np.array([0.0, 0.0])).round(4)     # two classes no answer tells apart
    array([1.3863, 1.3863])
    >>> loss_bounds(np.array([0.9, 0.1, 0.1])).round(3)
    array([0.   , 0.511, 0.511])
    """
    d = np.asarray(d, dtype=np.float64)
    n_classes = d.shape[-1]
    if n_classes < 2:
        return np.zeros_like(d)
    pairs = pair_bound(d[..., :, None] + d[..., None, :])
    diagonal = np.arange(n_classes)
    pairs[..., diagonal, diagonal] = 0.0
    return pairs.sum(axis=-1) / (n_classes - 1)
