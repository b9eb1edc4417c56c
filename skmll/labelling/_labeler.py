"""``ModelLabeler``: pre-tests a hub on the SDAG and stores each expert's label (Eq. 1-3)."""

import copy
import warnings

import numpy as np
import torch
from joblib import Parallel, delayed
from joblib.parallel import get_active_backend
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..hub import (ExpertCost, ExpertError, ModelHub, as_image_batch, expert_fingerprint,
                   measure_cost, n_heads, run_expert)
from ..hub._base import move_experts
from ..utils import progress
from ..utils._param_validation import (
    CACHE_DIR_CONSTRAINTS,
    HasMethods,
    Integral,
    Interval,
    Real,
    StrOptions,
    _fit_context,
)
from ._labels import build_labels, sdag_key
from ._pretest import SharedWork, assemble_statistics, node_shards, pretest_shard
from ._store import LabelStore


class LabellingError(RuntimeError):
    """One or more experts failed during labelling (the others' labels are kept and cached)."""


class StaleLabelsError(ValueError):
    """Labels were computed on another SDAG than the one they are used with."""


class ModelLabeler(TransformerMixin, BaseEstimator):
    """Pre-test every expert of a hub on a Semantic DAG and keep its model label.

    ``fit(hub)`` runs each expert over each node's representative images (batched, under
    ``torch.inference_mode`` inside the adapters), averages the outputs per node (Eq. 1) and
    mixes them up the DAG with ``delta`` (Eq. 2, leaves first). Node sums are cached on disk,
    keyed by the expert's fingerprint and each node's data hash, so refitting an unchanged hub
    runs no forward pass and a new expert or node costs only its own passes. An expert without
    a declared ``fingerprint`` has no safe content key: it is pre-tested in memory at every
    ``fit`` and nothing of it is cached.

    Each label records what it was computed from (the SDAG's node ids, edges and images, the
    expert's fingerprint, ``delta``, the skmll version): labels reused with another SDAG raise
    :class:`~skmll.exceptions.StaleLabelsError` instead of answering for the wrong nodes.

    Parameters
    ----------
    sdag : SemanticDAG
        Nodes, edges, texts and representative images.
    delta : float, default=1.0
        Eq. 2 weight of a node's own images against its successors' scores, in [0, 1]. At 1 a
        node with images of its own keeps their mean (mixing in its successors blurs it toward
        its children: shirt toward T-shirt), and a node without images still takes the mean of
        its successors; chosen on the offline world's tasks (``doc/benchmarks.md``,
        sensitivity table: 1.0 beat 0.5 and 0).
    batch_size : int, default=64
        Images per forward pass.
    images_per_shard : int, default=2048
        Size of the (expert, node shard) tasks dispatched through joblib.
    n_jobs : int or None, default=None
        joblib workers; ``joblib.parallel_config(backend="dask")`` sends tasks to a cluster.
    cache_dir : path, None or False, default=None
        Where node sums are stored (None: ``$SKMLL_CACHE_DIR`` or ``~/.cache/skmll``; False: off).
    on_error : {"raise", "warn", "skip"}, default="raise"
        What ``fit`` does when an expert fails: the other experts always finish and are cached;
        then "raise" raises :class:`LabellingError` naming the failures, "warn" warns and leaves
        the failed experts out, "skip" leaves them out silently. See ``failed_experts_``.
    device : str, torch.device or None, default=None
        Where the experts run: ``fit`` moves each expert that can move (the adapters and
        :class:`~skmll.hub.LazyExpert`) there in place, as ``nn.Module.to`` does, and warns
        naming those that cannot. None leaves every expert where it is. Labels do not depend
        on it: fp32 outputs agree across devices to float rounding (TF32 is off), and an
        expert's reduced ``precision`` is part of its fingerprint.
    verbose : int, default=1
        Progress bars when > 0.

    Attributes
    ----------
    hub_ : ModelHub
        The labelled experts (failed ones left out).
    labels_ : dict of str to ModelLabel
        Each expert's label: Eq. 2 scores (nodes x heads) and mixed mean probabilities.
    node_statistics_ : dict of str to NodeStatistics
        Eq. 1 ingredients per expert (node sums and counts), from which labels are mixed.
    delta_ : float
        The delta the labels were mixed with.
    failed_experts_ : dict of str to str
        Experts that failed, with the reason.
    n_forward_images_ : int
        Images passed through experts during the last ``fit`` (0 when all came from the cache).
    costs_ : dict of str to ExpertCost or None
        What each expert costs per image (:class:`~skmll.hub.ExpertCost`), stored with its
        label: ``ms_per_image`` is the time its labelling forward passes took per image
        (``batch_size`` images per call, image reading left out), ``gflops`` is counted once on
        two SDAG images (:func:`~skmll.hub.count_gflops`). A label stored without a cost (by
        skmll before costs were recorded) has its cost measured on one node's images when the
        SDAG holds images (:func:`~skmll.hub.measure_cost`, median of 3 calls) and stored;
        None when it cannot be (an SDAG read from a manifest): unknown, never guessed.

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> sdag = SemanticDAG(["thing", "dark", "light"], edges=[("thing", "dark"), ("thing", "light")],
    ...                    data={"dark": np.zeros((3, 8, 8), np.uint8),
    ...                          "light": np.full((3, 8, 8), 255, np.uint8)})
    >>> class Brightness:
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1) * 4
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    >>> labeler.labels_["brightness"].scores.round(1).tolist()
    [[2.0, 2.0], [4.0, 0.0], [0.0, 4.0]]
    """

    _parameter_constraints = {
        "sdag": [HasMethods(["iter_batches", "node_data_hash", "heights"])],
        "delta": [Interval(Real, 0, 1, closed="both")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "images_per_shard": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "cache_dir": CACHE_DIR_CONSTRAINTS,
        "on_error": [StrOptions({"raise", "warn", "skip"})],
        "device": [str, torch.device, None],
        "verbose": ["verbose"],
    }

    def __init__(self, sdag, *, delta=1.0, batch_size=64, images_per_shard=2048, n_jobs=None,
                 cache_dir=None, on_error="raise", device=None, verbose=1):
        self.sdag = sdag
        self.delta = delta
        self.batch_size = batch_size
        self.images_per_shard = images_per_shard
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.on_error = on_error
        self.device = device
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, hub, y=None):
        """Label every expert of ``hub`` (cached work is reused).

        Parameters
        ----------
        hub : ModelHub or iterable of experts
        y : ignored

        Returns
        -------
        self
        """
        hub = hub if isinstance(hub, ModelHub) else ModelHub(hub)
        if self.device is not None:
            move_experts(hub, self.device)
        store = LabelStore.from_cache_dir(self.cache_dir)
        with_images = np.flatnonzero(self.sdag.n_images > 0)
        node_keys = {n: self.sdag.node_data_hash(self.sdag.node_ids[n]) for n in with_images}
        rows, failures, tasks, costs = {}, {}, [], {}
        for expert in hub:
            try:
                fingerprint = expert_fingerprint(expert)
            except Exception as exc:  # an adapter could not hash its weights
                failures[expert.name] = str(exc)
                continue
            # No fingerprint, no safe key: such an expert's sums are neither loaded nor stored.
            rows[expert.name] = (fingerprint, store.load(fingerprint, n_heads=n_heads(expert))
                                 if store is not None and fingerprint else {})
            if store is not None and fingerprint:
                costs[expert.name] = store.cost(fingerprint)
            known = rows[expert.name][1]
            missing = [n for n in with_images if node_keys[n] not in known]
            tasks += [(expert, shard)
                      for shard in node_shards(self.sdag, missing, self.images_per_shard)]
        self._run_tasks(tasks, rows, failures, node_keys, store, costs)
        self._finish(hub, rows, failures)
        self._settle_costs(rows, store, costs)
        return self

    def _run_tasks(self, tasks, rows, failures, node_keys, store, costs):
        """Dispatch the forward passes; store each expert as soon as its last shard is in.

        Each expert is claimed in the store just before its first shard is dispatched; one that
        another process is labelling into the same directory is left to it and read from its
        record afterwards (:class:`SharedWork`), so concurrent runs share the work.
        """
        experts = list({id(expert): expert for expert, _ in tasks}.values())
        work = SharedWork(experts, rows, node_keys, store,
                          lambda nodes: node_shards(self.sdag, nodes, self.images_per_shard),
                          costs)
        # FLOPs are counted once, on an expert's first shard, unless its record has a cost.
        # A cost a record holds already was measured on all of the expert's images: it is kept.
        stored_costs = {name for name, cost in costs.items() if cost is not None}
        to_count = {expert.name for expert in experts if expert.name not in stored_costs}
        timing = {}   # name -> (seconds, images, gflops) of this fit's forward passes

        # Results stream in as they finish where the joblib backend can (each expert is stored
        # as soon as its shards are in); backends that cannot (Ray's) return them all at once.
        backend, _ = get_active_backend()
        return_as = "generator" if getattr(backend, "supports_return_generator", False) else "list"

        def counts_flops(expert):
            first = expert.name in to_count
            to_count.discard(expert.name)
            return first

        def run(claimed_tasks):
            return Parallel(n_jobs=self.n_jobs, return_as=return_as)(
                delayed(pretest_shard)(expert, self.sdag, shard, self.batch_size,
                                       count_flops=counts_flops(expert))
                for expert, shard in claimed_tasks)

        self.n_forward_images_ = 0
        for expert, result in progress(work.results(run), verbose=self.verbose, total=len(tasks),
                                       desc="labelling", unit="task"):
            nodes, logit_sums, probability_sums, counts, cost, error = result
            self.n_forward_images_ += int(self.sdag.n_images[nodes].sum())
            if error is not None:
                failures[expert.name] = error
            else:
                known = rows[expert.name][1]
                for i, node in enumerate(nodes):
                    known[node_keys[node]] = (logit_sums[i], probability_sums[i], int(counts[i]))
                if expert.name not in stored_costs:
                    costs[expert.name] = _add_timing(timing, expert.name, cost, int(counts.sum()))

    def _finish(self, hub, rows, failures):
        self.failed_experts_ = dict(failures)
        if failures:
            report = "; ".join(f"{name}: {why}" for name, why in failures.items())
            if self.on_error == "raise":
                raise LabellingError(f"{len(failures)} expert(s) failed during labelling "
                                     f"(the others were labelled and cached): {report}")
            if self.on_error == "warn":
                warnings.warn(f"left out of the hub after failing: {report}", stacklevel=3)
        self.hub_ = hub.subset([name for name in hub.names if name not in failures])
        self.fingerprints_ = {e.name: rows[e.name][0] for e in self.hub_}
        self.node_statistics_ = {
            e.name: assemble_statistics(self.sdag, rows[e.name][1], n_heads(e)) for e in self.hub_}
        self.sdag_key_ = sdag_key(self.sdag)
        self.update_mixing()

    def _settle_costs(self, rows, store, costs):
        """``costs_`` for the labelled experts; a cost no record or pass gave is measured now.

        That happens for labels stored before costs were recorded: the expert is run on one
        node's images (when the SDAG holds them) and the cost is stored with its label.
        """
        self.costs_ = {}
        for expert in self.hub_:
            key, known = rows[expert.name]
            cost = costs.get(expert.name)
            if cost is None and store is not None and key is not None:
                cost = store.cost(key)   # another process may have stored it meanwhile
            if cost is None:
                cost = self._measure_missing_cost(expert)
                if cost is not None and store is not None and key is not None:
                    store.merge(key, known, expert=expert, cost=cost)
            self.costs_[expert.name] = cost

    def _measure_missing_cost(self, expert):
        with_images = np.flatnonzero(self.sdag.n_images > 0)
        if not len(with_images):
            return None
        try:
            images, _ = next(self.sdag.iter_batches(
                self.batch_size, nodes=[self.sdag.node_ids[with_images[0]]]))
        except ValueError:   # an SDAG read from a manifest holds no images
            return None
        repeats = 3
        self.n_forward_images_ += len(images) * (1 + repeats)
        try:
            return measure_cost(expert, images, repeats=repeats)
        except ExpertError as exc:   # its labels are all cached: it need not run to be used
            warnings.warn(f"the cost of expert {expert.name!r} is unknown (its labels were "
                          f"stored without one, and measuring it failed: {exc})", stacklevel=4)
            return None

    def _check_same_sdag(self):
        """Raise when the node sums were computed on another SDAG than ``self.sdag``."""
        check_is_fitted(self, "node_statistics_")
        if sdag_key(self.sdag) != self.sdag_key_:
            raise StaleLabelsError(
                "the labels were computed on another SDAG than labeler.sdag (its node ids, "
                "edges or images differ, e.g. after set_params(sdag=...)): call "
                "labeler.fit(hub) to relabel (cached forward passes are reused)")

    def update_mixing(self):
        """Recompute ``labels_`` (Eq. 2) from the stored node sums with the current ``delta``.

        Cheap (no forward pass); used when ``delta`` changed after fitting.

        Raises
        ------
        StaleLabelsError
            When ``sdag`` is no longer the SDAG the node sums were computed on.
        """
        self._validate_params()
        self._check_same_sdag()
        self.labels_ = build_labels(self.sdag, self.node_statistics_, self.delta,
                                    self.fingerprints_)
        self.delta_ = self.delta
        return self

    def checked_labels(self):
        """The labels for the current parameters, checked against what they were computed from.

        Never changes the labeler: labels mixed with another ``delta`` than the current one are
        re-mixed into a new dict (no forward pass); labels of another SDAG raise.

        Returns
        -------
        dict of str to ModelLabel

        Raises
        ------
        StaleLabelsError
            When the labels were computed on another SDAG than ``sdag``.
        """
        self._validate_params()
        self._check_same_sdag()
        key = self.sdag_key_
        stale = [name for name, label in self.labels_.items()
                 if label.sdag_key != key or label.node_ids != tuple(self.sdag.node_ids)]
        if stale:
            raise StaleLabelsError(f"labels of {stale[:5]} do not belong to labeler.sdag: call "
                                   "labeler.fit(hub) to relabel")
        if all(label.delta == self.delta for label in self.labels_.values()):
            return self.labels_
        return build_labels(self.sdag, self.node_statistics_, self.delta, self.fingerprints_)

    def transform(self, X):
        """The hub's logits for images, all experts side by side.

        Parameters
        ----------
        X : array (n, H, W[, C]) or list of PIL images / paths

        Returns
        -------
        ndarray of shape (n, total heads); see ``get_feature_names_out``.
        """
        check_is_fitted(self, "labels_")
        images = as_image_batch(X)
        return np.concatenate([run_expert(e, images) for e in self.hub_], axis=1)

    def fit_transform(self, X, y=None, **fit_params):
        """Not available: ``fit`` takes a hub and ``transform`` takes images.

        Raises
        ------
        TypeError
            Always; call ``fit(hub)`` and then ``transform(images)``.
        """
        self._validate_params()   # a bad parameter is named first, as fit would
        raise TypeError("ModelLabeler is fitted on a hub of experts and transforms images, so "
                        "fit_transform(X) has no single X: call labeler.fit(hub).transform(images)")

    def get_feature_names_out(self, input_features=None):
        """``"<expert>:<head>"`` for each column of ``transform``."""
        check_is_fitted(self, "labels_")
        return np.array([f"{e.name}:{h}" for e in self.hub_ for h in range(n_heads(e))],
                        dtype=object)

    def __sklearn_clone__(self):
        # Labels are the expensive, content-addressed part: a clone keeps them (as
        # sklearn.frozen.FrozenEstimator keeps its estimator), so cross-validation and grid
        # searches over a classifier holding this labeler do not lose them. The labels carry
        # what they were computed from: a clone whose delta is changed afterwards is re-mixed by
        # whoever reads it (checked_labels); one given another SDAG raises StaleLabelsError.
        clone = type(self)(**self.get_params(deep=False))
        for attr in ("hub_", "labels_", "node_statistics_", "delta_", "failed_experts_",
                     "n_forward_images_", "fingerprints_", "sdag_key_", "costs_"):
            if hasattr(self, attr):
                setattr(clone, attr, copy.copy(getattr(self, attr)))
        return clone

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = False
        return tags


def _add_timing(timing, name, cost, n_images):
    """Fold one shard's forward time (and FLOP count) into an expert's; its cost so far."""
    seconds, images, gflops = timing.get(name, (0.0, 0, None))
    timing[name] = (seconds + cost["seconds"], images + n_images, cost.get("gflops", gflops))
    seconds, images, gflops = timing[name]
    return ExpertCost(gflops, 1000 * seconds / images) if images else None
