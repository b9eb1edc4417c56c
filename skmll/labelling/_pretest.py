"""Pre-testing: forward passes of every expert over the SDAG's images, reduced to node sums.

Work is split into (expert, shard of nodes) tasks; shards depend only on the SDAG, never on
the number of workers, so serial and distributed runs give identical sums. Each expert's sums
are stored in a :class:`~skmll.labelling.LabelStore` as soon as its last shard is done, keyed by
the expert's fingerprint and each node's data hash: an interrupted run resumes, a new expert or
a new node costs only its own passes, and runs sharing a directory share the work.
"""

import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from ..hub import ExpertError, count_gflops, n_heads, run_expert, using_expert
from ..hub._images import prefetched
from ..utils import CacheWriteWarning, progress


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


def pretest_shard(expert, sdag, nodes, batch_size, *, count_flops=False):
    """Forward passes of ``expert`` over the images of ``nodes``; sums per node.

    Returns ``(nodes, logit_sums, probability_sums, counts, cost, error)``; a failing expert
    gives its message in ``error`` instead of raising, so the other tasks of a parallel run go
    on. ``cost`` holds ``"seconds"``, the time spent in the expert's forward passes (image
    reading left out), and with ``count_flops`` also ``"gflops"``, its FLOPs per image
    (:func:`~skmll.hub.count_gflops` on a few of the shard's images; None when they cannot be
    counted). A :class:`~skmll.hub.LazyExpert` built here is released when the shard is done,
    so a worker holds one lazily built model at a time.
    """
    with using_expert(expert):
        try:
            *sums, seconds = _shard_sums(expert, sdag, nodes, batch_size)
        except ExpertError as exc:
            return nodes, None, None, None, None, str(exc)
        cost = {"seconds": seconds}
        if count_flops:
            cost["gflops"] = _shard_gflops(expert, sdag, nodes)
        return (nodes, *sums, cost, None)


def _shard_gflops(expert, sdag, nodes):
    images, _ = next(sdag.iter_batches(2, nodes=[sdag.node_ids[nodes[0]]]))
    try:
        return count_gflops(expert, images)
    except Exception:  # a counter that fails on some operation: the count is unknown, no guess
        return None


def _shard_sums(expert, sdag, nodes, batch_size):
    width = n_heads(expert)
    position = {node: i for i, node in enumerate(nodes)}
    logit_sums = np.zeros((len(nodes), width))
    probability_sums = np.zeros((len(nodes), width))
    counts = np.zeros(len(nodes), dtype=np.int64)
    seconds = 0.0
    for _, node_index, (logits,), (spent,) in run_over_nodes([expert], sdag, nodes, batch_size):
        logits = logits.astype(np.float64)
        seconds += spent
        # A batch holds each node's images consecutively: sum each run of one node, then add
        # the run sums to their rows (np.add.at is also right if a node's run came back).
        starts = np.flatnonzero(np.diff(node_index, prepend=-1))
        rows = np.array([position[n] for n in node_index[starts]], dtype=np.int64)
        np.add.at(logit_sums, rows, np.add.reduceat(logits, starts, axis=0))
        np.add.at(probability_sums, rows,
                  np.add.reduceat(softmax(logits, axis=1), starts, axis=0))
        np.add.at(counts, rows, np.diff(starts, append=len(node_index)))
    return logit_sums, probability_sums, counts, seconds


def run_over_nodes(experts, sdag, nodes, batch_size, *, wanted=None, verbose=0,
                   desc="SDAG images"):
    """Run each expert once per batch over the SDAG images of ``nodes``, in that order.

    The next batch's files are read and decoded in a background thread during the forward
    passes on this one. The SDAG's images are numbered node by node in index order (the image
    numbers of node ``i`` follow those of nodes ``0 .. i-1``).

    Parameters
    ----------
    experts : list of experts
    sdag : SemanticDAG
    nodes : sequence of int
        SDAG node indices, each once.
    batch_size : int
        Most images per batch.
    wanted : bool ndarray of shape (n_sdag_images,) or None, default=None
        The images to run the experts on (None: all); a batch with none of them runs nothing.
    verbose : int, default=0
        A progress bar over the batches when > 0.
    desc : str, default="SDAG images"
        The progress bar's label.

    Yields
    ------
    numbers : int ndarray of shape (b,)
        The SDAG image number of each image run.
    node_index : int ndarray of shape (b,)
        The node index of each image run.
    outputs : list of ndarray of shape (b, n_outputs_m)
        Each expert's logits on them, as the expert returns them.
    seconds : list of float
        The time each expert's forward pass took.
    """
    first = np.concatenate([[0], np.cumsum(sdag.n_images)])
    numbers = np.concatenate([np.zeros(0, dtype=np.int64)] + [
        np.arange(first[n], first[n + 1]) for n in nodes])
    batches = prefetched(sdag.iter_batches(batch_size, nodes=[sdag.node_ids[n] for n in nodes]))
    start = 0
    for images, node_index in progress(batches, verbose=verbose, desc=desc, unit="batch"):
        batch_numbers = numbers[start:start + len(images)]
        start += len(images)
        if wanted is not None:
            keep = wanted[batch_numbers]
            if not keep.any():
                continue
            images, node_index, batch_numbers = images[keep], node_index[keep], batch_numbers[keep]
        outputs, seconds = [], []
        for expert in experts:
            began = time.perf_counter()
            outputs.append(run_expert(expert, images))
            seconds.append(time.perf_counter() - began)
        yield batch_numbers, node_index, outputs, seconds


