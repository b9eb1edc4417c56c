"""The MLL classifiers: an estimator that orchestrates match, select, cover, plan and patch.

``_BaseMLLClassifier`` holds what every MLL classifier shares; the selection is its one hook.
:class:`MLLZeroShotClassifier` selects by CHCO (:func:`~skmll.selection.select_experts`); the
paper's baselines (:mod:`skmll.baselines`) are its siblings.
"""

import copy
import unicodedata

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .hub import describe_head, n_heads, run_expert
from .hub._base import move_experts
from .hub._images import iter_image_batches
from .labelling import ModelLabeler
from .reuse import REUSE_RULES, calibrate_patch, general_model_proba, patch_probabilities
from .selection import match_task, select_experts
from .utils import progress, quoted_names
from .utils._param_validation import (
    CACHE_DIR_CONSTRAINTS,
    HasMethods,
    Integral,
    Interval,
    Real,
    StrOptions,
    _fit_context,
)

_LISTED = 10        # classes named in an error message


def _invisible(name):
    """Code points of ``name`` that print as nothing (control and format characters)."""
    return [f"U+{ord(ch):04X}" for ch in name if unicodedata.category(ch) in ("Cc", "Cf")]


def _cost_text(gflops, ms):
    """"0.0123 GFLOPs, 1.2 ms" for a cost per image (unknown parts said so)."""
    flops = "GFLOPs unknown" if gflops is None else f"{gflops:.3g} GFLOPs"
    time = "ms unknown" if ms is None else f"{ms:.3g} ms"
    return f"{flops}, {time}"


def _check_classes(classes):
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a list of class names; got {type(classes).__name__}")
    classes = list(classes)
    if not classes:
        raise ValueError("classes is empty: give at least one class name")
    bad = [c for c in classes if not isinstance(c, str)]
    if bad:
        raise TypeError(f"class names must be str; got {bad[:3]!r}")
    empty = [i for i, c in enumerate(classes) if not c.strip()]
    if empty:
        raise ValueError(f"class names at positions {empty[:_LISTED]} are empty")
    hidden = {c: _invisible(c) for c in classes if _invisible(c)}
    if hidden:
        raise ValueError("class names must not contain invisible characters; got "
                         + "; ".join(f"{c!r} ({', '.join(cp)})" for c, cp in
                                     list(hidden.items())[:_LISTED]))
    seen, duplicates = set(), []
    for c in classes:
        key = " ".join(c.lower().split())
        if key in seen:
            duplicates.append(c)
        seen.add(key)
    if duplicates:
        raise ValueError(f"duplicate class names: {quoted_names(sorted(set(duplicates)))}")
    return classes


# The parameters of CHCO's selection, shared by the classifiers that select by CHCO losses.
CHCO_CONSTRAINTS = {
    "beta": [Interval(Real, 0, None, closed="left"), None],
    "label_statistic": [StrOptions({"probability", "logit"})],
    "combination": [StrOptions({"chco", "heu"})],
}


