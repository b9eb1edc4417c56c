"""Top-k expert search over a zoo by the threshold algorithm, equal to exhaustive selection.

Sorted access reads, for each class of the task, its node's list of experts by decreasing
responsiveness (:mod:`._bound`), a growing prefix per round. Random access reads the rows of
each expert met for the first time, on the task's nodes only; their task-specific lower bounds
(:func:`~skmll.selection.chco_lower_bounds`) decide which to solve, as exhaustive selection's
screening does (:func:`~skmll.selection.solve_hub`). Every expert not yet met has, on every
class, a responsiveness at most the last one read in that class's list, so bound (*) at those
values bounds all their losses at once; reading stops when, for every class, that bound exceeds
the class's k-th smallest loss found (or ``beta``). The contenders are then solved tightly, the
rule is checked again on the tight losses, and the k best per class are kept.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..selection import Selection, select_predictors
from ..selection._chco import (_knapsack_bounds, _mean_distances, _shared_heads_bounds,
                               chco_many)
from ..selection._screen import _LOOSE_MAX_ITER, _LOOSE_TOL, TIGHT_TOL, warn_by_name
from ._bound import dequantise, loss_bounds, pair_bound

_FIRST_PREFIX = 256


def search_zoo(zoo, task, *, k=2, beta=None, segments=None, first=_FIRST_PREFIX):
    """Up to ``k`` experts per matched class of ``task``, read from ``zoo`` as needed.

    The result equals :func:`~skmll.selection.select_experts` run on every expert's stored
    label (default ``pick``, no costs): the threshold algorithm only skips experts whose bound
    shows they cannot be among a class's ``k`` smallest losses.

    Parameters
    ----------
    zoo : ZooStore
    task : TaskMatch
        Classes matched to nodes of the SDAG the zoo was built on (node ids must be among
        ``zoo.node_ids``).
    k : int, default=2
    beta : float or None, default=None
        Keep only losses at most ``beta``.
    segments : list of int or None, default=None
        Search these segments only (a shard; see :func:`search_zoo_sharded`).
    first : int, default=256
        Entries of each class's list (over all segments) read in the first round; each round
        reads twice as many.

    Returns
    -------
    Selection
        ``names`` are all the zoo's experts (or the shard's); ``losses`` is inf for those
        never solved, ``heads`` None for them; ``n_read`` counts the experts whose rows were
        read.

    Examples
    --------
    >>> import tempfile
    >>> from skmll.selection import TaskMatch
    >>> from skmll.zoo import ZooStore
    >>> zoo = ZooStore.create(tempfile.mkdtemp(), ["cat", "dog", "car"])
    >>> zoo.append([("pets", [[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]]),
    ...             ("cars", [[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])])
    >>> task = TaskMatch(["cat", "dog"], np.array([0, 1]), np.ones(2), ["cat", "dog"])
    >>> search_zoo(zoo, task, k=1).used
    ['pets']
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    chosen = list(range(len(zoo.segments))) if segments is None else list(segments)
    names = [name for s in chosen for name in zoo.segments[s].names]
    classes_rows = _node_rows(zoo, task)
    beta = np.inf if beta is None else float(beta)
    if not len(classes_rows) or not names:
        return Selection(names, {c: [] for c in task.classes},
                         np.zeros((len(names), len(classes_rows))), [None] * len(names))
    run = _ThresholdSearch([zoo.segments[s] for s in chosen], classes_rows, int(k), beta,
                           int(first))
    losses, solutions = run.search()
    picks = select_predictors(losses, k, beta)
    return Selection.from_picks(task, names, picks, losses,
                                lambda m, j: solutions[m][:, j].copy(), losses=losses,
                                heads=[solutions.get(m) for m in range(len(names))],
                                n_read=int(run.met.sum()))


def _node_rows(zoo, task):
    missing = [task.node_ids[i] for i in task.matched if task.node_ids[i] not in zoo.node_index]
    if missing:
        raise ValueError(f"the zoo has no rows for nodes {missing[:5]}: it was built on "
                         "another SDAG")
    return np.array([zoo.node_index[task.node_ids[i]] for i in task.matched], dtype=np.int64)


class _ThresholdSearch:
    """State of one search: the lists' cursors, the experts met, their bounds and losses."""

    def __init__(self, segments, node_rows, k, beta, first):
        self.segments, self.node_rows, self.k, self.beta = segments, node_rows, k, beta
        self.step = first
        starts = np.cumsum([0] + [s.n_experts for s in segments])
        self.starts = starts[:-1]
        n, C = starts[-1], len(node_rows)
        self.cursor = np.zeros((len(segments), C), dtype=np.int64)
        self.ceiling = np.ones((len(segments), C))     # d of the last entry read per list
        self.met = np.zeros(n, dtype=bool)
        self.bounds = np.full((n, C), np.inf)           # task bounds of the experts met
        self.losses = np.full((n, C), np.inf)
        self.solutions, self.problems = {}, {}
        self.tight = np.zeros(n, dtype=bool)
        self.depth = 4 * k   # contenders per class solved tightly, as solve_hub does

    def search(self):
        while True:
            while not self._stops():
                self._read_lists()
                self._solve_open()
            # experts met before whose bounds a tightened (higher) k-th loss no longer rules out
            self._solve_open()
            if self._tighten():
                return self.losses, self.solutions

    def _threshold(self):
        """Per class, the loss an expert needs to matter: min(beta, k-th smallest so far)."""
        rank = min(self.k, len(self.losses)) - 1
        kth = np.partition(self.losses, rank, axis=0)[rank]
        return np.minimum(kth, self.beta)

    def _unmet_bound(self):
        """Bound (*) for every expert not met yet (-inf when some may be unmet and C == 1)."""
        open_segments = (self.cursor < self.n_experts[:, None]).all(axis=1)
        if not open_segments.any():
            return np.full(len(self.node_rows), np.inf)
        if len(self.node_rows) == 1:
            return np.full(1, -np.inf)
        return loss_bounds(self.ceiling[open_segments].max(axis=0))

    @property
    def n_experts(self):
        return np.array([s.n_experts for s in self.segments])

    def _stops(self):
        return bool(np.all(self._unmet_bound() > self._threshold()))

    def _read_lists(self):
        """Sorted access: the next prefix of every open list; random access for new experts."""
        new = []
        total = self.n_experts.sum()
        for s, segment in enumerate(self.segments):
            # each segment's share of the round's prefix, so that a class reads about
            # ``step`` entries of the zoo's merged list, whatever the number of segments
            share = max(16, -(-self.step * segment.n_experts // total))
            for c, row in enumerate(self.node_rows):
                start = self.cursor[s, c]
                if start >= segment.n_experts:
                    continue
                ids, d = segment.lists(row, start, start + share)
                self.cursor[s, c] += len(ids)
                self.ceiling[s, c] = dequantise(d[-1])
                new.append(self.starts[s] + ids)
        self.step *= 2
        new = np.unique(np.concatenate(new)) if new else np.zeros(0, dtype=np.int64)
        new = new[~self.met[new]]
        if not len(new):
            return
        self.met[new] = True
        threshold = self._threshold()
        for s, segment in enumerate(self.segments):
            mine = new[(new >= self.starts[s]) & (new < self.starts[s] + segment.n_experts)]
            for positions, stack in segment.stacks(self.node_rows, mine - self.starts[s]):
                self.bounds[mine[positions]] = _cascaded_bounds(stack, threshold)

    def _solve_open(self):
        """Solve (loosely), in rounds, the met experts whose bound does not rule them out."""
        while True:
            met = np.flatnonzero(self.met & np.isinf(self.losses).all(axis=1))
            open_bounds = np.where(self.bounds[met] <= self._threshold(), self.bounds[met],
                                   np.inf)
            picked = _smallest(open_bounds, self.depth)
            batch = met[np.unique(picked[np.isfinite(np.take_along_axis(open_bounds, picked, 0))])]
            if not len(batch):
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)   # this pass only screens
                solved = chco_many(self._problems(batch), probabilities=True, tol=_LOOSE_TOL,
                                   max_iter=_LOOSE_MAX_ITER)
            for i, (X, loss) in zip(batch, solved):
                self.solutions[i] = X
                self.losses[i] = np.where(np.isfinite(loss), loss, np.finfo(float).max)
        self._forget()

    def _problems(self, experts):
        """CHCO inputs of ``experts``, read again where :meth:`_forget` dropped them."""
        missing = np.array([i for i in experts if i not in self.problems], dtype=np.int64)
        for s, segment in enumerate(self.segments):
            mine = missing[(missing >= self.starts[s]) &
                           (missing < self.starts[s] + segment.n_experts)]
            if len(mine):
                self.problems.update(zip(mine.tolist(), segment.problems(
                    self.node_rows, mine - self.starts[s])))
        return [self.problems[i] for i in experts]

    def _forget(self):
        """Drop the rows and solutions of experts that cannot be selected any more."""
        keep = set(_smallest(self.losses, self.depth).ravel().tolist())
        alive = (self.bounds <= self._threshold()).any(axis=1)
        for i in [i for i in self.problems if not alive[i] and i not in keep]:
            del self.problems[i]
            self.solutions.pop(i, None)

    def _tighten(self):
        """Solve the contenders tightly; True when the stopping rule still holds after."""
        contenders = np.unique(_smallest(self.losses, self.depth))
        contenders = contenders[np.isfinite(self.losses[contenders]).any(axis=1)
                                & ~self.tight[contenders]]
        if len(contenders):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                refined = chco_many(self._problems(contenders), probabilities=True,
                                    tol=TIGHT_TOL,
                                    init=[self.solutions.get(i) for i in contenders])
            warn_by_name(caught, contenders, None)
            for i, (X, loss) in zip(contenders, refined):
                self.solutions[i], self.losses[i], self.tight[i] = X, loss, True
        reopened = (self.met & np.isinf(self.losses).all(axis=1)
                    & (self.bounds <= self._threshold()).any(axis=1))
        return not reopened.any() and self._stops()


def _cascaded_bounds(stack, threshold):
    """chco_lower_bounds of experts stored alike, cheapest bound first: each costlier one only
    for the experts the cheaper ones leave open (a bound > threshold rules an expert out).

    First ``g(t_c)``, with ``t_c`` at least column c's mean distance from the others: as ``g`` is
    convex and decreasing, ``L_c >= mean_c' g(t_cc') >= g(mean_c' t_cc') >= g(t_c)`` (the
    shared-heads bound is never below it); then the shared-heads bound; then the knapsack
    bound, which sorts every column's heads.
    """
    if stack.shape[-1] < 2:
        return np.zeros(stack.shape[::2])
    bounds = pair_bound(_mean_distances(stack))
    for bound in (_shared_heads_bounds, _knapsack_bounds):
        open_ = (bounds <= threshold).any(axis=1)
        if not open_.any():
            break
        bounds[open_] = np.maximum(bounds[open_], bound(stack[open_]))
    return bounds


def _smallest(values, n):
    """Row indices of the ``n`` smallest values of every column (all rows when fewer)."""
    if len(values) <= n:
        return np.broadcast_to(np.arange(len(values))[:, None], values.shape)
    return np.argpartition(values, n - 1, axis=0)[:n]
