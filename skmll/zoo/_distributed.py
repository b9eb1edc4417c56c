"""A zoo built and searched in shards, on whatever joblib backend is active (Dask, Ray).

Shards are groups of segments. Building: each task encodes one batch of experts into a segment
file of the shared zoo folder (:meth:`ZooStore.write_segment`); the segments are listed in the
manifest in the order of the batches, whichever finished first. Searching: each task runs the
threshold algorithm on its shard alone (:func:`search_zoo` with ``segments``) and returns its
losses and the head weights of its own top ``k``; an expert among a class's ``k`` best of the
whole zoo is among the ``k`` best of its shard, so the merge selects exactly what one process
would. Tasks receive paths and plain values only; workers read the zoo from the folder, which
must be visible to them at the same path (a shared file system).

Run on Dask with ``joblib.parallel_config(backend="dask")`` inside a ``distributed.Client``
context, or on Ray with ``ray.util.joblib.register_ray()`` and ``backend="ray"``.
"""

import numpy as np
from joblib import Parallel, delayed

from ..selection import Selection, select_predictors
from ._search import search_zoo
from ._store import ZooStore


def build_zoo_sharded(zoo, batches, *, n_jobs=None):
    """Append every batch of experts as one segment, the batches encoded in parallel.

    Parameters
    ----------
    zoo : ZooStore
    batches : list of iterables of (name, rows)
        Each batch is sent to a task whole (a list, or a picklable object that yields the
        experts, e.g. one that reads them from where they are stored).
    n_jobs : int or None, default=None
        As :class:`joblib.Parallel` (None: the active backend's default).

    Examples
    --------
    >>> import tempfile
    >>> zoo = ZooStore.create(tempfile.mkdtemp(), ["a", "b"])
    >>> build_zoo_sharded(zoo, [[("x", [[0.9, 0.1], [0.2, 0.8]])],
    ...                         [("y", [[0.5, 0.5], [0.6, 0.4]])]])
    >>> zoo.names
    ['x', 'y']
    """
    root = str(zoo.root)
    entries = Parallel(n_jobs=n_jobs)(delayed(_write_batch)(root, batch) for batch in batches)
    zoo.add_segments([entry for entry in entries if entry is not None])


def _write_batch(root, batch):
    return ZooStore(root).write_segment(batch)


def search_zoo_sharded(zoo, task, *, k=2, beta=None, n_shards=None, n_jobs=None):
    """:func:`search_zoo` over shards of the zoo's segments, as parallel tasks, merged.

    Parameters
    ----------
    zoo : ZooStore
    task : TaskMatch
    k : int, default=2
    beta : float or None, default=None
    n_shards : int or None, default=None
        Groups of consecutive segments, one task each (None: one per segment).
    n_jobs : int or None, default=None
        As :class:`joblib.Parallel`.

    Returns
    -------
    Selection
        The same experts per class as :func:`search_zoo` on the whole zoo; ``heads`` holds the
        head weights of the selected experts only (None elsewhere).

    Examples
    --------
    >>> import tempfile
    >>> from skmll.selection import TaskMatch
    >>> zoo = ZooStore.create(tempfile.mkdtemp(), ["cat", "dog"])
    >>> zoo.append([("pets", [[0.9, 0.1], [0.1, 0.9]])])
    >>> zoo.append([("coin", [[0.5, 0.5], [0.5, 0.5]])])
    >>> task = TaskMatch(["cat", "dog"], np.array([0, 1]), np.ones(2), ["cat", "dog"])
    >>> search_zoo_sharded(zoo, task, k=1).used
    ['pets']
    """
    n_segments = len(zoo.segments)
    shards = [part for part in np.array_split(np.arange(n_segments),
                                              n_shards or max(n_segments, 1)) if len(part)]
    files = [[zoo.segments[i].file for i in part] for part in shards]
    results = Parallel(n_jobs=n_jobs)(
        delayed(_search_shard)(str(zoo.root), shard, task, k, beta) for shard in files)
    names = [name for part in shards for i in part for name in zoo.segments[i].names]
    if not results:
        return search_zoo(zoo, task, k=k, beta=beta)
    losses = np.concatenate([shard_losses for shard_losses, _, _ in results])
    heads, offset = [None] * len(names), 0
    for shard_losses, selected, _ in results:
        for i, weights in selected.items():
            heads[offset + i] = weights
        offset += len(shard_losses)
    picks = select_predictors(losses, k, np.inf if beta is None else float(beta))
    return Selection.from_picks(task, names, picks, losses, lambda m, j: heads[m][:, j].copy(),
                                losses=losses, heads=heads,
                                n_read=sum(n_read for _, _, n_read in results))


def _search_shard(root, files, task, k, beta):
    """One shard's losses, the head weights of its selected experts (by shard index) and the
    number of experts it read."""
    zoo = ZooStore(root)
    position = {segment.file: i for i, segment in enumerate(zoo.segments)}
    missing = [f for f in files if f not in position]
    if missing:
        raise FileNotFoundError(f"zoo {root!r} does not list segments {missing[:3]}")
    selection = search_zoo(zoo, task, k=k, beta=beta, segments=[position[f] for f in files])
    picked = {selection.names.index(name) for served in selection.experts.values()
              for name, _, _ in served}
    zoo.close()
    return selection.losses, {i: selection.heads[i] for i in picked}, selection.n_read
