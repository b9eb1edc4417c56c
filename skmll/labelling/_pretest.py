"""Pre-testing: forward passes of every expert over the SDAG's images, reduced to node sums.

Work is split into (expert, shard of nodes) tasks; shards depend only on the SDAG, never on
the number of workers, so serial and distributed runs give identical sums. Each expert's sums
are stored as soon as its last shard is done, keyed by the expert's fingerprint and each node's
data hash: an interrupted run resumes, a new expert or a new node costs only its own passes.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from ..hub import ExpertError, n_heads, run_expert
from ..utils import load_record, save_record


@dataclass
class NodeStatistics:
    """Per-node sums of one expert's outputs over the node's own images (Eq. 1 ingredients)."""

    logit_sums: np.ndarray        # (n_nodes, n_heads) float64
    probability_sums: np.ndarray  # (n_nodes, n_heads) float64
    counts: np.ndarray            # (n_nodes,) int64

    def _means(self, sums):
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / self.counts[:, None]
        means[self.counts == 0] = np.nan
        return means

    def logit_means(self):
        """Eq. 1; NaN rows for nodes without images."""
        return self._means(self.logit_sums)

    def probability_means(self):
        """Mean softmax output per node; NaN rows for nodes without images."""
        return self._means(self.probability_sums)


def node_shards(sdag, nodes, images_per_shard):
    """Split ``nodes`` (indices) into consecutive shards of about that many images each."""
    shards, current, size = [], [], 0
    for node in nodes:
        current.append(int(node))
        size += int(sdag.n_images[node])
        if size >= images_per_shard:
            shards.append(current)
            current, size = [], 0
    if current:
        shards.append(current)
    return shards


def pretest_shard(expert, sdag, nodes, batch_size):
    """Forward passes of ``expert`` over the images of ``nodes``; sums per node.

    Returns ``(nodes, logit_sums, probability_sums, counts, error)``; a failing expert gives its
    message in ``error`` instead of raising, so the other tasks of a parallel run go on.
    """
    width = n_heads(expert)
    position = {node: i for i, node in enumerate(nodes)}
    logit_sums = np.zeros((len(nodes), width))
    probability_sums = np.zeros((len(nodes), width))
    counts = np.zeros(len(nodes), dtype=np.int64)
    batches = sdag.iter_batches(batch_size, nodes=[sdag.node_ids[n] for n in nodes])
    try:
        for images, node_index in batches:
            logits = run_expert(expert, images).astype(np.float64)
            # A batch holds each node's images consecutively: sum each run of one node, then add
            # the run sums to their rows (np.add.at is also right if a node's run came back).
            starts = np.flatnonzero(np.diff(node_index, prepend=-1))
            rows = np.array([position[n] for n in node_index[starts]], dtype=np.int64)
            np.add.at(logit_sums, rows, np.add.reduceat(logits, starts, axis=0))
            np.add.at(probability_sums, rows,
                      np.add.reduceat(softmax(logits, axis=1), starts, axis=0))
            np.add.at(counts, rows, np.diff(starts, append=len(node_index)))
    except ExpertError as exc:
        return nodes, None, None, None, str(exc)
    return nodes, logit_sums, probability_sums, counts, None


class StatisticsStore:
    """Per-expert node sums on disk, one record per expert fingerprint, rows keyed by node data."""

    def __init__(self, folder):
        self.folder = None if folder is None else folder / "labels"

    def load(self, fingerprint):
        """dict node data hash -> (logit_sums row, probability_sums row, count)."""
        if self.folder is None:
            return {}
        record = load_record(self.folder, fingerprint)
        if record is None:
            return {}
        arrays, meta = record
        return {key: (arrays["logit_sums"][i], arrays["probability_sums"][i],
                      int(arrays["counts"][i]))
                for i, key in enumerate(meta["node_keys"])}

    def save(self, fingerprint, expert_name, rows):
        if self.folder is None or not rows:
            return
        keys = sorted(rows)
        save_record(
            self.folder, fingerprint,
            {"logit_sums": np.stack([rows[k][0] for k in keys]),
             "probability_sums": np.stack([rows[k][1] for k in keys]),
             "counts": np.array([rows[k][2] for k in keys], dtype=np.int64)},
            {"expert": expert_name, "node_keys": keys},
        )


def assemble_statistics(sdag, rows, width):
    """NodeStatistics over all SDAG nodes from rows keyed by node data hash."""
    n = sdag.n_nodes
    stats = NodeStatistics(np.zeros((n, width)), np.zeros((n, width)), np.zeros(n, np.int64))
    for node in np.flatnonzero(sdag.n_images > 0):
        logit_row, probability_row, count = rows[sdag.node_data_hash(sdag.node_ids[node])]
        stats.logit_sums[node] = logit_row
        stats.probability_sums[node] = probability_row
        stats.counts[node] = count
    return stats
