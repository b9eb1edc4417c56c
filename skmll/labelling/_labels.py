"""Model labels, Eq. 1-3 of the paper.

Eq. 1: ``logit_m^c`` is the mean of model m's logits over node c's representative images.
Eq. 2: ``s_m^c = delta * logit_m^c + (1 - delta) * mean over successors c' of s_m^c'``, applied
       recursively leaves first: successors contribute their already mixed
       scores; a node with no images of its own takes the successor mean alone; a node with no
       data anywhere below it has no label (NaN row).
Eq. 3: the label ``S_m`` is the matrix of all ``s_m^c`` (nodes x heads).

The same mixing is applied to mean softmax probabilities (a per-image statistic the paper leaves
open; selectable in the classifier).
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._version import __version__
from ..utils import hash_json


def sdag_key(sdag):
    """Content key of everything a label depends on in an SDAG: node ids, edges, images.

    Texts are left out (they steer matching, not labels). Two SDAGs with the same node ids whose
    images were reassigned, or whose edges differ, get different keys.
    """
    return hash_json([list(sdag.node_ids), [list(e) for e in sdag.edges], sdag.data_hash])


@dataclass(frozen=True)
class ModelLabel:
    """The label of one expert: Eq. 2 scores for every SDAG node.

    Attributes
    ----------
    expert : str
        The expert's name.
    node_ids : tuple of str
        SDAG node ids, aligned with the rows below.
    scores : ndarray of shape (n_nodes, n_heads)
        Mixed mean logits (Eq. 2); NaN rows for nodes with no data at or below them.
    probabilities : ndarray of shape (n_nodes, n_heads)
        Mixed mean softmax outputs, same mixing; NaN rows likewise.
    sdag_key : str
        :func:`sdag_key` of the SDAG the label was computed on.
    delta : float
        The Eq. 2 mixing weight.
    expert_fingerprint : str or None
        The expert's content key (None: the expert declared none, so nothing was cached).
    version : str
        The skmll version that computed the label.
    """

    expert: str
    node_ids: tuple
    scores: np.ndarray
    probabilities: np.ndarray
    sdag_key: str = ""
    delta: float = float("nan")
    expert_fingerprint: str = None
    version: str = __version__

    @property
    def n_heads(self):
        return self.scores.shape[1]

    @property
    def labelled(self):
        """Boolean mask of nodes that carry a label."""
        return ~np.isnan(self.scores[:, 0])


def mix_successors(sdag, node_means, delta):
    """Eq. 2 applied recursively, leaves first, to any number of stacked columns.

    Parameters
    ----------
    sdag : SemanticDAG
    node_means : ndarray of shape (n_nodes, n_columns)
        Eq. 1 per node; NaN rows where a node has no images of its own. Columns may be the heads
        of many experts side by side: one pass mixes them all.
    delta : float in [0, 1]

    Returns
    -------
    ndarray of shape (n_nodes, n_columns), NaN rows for nodes with no data below them.
    """
    node_means = np.asarray(node_means, dtype=np.float64)
    mixed = np.full_like(node_means, np.nan)
    own = ~np.isnan(node_means[:, 0]) if node_means.shape[1] else np.zeros(len(node_means), bool)
    done = np.zeros(len(node_means), dtype=bool)
    successors = sp.csr_matrix(sdag.successor_matrix, dtype=np.float64)
    heights = sdag.heights()
    for level in np.unique(heights):  # every successor of a node has a smaller height
        nodes = np.flatnonzero(heights == level)
        # Successor mean over labelled successors only, as one sparse product for the level.
        links = successors[nodes][:, done]
        n_links = np.asarray(links.sum(axis=1)).ravel()
        succ_mean = (links @ mixed[done]) / np.maximum(n_links, 1)[:, None]
        has_succ, has_own = n_links > 0, own[nodes]
        both = has_own & has_succ
        mixed[nodes[both]] = delta * node_means[nodes[both]] + (1 - delta) * succ_mean[both]
        mixed[nodes[has_own & ~has_succ]] = node_means[nodes[has_own & ~has_succ]]
        mixed[nodes[~has_own & has_succ]] = succ_mean[~has_own & has_succ]
        done[nodes[has_own | has_succ]] = True
    return mixed


def build_labels(sdag, statistics, delta, fingerprints=None):
    """Eq. 1-3 for every expert from its per-node sums.

    Parameters
    ----------
    sdag : SemanticDAG
    statistics : dict name -> NodeStatistics
    delta : float
    fingerprints : dict name -> str or None, optional
        Each expert's content key, recorded in its label.

    Returns
    -------
    dict name -> ModelLabel
    """
    names = list(statistics)
    if not names:
        return {}
    means = [np.concatenate([s.logit_means(), s.probability_means()], axis=1)
             for s in statistics.values()]
    widths = np.cumsum([0] + [m.shape[1] for m in means])
    mixed = mix_successors(sdag, np.concatenate(means, axis=1), delta)
    key, fingerprints = sdag_key(sdag), fingerprints or {}
    labels = {}
    for i, name in enumerate(names):
        block = mixed[:, widths[i]:widths[i + 1]]
        h = block.shape[1] // 2
        labels[name] = ModelLabel(name, tuple(sdag.node_ids),
                                  block[:, :h].astype(np.float32),
                                  block[:, h:].astype(np.float32),
                                  sdag_key=key, delta=float(delta),
                                  expert_fingerprint=fingerprints.get(name))
    return labels