class _BaseMLLClassifier(ClassifierMixin, BaseEstimator):
    """What every MLL classifier shares; the selection of experts is its one hook.

    ``fit`` is a recipe: match the task's classes to SDAG nodes
    (:func:`~skmll.selection.match_task`), select the experts serving each class (the hook),
    cover (classes without an expert go to the general model, are dropped or refused), plan
    (the experts ``predict`` runs, on ``device``, and what reads their outputs, by ``reuse``)
    and patch (the general model's calibration). Prediction and :meth:`explain` read what
    ``fit`` decided.

    A selection method is a subclass that lists the shared parameters and its own in its
    ``__init__``, extends ``_parameter_constraints`` with its own
    (``{**_BaseMLLClassifier._parameter_constraints, ...}``) and implements the hook::

        _select(self, task, labels) -> Selection

    given the task's :class:`~skmll.selection.TaskMatch` and every expert's label by name, in
    hub order, it returns the experts serving each class as a
    :class:`~skmll.selection.Selection`, and may set the fitted attributes of its own method.

    Parameters and attributes are those of :class:`MLLZeroShotClassifier`, less the
    selection's.
    """

    _parameter_constraints = {
        "classes": ["array-like"],
        "labeler": [ModelLabeler],
        "k": [Interval(Integral, 1, None, closed="left")],
        "text_encoder": [callable, None],
        "general_model": [HasMethods(["predict_proba"]), None],
        "min_similarity": [Interval(Real, -1, 1, closed="both")],
        "name_bonus": [Interval(Real, 0, None, closed="left")],
        "nodes": ["array-like", None],
        "class_template": [str],
        "reuse": [StrOptions(REUSE_RULES.keys())],   # a live view: rules added later count
        "on_uncovered": [StrOptions({"raise", "drop"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache_dir": CACHE_DIR_CONSTRAINTS,
        "device": [str, torch.device, None],
        "verbose": ["verbose"],
        "patch_calibration": [Interval(Real, 0, 1, closed="left"), None],
    }

    def __init__(self, classes, labeler, *, k=2, text_encoder=None, general_model=None,
                 min_similarity=0.0, name_bonus=0.25, nodes=None, class_template="Name: {}",
                 reuse="profile", on_uncovered="raise", batch_size=256, cache_dir=None,
                 device=None, verbose=0, patch_calibration=0.01):
        self.classes = classes
        self.labeler = labeler
        self.k = k
        self.text_encoder = text_encoder
        self.general_model = general_model
        self.min_similarity = min_similarity
        self.name_bonus = name_bonus
        self.nodes = nodes
        self.class_template = class_template
        self.reuse = reuse
        self.on_uncovered = on_uncovered
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.verbose = verbose
        self.patch_calibration = patch_calibration

    def _select(self, task, labels):
        """The experts serving each class of ``task``: a :class:`~skmll.selection.Selection`."""
        raise NotImplementedError

    # --- fit --------------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Match classes to nodes, select experts, cover, plan and patch. Data is ignored.

        The labeler is read, never changed: labels mixed with another ``delta`` than the
        labeler's current one are re-mixed here, labels of another SDAG raise
        :class:`~skmll.exceptions.StaleLabelsError`, and with ``device`` set, copies of the
        selected experts move there, not the labeler's.

        Parameters
        ----------
        X, y : ignored
            Present for scikit-learn compatibility (pipelines, cross-validation, grid search).

        Returns
        -------
        self
        """
        classes = _check_classes(self.classes)
        check_is_fitted(self.labeler, "labels_",
                        msg="labeler is not fitted: call labeler.fit(hub) before fitting the "
                            "classifier")
        labels = self.labeler.checked_labels()
        task = match_task(classes, self.labeler.sdag, nodes=self.nodes,
                          text_encoder=self.text_encoder, class_template=self.class_template,
                          name_bonus=self.name_bonus, min_similarity=self.min_similarity,
                          cache_dir=self.cache_dir, verbose=self.verbose)
        self.matched_nodes_ = task.matched_nodes
        self.unmatched_reasons_ = task.unmatched_reasons
        self.expert_names_ = list(self.labeler.hub_.names)
        selection = self._select(task, {name: labels[name] for name in self.expert_names_})
        self.experts_ = selection.experts
        self.over_budget_reasons_ = selection.over_budget_reasons
        self._set_coverage(classes, [bool(selection.experts[c]) for c in classes])
        self._plan(selection.used, labels)
        self._fit_patch(self.labeler.sdag)
        return self

    def _set_coverage(self, classes, served):
        covered = [c for c, s in zip(classes, served) if s]
        uncovered = [c for c, s in zip(classes, served) if not s]
        if uncovered and self.general_model is None:
            if self.on_uncovered == "raise":
                nested = [c for c in uncovered if c in self.unmatched_reasons_]
                no_node = [c for c in uncovered
                           if self.matched_nodes_[c] is None and c not in nested]
                no_expert = [c for c in uncovered if self.matched_nodes_[c] is not None
                             and c not in self.over_budget_reasons_]
                reasons = [f"no matching SDAG node: {quoted_names(no_node)}" if no_node else "",
                           "; ".join(f"{c!r} not matched: {self.unmatched_reasons_[c]}"
                                     for c in nested[:_LISTED]),
                           f"no expert passes the selection: {quoted_names(no_expert)}"
                           if no_expert else "",
                           "; ".join(f"{c!r}: {why}" for c, why in
                                     list(self.over_budget_reasons_.items())[:_LISTED])]
                raise ValueError(
                    f"the hub cannot serve {len(uncovered)} of {len(classes)} classes and no "
                    "general_model is set (" + "; ".join(r for r in reasons if r)
                    + "). Pass general_model=..., or on_uncovered='drop' to leave them out.")
            self.dropped_classes_ = uncovered
            classes = covered
            uncovered = []
        else:
            self.dropped_classes_ = []
        if not covered and self.general_model is None:
            raise ValueError("no class is covered by the hub and no general_model is set")
        # Experts and the general model compute columns in the order the classes were given;
        # predict_proba hands them out in sorted order, as classes_ says.
        self._task_classes = list(classes)
        self._sorted_columns = np.array(sorted(range(len(classes)), key=classes.__getitem__))
        self.classes_ = np.array([classes[i] for i in self._sorted_columns], dtype=object)
        self.covered_classes_ = covered
        self.uncovered_classes_ = uncovered
        self.coverage_ = len(covered) / len(served)   # of all the classes asked for
        self._covered_mask = np.isin(np.array(classes, dtype=object), covered)

    def _plan(self, used, labels):
        """What ``predict`` runs: the experts in ``used`` (on ``device``), each with what reads
        its softmax output by the ``reuse`` rule; and their cost per image."""
        self.n_models_used_ = len(used)
        rows = [self.expert_names_.index(name) for name in used]
        self.cost_per_image_ = {}
        for unit in ("gflops", "ms"):
            values = self._expert_costs(unit)[rows]
            self.cost_per_image_[unit] = None if np.isnan(values).any() else float(values.sum())
        nodes = [self.labeler.sdag.node_index[self.matched_nodes_[c][0]]
                 for c in self.covered_classes_]
        self.profiles_ = {name: labels[name].probabilities[nodes].copy() for name in used}
        reader = REUSE_RULES[self.reuse].reader
        self._serving = [(expert, reader(self.profiles_[name], self._head_weights(name, expert)))
                         for name, expert in zip(used, self._serving_experts(used))]

    def _head_weights(self, name, expert):
        """The (heads x covered classes) head weights of an expert, zero where it serves not."""
        weights = np.zeros((n_heads(expert), len(self.covered_classes_)))
        for j, c in enumerate(self.covered_classes_):
            for served_by, _, head_weights in self.experts_[c]:
                if served_by == name:
                    weights[:, j] = head_weights
        return weights

    def _serving_experts(self, used):
        """The labeler's experts named in ``used``; with ``device`` set, copies moved there, so
        that the labeler, and every classifier sharing it, keeps its experts where they are."""
        experts = [self.labeler.hub_[name] for name in used]
        if self.device is None:
            return experts
        return move_experts([copy.deepcopy(e) if callable(getattr(e, "to", None)) else e
                             for e in experts], self.device)

    def _expert_costs(self, unit):
        """Each expert's cost per image in ``unit`` (NaN where unknown), from the labels."""
        # A labeler fitted by an earlier skmll (unpickled) or assembled by hand has no costs:
        # they are unknown, never zero.
        costs = getattr(self.labeler, "costs_", {})
        values = [costs[name].value(unit) if costs.get(name) is not None else None
                  for name in self.expert_names_]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    def _fit_patch(self, sdag):
        """The bias on the general model's uncovered classes, from the SDAG's reference images
        (only with both covered and uncovered classes, a general model and a calibration)."""
        self.patch_bias_ = 0.0
        covered = self._covered_mask
        if self.patch_calibration is None or covered.all() or not covered.any():
            return
        nodes = [self.matched_nodes_[c][0] if self.matched_nodes_[c] else None
                 for c in self._task_classes]
        self.patch_bias_ = calibrate_patch(
            self.general_model, sdag, self._task_classes, nodes, covered,
            max_covered_loss=self.patch_calibration, cache_dir=self.cache_dir,
            references=self.labeler.cache_dir)   # a label directory keeps reference images

    # --- predict: reuse ---------------------------------------------------------------------

    def _expert_proba(self, images):
        outputs = [softmax(run_expert(expert, images).astype(np.float64), axis=1)
                   for expert, _ in self._serving]
        return REUSE_RULES[self.reuse].combine(outputs, [reader for _, reader in self._serving])

    def predict_proba(self, X):
        """Class probabilities; columns follow ``classes_`` and rows sum to 1.

        Parameters
        ----------
        X : ndarray (n, H, W) or (n, H, W, C), uint8 or float in [0, 1]; or a list of PIL
            images or image paths.

        Returns
        -------
        ndarray of shape (n, n_classes)
        """
        check_is_fitted(self, "classes_")
        batches = iter_image_batches(X, self.batch_size)
        chunks = [self._proba_chunk(images)
                  for images in progress(batches, verbose=self.verbose, desc="predicting",
                                         unit="batch")]
        return np.concatenate(chunks)[:, self._sorted_columns]

    def _proba_chunk(self, images):
        """Probabilities with columns in the given order of the classes (``_task_classes``)."""
        covered = self._covered_mask
        classes = self._task_classes
        if covered.all():
            return self._expert_proba(images)
        general = general_model_proba(self.general_model, images, classes)
        if not covered.any():
            return general
        return patch_probabilities(self._expert_proba(images), general, covered,
                                   bias=self.patch_bias_)

    def predict(self, X):
        """The most probable class name for each image."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def explain(self):
        """A readable account of what ``fit`` decided: matches, experts, heads, coverage."""
        check_is_fitted(self, "classes_")
        how = REUSE_RULES[self.reuse].description
        total = _cost_text(self.cost_per_image_["gflops"], self.cost_per_image_["ms"])
        lines = [f"coverage {self.coverage_:.0%}, {self.n_models_used_} expert(s) used "
                 f"({total} per image); reuse: {how}"]
        for c in self.matched_nodes_:   # every class asked for, in order
            match = self.matched_nodes_.get(c)
            where = (f"{match[0]} (similarity {match[1]:.2f})" if match else
                     f"no node ({self.unmatched_reasons_[c]})" if c in self.unmatched_reasons_
                     else "no node")
            lines.append(f"{c!r} -> {where}")
            for name, loss, weights in self.experts_.get(c, []):
                # "jersey, T-shirt (head 610): 1.00" where the expert names its heads (read
                # from its specification: no weights load), "h610:1.00" where it is anonymous
                expert = self.labeler.hub_[name]
                named = getattr(expert, "head_names", None) is not None
                top = [h for h in np.argsort(weights)[::-1][:3] if weights[h] > 1e-3]
                heads = ("; " if named else ", ").join(
                    f"{describe_head(expert, h)}{': ' if named else ':'}{weights[h]:.2f}"
                    for h in top)
                cost = getattr(self.labeler, "costs_", {}).get(name)
                lines.append(f"    {name}: loss {loss:.3f}, {int((weights > 1e-3).sum())} "
                             f"head(s) [{heads}], " + (_cost_text(cost.gflops, cost.ms_per_image)
                                                       if cost else "cost unknown"))
            if c in self.over_budget_reasons_:
                lines.append(f"    over budget: {self.over_budget_reasons_[c]}")
            if c in self.uncovered_classes_:
                lines.append("    served by the general model")
            elif c in self.dropped_classes_:
                lines.append("    dropped (on_uncovered='drop')")
        return "\n".join(lines)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = False     # images, never tables (n, n_features)
        tags.input_tags.three_d_array = True    # images (n, H, W[, C])
        tags.target_tags.required = False       # zero-shot: fit ignores y
        return tags


class MLLZeroShotClassifier(_BaseMLLClassifier):
    """Zero-shot image classifier that selects and reuses experts through their model labels.

    ``fit`` needs no data: it matches the class names to SDAG nodes by text embeddings (mutual
    best match, Algorithm 1 line 4), runs CHCO on every expert's label (Eq. 4-11, all experts as
    one batched problem), and keeps per class up to ``k`` predictors whose loss is at most
    ``beta``. ``predict_proba`` runs each selected expert once per batch and combines their
    outputs, by their label profiles (default) or with the paper's entropy-weighted head
    combinations (Eq. 12-13); classes no expert serves go to ``general_model``.

    Parameters
    ----------
    classes : list of str
        The task's class names.
    labeler : ModelLabeler
        A fitted labeler (its hub and labels are used; cloning keeps them).
    k : int, default=2
        Reuse budget: predictors per class.
    beta : float or None, default=None
        Keep predictors with CHCO loss at most ``beta``; None keeps any finite loss.
    max_cost : float or None, default=None
        A budget per image, in ``cost_unit``: the summed cost of the distinct experts the
        fitted classifier runs (each runs once per image, whatever the classes it serves)
        never exceeds it. Costs come from the labels (``labeler.costs_``), not from images, so
        a grid search over ``max_cost`` runs no expert at ``fit``. A class that no expert can
        serve within the budget is uncovered (general model, or ``on_uncovered``), with the
        reason in ``over_budget_reasons_``. See :func:`~skmll.selection.select_within_budget`.
    cost_unit : {"gflops", "ms"}, default="gflops"
        What ``max_cost`` and ``cost_tolerance`` weigh: FLOPs per image (counted, the same on
        every machine) or milliseconds per image (measured when labelling, on that machine).
    cost_tolerance : float, default=0.0
        Reuse-loss slack: among a class's candidates whose CHCO loss is within this of the
        best, the one whose added cost is smallest is taken (an expert already selected for
        another class adds nothing). With ``max_cost=None`` and 0, selection is the paper's
        top k by loss, exactly.
    text_encoder : callable or None, default=None
        ``list[str] -> (n, d)`` array; None is all-MiniLM-L6-v2 (offline, see
        :class:`~skmll.selection.SentenceEncoder`). Node embeddings are cached on disk when the
        encoder has a ``fingerprint``.
    general_model : object or None, default=None
        ``predict_proba(images, class_names)`` over all classes (CLIP, ConSE, ...), used for
        uncovered classes (the paper's patch rule).
    min_similarity : float, default=0.0
        Class-node pairs with lower cosine similarity are left unmatched.
    name_bonus : float, default=0.25
        Added to the similarity of a node that has the class name among its names (WordNet
        lemmas, compared in dictionary forms: "Boots" names boot.n.01); a class naming a single
        node takes it, and the other classes are matched by mutual best match on the nodes
        left (see :func:`~skmll.selection.match_classes`). 0 is the paper's literal matching:
        one round of mutual best match on cosine similarity.
    nodes : list of (str or None) or None, default=None
        SDAG node ids aligned with ``classes`` to bypass text matching (None entries are matched
        by text).
    class_template : str, default="Name: {}"
        How a class name is written before embedding (node texts read "Name: ...").
    label_statistic : {"probability", "logit"}, default="probability"
        What CHCO's head-class matrix P is made of. "logit" is the paper's Eq. 4 (softmax of
        mixed mean logits); "probability" uses the mixed mean of per-image softmax outputs: the
        expected output of a head on the node's images, which penalises experts that are
        confident on single images but inconsistent across a node (chosen on the offline
        world: ``doc/benchmarks.md``, sensitivity table).
    combination : {"chco", "heu"}, default="chco"
        "heu" is the paper's ablation: one head per class.
    reuse : str, default="profile"
        How the selected experts' outputs become class probabilities: a name in
        :data:`skmll.reuse.REUSE_RULES`, "profile" or "entropy". "entropy" is the paper's
        Eq. 12-13: each class's head combinations, weighted by output entropy. "profile" reads
        every selected expert's whole softmax output through its label (the mean output on each
        task class's node) and multiplies the experts' likelihoods (naive Bayes), which
        calibrates experts against each other: see :func:`skmll.reuse.profile_posterior`.
    on_uncovered : {"raise", "drop"}, default="raise"
        Without a general model, uncovered classes raise at ``fit`` (naming them) or are dropped
        from ``classes_``.
    batch_size : int, default=256
        Images per chunk in ``predict_proba`` (bounds memory; each expert runs once per chunk).
        Listed images (files, PIL images) are decoded chunk by chunk, the next chunk in a
        background thread while the experts run on the current one.
    cache_dir : path, None or False, default=None
        Where node embeddings are cached (None: the default folder; False: off).
    device : str, torch.device or None, default=None
        Where the selected experts run: ``fit`` moves a copy of each of them that can move (the
        adapters and :class:`~skmll.hub.LazyExpert`) there, and warns naming those that cannot;
        the labeler's experts stay where they are (clones of the classifier share them), and
        their labels are untouched. None runs every expert where it is. The general model is
        not moved.
    verbose : int, default=0
        Progress bars (node embeddings, prediction batches) when > 0.
    patch_calibration : float in [0, 1) or None, default=0.01
        How far the general model is trusted with the uncovered classes. At ``fit`` it is run
        on the SDAG's reference images of the covered classes, and its uncovered classes are
        down-weighted (a prior shift) until at most this fraction of those images would go to
        an uncovered class (:func:`skmll.reuse.fit_patch_calibration`; default chosen on
        development tasks: ``benchmarks/bench_patch.py``). None is the paper's rule, which
        takes the general model's share as it is.

    Attributes
    ----------
    classes_ : ndarray of str
        Class names, sorted (scikit-learn's contract: its scorers read ``predict_proba``
        columns in sorted-label order); the order of ``predict_proba`` columns. The order the
        classes were given in is kept in ``matched_nodes_``, ``covered_classes_`` and
        :meth:`explain`.
    matched_nodes_ : dict of str to (str, float) or None
        The SDAG node and cosine similarity each class matched (None: unmatched).
    unmatched_reasons_ : dict of str to str
        Classes left unmatched although text matching found them a node, with the reason: a
        node without images of its own that lies above another class's node (its label is
        made of its successors' images, the other class's among them).
    experts_ : dict of str to list of (str, float, ndarray)
        Per class, the serving experts as (name, CHCO loss, head weights x_c^m).
    covered_classes_, uncovered_classes_ : list of str
        Classes served by experts, and by the general model, in the order given.
    dropped_classes_ : list of str
        Classes left out of ``classes_`` by ``on_uncovered="drop"``.
    coverage_ : float
        Fraction of ``classes`` served by experts (Cvr).
    reuse_losses_ : ndarray of shape (n_experts, n_covered)
        CHCO loss of every expert for every covered class: inf when unusable, or when the
        expert's lower bounds (:func:`~skmll.selection.chco_lower_bounds`) showed that it
        cannot enter any class's top k, so that it was never solved (hubs of more than 4k
        experts).
    expert_names_ : list of str
        Row labels of ``reuse_losses_``.
    n_models_used_ : int
        Distinct experts that ``predict`` runs.
    cost_per_image_ : dict
        ``{"gflops": ..., "ms": ...}``: the summed cost per image of the distinct experts that
        ``predict`` runs (the general model's is not included); None where some of those
        experts' cost is unknown.
    over_budget_reasons_ : dict of str to str
        Classes that some expert could serve but none within ``max_cost``, with the reason.
    profiles_ : dict of str to ndarray (n_covered, n_heads)
        Per serving expert, its label's mean softmax output on each covered class's node (what
        ``reuse="profile"`` compares the expert's outputs with).
    patch_bias_ : float
        The log-factor (<= 0) applied to the general model's uncovered-class probabilities;
        0 when the paper's rule applies unchanged (no uncovered class, no general model,
        ``patch_calibration=None``, or a general model that needs no correction).

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG, MLLZeroShotClassifier
    >>> dark, light = np.zeros((3, 8, 8), np.uint8), np.full((3, 8, 8), 255, np.uint8)
    >>> sdag = SemanticDAG(["shade", "night", "day"], edges=[("shade", "night"), ("shade", "day")],
    ...                    texts={"night": "Name: night, darkness", "day": "Name: day, daylight"},
    ...                    data={"night": dark, "day": light})
    >>> class Brightness:
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1) * 4
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    >>> clf = MLLZeroShotClassifier(["daylight", "darkness"], labeler, cache_dir=False).fit()
    >>> clf.predict(np.stack([light[0], dark[0]])).tolist()
    ['daylight', 'darkness']
    """

    _parameter_constraints = {
        **_BaseMLLClassifier._parameter_constraints,
        **CHCO_CONSTRAINTS,
        "max_cost": [Interval(Real, 0, None, closed="left"), None],
        "cost_unit": [StrOptions({"gflops", "ms"})],
        "cost_tolerance": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, classes, labeler, *, k=2, beta=None, max_cost=None, cost_unit="gflops",
                 cost_tolerance=0.0, text_encoder=None,
                 general_model=None, min_similarity=0.0, name_bonus=0.25, nodes=None,
                 class_template="Name: {}", label_statistic="probability", combination="chco",
                 reuse="profile", on_uncovered="raise", batch_size=256, cache_dir=None,
                 device=None, verbose=0, patch_calibration=0.01):
        super().__init__(classes, labeler, k=k, text_encoder=text_encoder,
                         general_model=general_model, min_similarity=min_similarity,
                         name_bonus=name_bonus, nodes=nodes, class_template=class_template,
                         reuse=reuse, on_uncovered=on_uncovered, batch_size=batch_size,
                         cache_dir=cache_dir, device=device, verbose=verbose,
                         patch_calibration=patch_calibration)
        self.beta = beta
        self.max_cost = max_cost
        self.cost_unit = cost_unit
        self.cost_tolerance = cost_tolerance
        self.label_statistic = label_statistic
        self.combination = combination

    def _select(self, task, labels):
        """CHCO over every expert, then up to k predictors per matched class (within the
        budget, the cheapest near-best ones, when costs are weighed)."""
        selection = select_experts(
            task, labels, self._expert_costs(self.cost_unit), k=self.k, beta=self.beta,
            max_cost=self.max_cost, tolerance=self.cost_tolerance, unit=self.cost_unit,
            statistic=self.label_statistic, combination=self.combination)
        self.reuse_losses_ = selection.losses
        return selection