class SharedWork:
    """The experts a labeler still has to run, claimed one at a time from a shared label store.

    An expert is claimed (its lock in the :class:`LabelStore` taken, its record re-read, its
    missing nodes cut into shards) only when its first shard is about to be dispatched, and
    released once its rows are merged into its record. Two processes labelling into one
    directory thus each run the experts the other has not started; an expert held by another
    process is passed over, then waited for and read from its record. Without a store
    (``cache_dir=False``) or a fingerprint, an expert is claimed at once and kept in memory.

    Parameters
    ----------
    experts : list of experts
        Those with nodes missing from their rows, in hub order.
    rows : dict
        Expert name -> ``(key or None, {node data hash: row})``; rows are added in place.
    node_keys : dict
        Node index -> data hash, for the nodes with images, in order.
    store : LabelStore or None
    make_shards : callable
        Node indices -> list of shards (lists of node indices).
    costs : dict, optional
        Expert name -> :class:`~skmll.hub.ExpertCost`, kept up to date by the consumer of
        :meth:`results`; an expert's cost is stored with its rows.
    """

    def __init__(self, experts, rows, node_keys, store, make_shards, costs=None):
        self.waiting = list(experts)
        self.costs = {} if costs is None else costs
        self.rows = rows
        self.node_keys = node_keys
        self.store = store
        self.make_shards = make_shards
        self._pending = {}      # name -> shards dispatched and not yet back
        self._stored = {}       # name -> whether its rows go to the store (lock held)
        self._failed = set()
        self._unlocked = set()  # names whose lock could not be taken: kept in memory
        self._claimed = False
        self._guard = threading.Lock()

    def results(self, run):
        """Yield ``(expert, result)`` for every shard run, round after round, until none waits.

        ``run(tasks)`` maps an iterable of ``(expert, shard)`` to the ordered results of
        :func:`pretest_shard`; the consumer adds each result to ``rows`` before asking for the
        next one, so that an expert's last result leads to its record being merged.
        """
        try:
            while self.waiting:
                dispatched, self._claimed = [], False
                for i, result in enumerate(run(self._claim_round(dispatched))):
                    expert = dispatched[i][0]
                    yield expert, result
                    self._shard_done(expert, failed=result[-1] is not None)
                if not self._claimed:
                    self._wait_for_others()
        finally:
            for name in list(self._stored):  # interrupted: let the other processes in
                if self._stored.pop(name):
                    self.store.release(self.rows[name][0])

    def _claim_round(self, dispatched):
        for expert in list(self.waiting):
            shards = self._claim(expert)
            for shard in shards or ():
                dispatched.append((expert, shard))
                yield expert, shard

    def _claim(self, expert):
        """The expert's shards still missing once it is claimed; None when another holds it."""
        key, known = self.rows[expert.name]
        stored = self.store is not None and key is not None and expert.name not in self._unlocked
        if stored:
            try:
                if not self.store.acquire(key, blocking=False):
                    return None
            except OSError as exc:
                self._warn_unlocked(expert, key, exc)
                stored = False
            else:
                known.update(self.store.load(key, n_heads=n_heads(expert), warn=False))
        with self._guard:
            self.waiting.remove(expert)
            self._claimed = True
        shards = self.make_shards([n for n, data in self.node_keys.items() if data not in known])
        if not shards:
            if stored:
                self.store.release(key)
            return []
        with self._guard:
            self._pending[expert.name] = len(shards)
            self._stored[expert.name] = stored
        return shards

    def _shard_done(self, expert, failed):
        with self._guard:
            if failed:
                self._failed.add(expert.name)
            self._pending[expert.name] -= 1
            if self._pending[expert.name]:
                return
            del self._pending[expert.name]
            stored = self._stored.pop(expert.name)
        if stored:
            key, known = self.rows[expert.name]
            try:
                if expert.name not in self._failed:
                    self.store.merge(key, known, expert=expert,
                                     cost=self.costs.get(expert.name))
            finally:
                self.store.release(key)

    def _wait_for_others(self):
        """Every waiting expert is held by another process: wait for the first one."""
        expert = self.waiting[0]
        key = self.rows[expert.name][0]
        try:
            self.store.acquire(key)
        except OSError as exc:
            self._warn_unlocked(expert, key, exc)
            self._unlocked.add(expert.name)
        else:
            self.store.release(key)  # the next round claims it and reads its record

    def _warn_unlocked(self, expert, key, exc):
        warnings.warn(f"could not lock {self.store.lock_path(key)} ({exc!r}): expert "
                      f"{expert.name!r} is labelled here and kept in memory only",
                      CacheWriteWarning, stacklevel=5)


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
