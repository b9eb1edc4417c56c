"""How a label's node rows are kept for search: the stored precision, and its exact decoding.

A label's probability row on one node is a distribution over the expert's heads (the mixed mean
of its softmax outputs, Eq. 2). Rows are stored in float16 (relative rounding 2^-11), every
head of every expert by default: measured, this selects exactly what full precision selects
(``results/zoo/precision.md``). A zoo created with ``max_dense`` trades that for disk: an expert
with more heads keeps, per node, its ``max_dense`` largest entries and one ``floor``, the mean
of the rest (its mass spread evenly over the heads not kept), so that a 21,843-head expert
costs what a ``max_dense``-head one does, but selections then differ from full precision's
(13% of the world's with 64). Search reads rows through :func:`decode_rows` only: the losses
it ranks and the bounds it prunes with are those of the decoded rows, so pruning stays exact
whatever the precision.
"""

import numpy as np


def encode_rows(probabilities, max_dense=None):
    """Encode one expert's (n_nodes, n_heads) probability rows.

    Parameters
    ----------
    probabilities : array-like of shape (n_nodes, n_heads)
    max_dense : int or None, default=None
        Keep every head (None), or only this many entries per row of a wider expert.

    Returns
    -------
    values : float16 ndarray of shape (n_nodes, n_heads), or (n_nodes, max_dense) when wider
    heads : uint16 or uint32 ndarray of the same shape, or None (dense: every head, in order)
    floor : float32 ndarray of shape (n_nodes,), or None (dense)
    """
    P = np.asarray(probabilities, dtype=np.float32)
    if P.ndim != 2 or P.shape[1] < 1:
        raise ValueError(f"probability rows must be (n_nodes, n_heads), got shape {P.shape}")
    if not np.all(np.isfinite(P)) or (P < 0).any():
        raise ValueError("probability rows must be finite and non-negative")
    n_heads = P.shape[1]
    if max_dense is None or n_heads <= max_dense:
        return P.astype(np.float16), None, None
    heads = np.argpartition(-P, max_dense - 1, axis=1)[:, :max_dense]
    heads.sort(axis=1)
    kept = np.take_along_axis(P, heads, axis=1)
    rest = np.maximum(P.sum(axis=1, dtype=np.float64) - kept.sum(axis=1, dtype=np.float64), 0)
    floor = (rest / (n_heads - max_dense)).astype(np.float32)
    dtype = np.uint16 if n_heads <= 2**16 else np.uint32
    return kept.astype(np.float16), heads.astype(dtype), floor


def decode_rows(values, heads, floor, n_heads):
    """The (n_rows, n_heads) float64 rows that ``encode_rows`` stored."""
    values = np.asarray(values, dtype=np.float64)
    if heads is None:
        return values
    rows = np.repeat(np.asarray(floor, dtype=np.float64)[:, None], n_heads, axis=1)
    np.put_along_axis(rows, np.asarray(heads, dtype=np.int64), values, axis=1)
    return rows


def stored_probabilities(probabilities, max_dense=None):
    """What search sees of ``probabilities`` once stored: ``decode_rows(encode_rows(...))``.

    Examples
    --------
    >>> import numpy as np
    >>> rows = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    >>> stored_probabilities(rows, max_dense=2).round(3)
    array([[0.7, 0.2, 0.1],
           [0.1, 0.1, 0.8]])
    """
    P = np.asarray(probabilities)
    return decode_rows(*encode_rows(P, max_dense), P.shape[1])


def decoded_blocks(values, heads, floor, n_heads, width=512):
    """``decode_rows`` a block of heads at a time: yields (n_rows, <= width) float64 arrays, in
    head order, so that a 21,843-head expert's rows are never all in float64 at once."""
    for start in range(0, n_heads, width):
        stop = min(start + width, n_heads)
        if heads is None:
            yield np.asarray(values[:, start:stop], dtype=np.float64)
            continue
        block = np.repeat(np.asarray(floor, dtype=np.float64)[:, None], stop - start, axis=1)
        rows, columns = np.nonzero((heads >= start) & (heads < stop))
        block[rows, heads[rows, columns].astype(np.int64) - start] = values[rows, columns]
        yield block
