"""``MLLZeroShotClassifier``: selection (matching, CHCO, top-k) and reuse for a task of class names."""

import string
import unicodedata
import warnings

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from .hub import describe_head, run_expert
from .hub._base import move_experts
from .hub._images import iter_image_batches
from .labelling import ModelLabeler
from .reuse._ensemble import ensemble_scores
from .reuse._patch import (
    calibrate_patch,
    general_model_proba,
    normalise_rows,
    patch_probabilities,
)
from .reuse._profile import log_profiles, profile_posterior
from .selection._chco import chco_lower_bounds, chco_many, head_class_probabilities, heu
from .selection._matching import classes_above_others, exact_name_matches, match_classes
from .selection._select import select_predictors, select_within_budget
from .selection._text import default_text_encoder, embed_texts
from .utils import progress
from .utils._param_validation import (
    CACHE_DIR_CONSTRAINTS,
    HasMethods,
    Integral,
    Interval,
    Real,
    StrOptions,
    _fit_context,
)


_TIGHT_TOL = 1e-6   # relative duality gap of the reuse losses that decide the selection
_LISTED = 10        # names quoted in an error message before "... and N more"


def _quoted(names):
    """At most ``_LISTED`` names for a message, then how many more there are."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" ... and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


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
        raise ValueError(f"duplicate class names: {_quoted(sorted(set(duplicates)))}")
    return classes


def _check_template(template):
    """``class_template`` must have exactly one ``{}`` field, where the class name goes."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        ok = len(fields) == 1 and fields[0] in ("", "0")
        if ok:
            template.format("x")
    except (ValueError, IndexError, KeyError):
        ok = False
    if not ok:
        raise ValueError("class_template must hold exactly one '{}' where the class name goes "
                         f"(other braces doubled: '{{{{'); got {template!r}")


def _check_nodes(nodes, classes, sdag):
    """``nodes`` aligned with ``classes``: SDAG node ids or None, no node given twice."""
    if isinstance(nodes, str) or not hasattr(nodes, "__len__") or len(nodes) != len(classes):
        raise ValueError(f"nodes must be a list aligned with classes ({len(classes)} entries); "
                         f"got {nodes!r:.200}")
    given = [n for n in nodes if n is not None]
    unknown = [n for n in given if not isinstance(n, str) or n not in sdag.node_index]
    if unknown:
        raise ValueError(f"nodes not in the SDAG: {_quoted(unknown)}")
    twice = sorted({n for n in given if given.count(n) > 1})
    if twice:
        raise ValueError("two classes cannot share one SDAG node (their predictors would be "
                         f"identical); given more than once: {_quoted(twice)}")


class MLLZeroShotClassifier(ClassifierMixin, BaseEstimator):
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
        uncovered classes (DESIGN decision 6).
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
    reuse : {"profile", "entropy"}, default="profile"
        How the selected experts' outputs become class probabilities. "entropy" is the paper's
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
        Where the selected experts run: ``fit`` moves each of them that can move (the adapters
        and :class:`~skmll.hub.LazyExpert`) there in place, as ``nn.Module.to`` does, and warns
        naming those that cannot; their labels are untouched. None leaves every expert where
        it is. The general model is not moved.
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
        "classes": ["array-like"],
        "labeler": [ModelLabeler],
        "k": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left"), None],
        "max_cost": [Interval(Real, 0, None, closed="left"), None],
        "cost_unit": [StrOptions({"gflops", "ms"})],
        "cost_tolerance": [Interval(Real, 0, None, closed="left")],
        "text_encoder": [callable, None],
        "general_model": [HasMethods(["predict_proba"]), None],
        "min_similarity": [Interval(Real, -1, 1, closed="both")],
        "name_bonus": [Interval(Real, 0, None, closed="left")],
        "nodes": ["array-like", None],
        "class_template": [str],
        "label_statistic": [StrOptions({"probability", "logit"})],
        "combination": [StrOptions({"chco", "heu"})],
        "reuse": [StrOptions({"profile", "entropy"})],
        "on_uncovered": [StrOptions({"raise", "drop"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache_dir": CACHE_DIR_CONSTRAINTS,
        "device": [str, torch.device, None],
        "verbose": ["verbose"],
        "patch_calibration": [Interval(Real, 0, 1, closed="left"), None],
    }

    def __init__(self, classes, labeler, *, k=2, beta=None, max_cost=None, cost_unit="gflops",
                 cost_tolerance=0.0, text_encoder=None,
                 general_model=None, min_similarity=0.0, name_bonus=0.25, nodes=None,
                 class_template="Name: {}", label_statistic="probability", combination="chco",
                 reuse="profile", on_uncovered="raise", batch_size=256, cache_dir=None,
                 device=None, verbose=0, patch_calibration=0.01):
        self.classes = classes
        self.labeler = labeler
        self.k = k
        self.beta = beta
        self.max_cost = max_cost
        self.cost_unit = cost_unit
        self.cost_tolerance = cost_tolerance
        self.text_encoder = text_encoder
        self.general_model = general_model
        self.min_similarity = min_similarity
        self.name_bonus = name_bonus
        self.nodes = nodes
        self.class_template = class_template
        self.label_statistic = label_statistic
        self.combination = combination
        self.reuse = reuse
        self.on_uncovered = on_uncovered
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.verbose = verbose
        self.patch_calibration = patch_calibration

    # --- fit: selection ---------------------------------------------------------------------

    def _check_params_vs_input(self):
        """Checks that need more than one parameter: names, nodes, template, a fitted labeler."""
        classes = _check_classes(self.classes)
        _check_template(self.class_template)
        check_is_fitted(self.labeler, "labels_",
                        msg="labeler is not fitted: call labeler.fit(hub) before fitting the "
                            "classifier")
        if self.nodes is not None:
            _check_nodes(self.nodes, classes, self.labeler.sdag)
        return classes

    def _match(self, classes, sdag):
        """Node index per class (-1 unmatched) and the cosine similarity of each matched pair.

        Classes without a node in ``nodes`` are matched by
        :func:`~skmll.selection.match_classes` on the cosine similarity of their names as
        written and of the node texts, and on their names in dictionary form ("Ankle-Boots"
        names a node "ankle boot"); ``name_bonus=0`` keeps the paper's single round of mutual
        best match on the cosine similarity alone.
        """
        nodes = np.full(len(classes), -1)
        similarity = np.full(len(classes), np.nan)
        given = self.nodes if self.nodes is not None else [None] * len(classes)
        for i, node in enumerate(given):
            if node is not None:
                if node not in sdag.node_index:
                    raise ValueError(f"node {node!r} given for class {classes[i]!r} is not in "
                                     "the SDAG")
                nodes[i], similarity[i] = sdag.node_index[node], 1.0
        by_text = [i for i, node in enumerate(given) if node is None]
        if by_text:
            encoder = self.text_encoder if self.text_encoder is not None else default_text_encoder()
            node_vectors = embed_texts(encoder, sdag.texts, cache_dir=self.cache_dir,
                                       verbose=self.verbose)
            names = [classes[i] for i in by_text]
            class_vectors = embed_texts(
                encoder, [self.class_template.format(name) for name in names], cache_dir=False)
            if class_vectors.shape[1] != node_vectors.shape[1]:
                raise ValueError("text encoder gave class and node embeddings of different "
                                 "sizes")
            labelled = np.asarray(sdag.has_data_below, dtype=bool).copy()
            labelled[nodes[nodes >= 0]] = False  # a node fixed by `nodes` is taken
            cosine = class_vectors @ node_vectors.T
            hits = None if self.name_bonus == 0 else exact_name_matches(
                names, sdag.texts, candidates=labelled)
            matched = match_classes(cosine, hits, candidates=labelled,
                                    name_bonus=self.name_bonus,
                                    min_similarity=self.min_similarity)
            nodes[by_text] = matched
            similarity[by_text] = np.where(
                matched >= 0, cosine[np.arange(len(by_text)), np.maximum(matched, 0)], np.nan)
        return nodes, similarity

    def _reuse_problems(self, labels, node_rows):
        """Each expert's (heads x classes) head-class probabilities P for the matched nodes,
        made once here: bounds, screening and the tight solve all read them."""
        problems = []
        for label in labels:
            if self.label_statistic == "probability":
                P = np.asarray(label.probabilities[node_rows], dtype=np.float64).T
                problems.append(P / P.sum(axis=0))   # mixed means of softmaxes: sums are 1
            else:
                problems.append(head_class_probabilities(label.scores[node_rows].T))   # Eq. 4
        return problems

    def _solve(self, matrices):
        if self.combination == "heu":
            return [heu(P, probabilities=True) for P in matrices]
        # Contenders per class: a margin over the k that are kept; every expert when costs
        # decide, since a cheap expert far down the ranking may be the one selected.
        depth = len(matrices) if self._weighs_costs() else 4 * int(self.k)
        solutions = self._screen(matrices, depth)
        # Solve tightly, from where the loose pass stopped, the experts that can enter some
        # class's top k: losses certified within 1e-6 (relative) of the optimum, far finer than
        # the differences that decide a selection.
        losses = np.stack([loss for _, loss in solutions])
        contenders = np.unique(np.argsort(losses, axis=0, kind="stable")[:depth].ravel())
        contenders = contenders[[solutions[i][0] is not None for i in contenders]]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            refined = chco_many([matrices[i] for i in contenders], probabilities=True,
                                tol=_TIGHT_TOL, init=[solutions[i][0] for i in contenders])
        self._warn_by_name(caught, contenders)
        for i, solution in zip(contenders, refined):
            solutions[i] = solution
        return solutions

    def _warn_by_name(self, caught, experts):
        """Re-issue warnings of a solve over ``experts``, naming experts instead of indices."""
        for record in caught:
            stalled = getattr(record.message, "models", None)
            if stalled is None:
                warnings.warn_explicit(record.message, record.category, record.filename,
                                       record.lineno)
                continue
            names = [self.expert_names_[experts[i]] for i in stalled]
            warnings.warn(f"CHCO did not converge tightly (tol {_TIGHT_TOL}) for experts "
                          f"{names}: their reuse losses may be slightly above the optimum",
                          ConvergenceWarning, stacklevel=5)

    # Rule out experts by their loss bounds without solving (Random^MLL needs every loss).
    _prune = True

    def _screen(self, matrices, depth):
        """Loose CHCO solutions (objective within ~1e-4 of the optimum), in rounds.

        Each round solves, per class, the ``depth`` unsolved experts with the smallest lower
        bounds (:func:`~skmll.selection.chco_lower_bounds`) that could still beat the class's
        current k-th smallest loss; an expert whose bound exceeds that loss for every class
        can never be selected and is not solved at all: its solution is ``(None, inf)``.
        """
        with warnings.catch_warnings():
            # The pass only screens: a contender that it leaves unconverged is solved again.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self._screen_rounds(matrices, depth)

    def _screen_rounds(self, matrices, depth):
        n_experts = len(matrices)
        if not self._prune or n_experts <= depth:
            return chco_many(matrices, probabilities=True, tol=1e-4, max_iter=300)
        bounds = chco_lower_bounds(matrices, probabilities=True)
        solutions = [(None, np.full(bounds.shape[1], np.inf))] * n_experts
        losses = np.full(bounds.shape, np.inf)
        threshold = np.full(bounds.shape[1], np.inf)
        while True:
            open_bounds = np.where(np.isinf(losses) & (bounds <= threshold), bounds, np.inf)
            picked = np.argsort(open_bounds, axis=0, kind="stable")[:depth]
            batch = np.unique(picked[np.isfinite(np.take_along_axis(open_bounds, picked, 0))])
            if not len(batch):
                return solutions
            for i, solution in zip(batch, chco_many([matrices[i] for i in batch], tol=1e-4,
                                                    probabilities=True, max_iter=300)):
                solutions[i] = solution
                losses[i] = np.where(np.isfinite(solution[1]), solution[1], np.finfo(float).max)
            threshold = np.sort(losses, axis=0)[min(int(self.k), n_experts) - 1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Match classes to nodes, combine heads with CHCO, select experts. Data is ignored.

        The labeler is read, never changed: labels mixed with another ``delta`` than the
        labeler's current one are re-mixed here, and labels of another SDAG raise
        :class:`~skmll.exceptions.StaleLabelsError`.

        Parameters
        ----------
        X, y : ignored
            Present for scikit-learn compatibility (pipelines, cross-validation, grid search).

        Returns
        -------
        self
        """
        classes = self._check_params_vs_input()
        labeler = self.labeler
        labels_by_expert = labeler.checked_labels()
        sdag = labeler.sdag
        node_of_class, similarity = self._match(classes, sdag)
        self.unmatched_reasons_ = self._unmatch_nested(classes, node_of_class, sdag)
        self.matched_nodes_ = {
            c: (sdag.node_ids[n], float(s)) if n >= 0 else None
            for c, n, s in zip(classes, node_of_class, similarity)}

        matched = np.flatnonzero(node_of_class >= 0)
        self.expert_names_ = list(labeler.hub_.names)
        labels = [labels_by_expert[name] for name in self.expert_names_]
        self.over_budget_reasons_ = {}
        served = self._select(classes, matched, node_of_class, labels)
        self._set_coverage(classes, served)
        self._set_costs()
        self._set_profiles(sdag, labels_by_expert)
        self._fit_patch(sdag)
        if self.device is not None:
            used = {name for c in self.covered_classes_ for name, _, _ in self.experts_[c]}
            move_experts([labeler.hub_[name] for name in sorted(used)], self.device)
        return self

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

    def _unmatch_nested(self, classes, node_of_class, sdag):
        """Unmatch each class matched by text to an image-less ancestor of another class's node.

        A node without images of its own is labelled by its successors' images alone (Eq. 2),
        so a class matched there beside a class matched below it would be served by a label
        made of the other class's images ("nine" at digit.n.01 beside "one" at one.n.01): left
        unmatched, it goes to the general model or is reported. A node with images of its own
        (shirt.n.01 above jersey.n.03, the T-shirt) is a class of its own and keeps its match;
        nodes given in ``nodes`` are the user's decision and stay. Returns the reason per
        unmatched class.
        """
        given = set() if self.nodes is None else {
            i for i, node in enumerate(self.nodes) if node is not None}
        above = classes_above_others(node_of_class, sdag)
        reasons = {}
        for i in np.flatnonzero(above >= 0):
            if i in given or sdag.n_images[node_of_class[i]] > 0:
                continue
            below = above[i]
            reasons[classes[i]] = (f"its nearest node {sdag.node_ids[node_of_class[i]]} has no "
                                   f"images of its own and lies above {classes[below]!r}'s "
                                   f"node {sdag.node_ids[node_of_class[below]]}")
        for c in reasons:
            node_of_class[classes.index(c)] = -1
        return reasons

    def _set_profiles(self, sdag, labels_by_expert):
        """Each serving expert's mean softmax output on the covered classes' nodes."""
        rows = [sdag.node_index[self.matched_nodes_[c][0]] for c in self.covered_classes_]
        used = {name for c in self.covered_classes_ for name, _, _ in self.experts_[c]}
        self.profiles_ = {name: labels_by_expert[name].probabilities[rows].copy()
                          for name in self.expert_names_ if name in used}

    def _select(self, classes, matched, node_of_class, labels):
        """CHCO over every expert, then up to k predictors per matched class."""
        self.experts_ = {c: [] for c in classes}
        self.reuse_losses_ = np.zeros((len(labels), 0))
        if len(matched) == 0 or not labels:
            return np.zeros(len(classes), dtype=bool)
        solutions = self._solve(self._reuse_problems(labels, node_of_class[matched]))
        losses = np.stack([loss for _, loss in solutions])
        self.reuse_losses_ = losses
        picks = self._pick(losses)
        self._note_over_budget(classes, matched, losses, picks)
        served = np.zeros(len(classes), dtype=bool)
        for j, class_index in enumerate(matched):
            name = classes[class_index]
            self.experts_[name] = [(self.expert_names_[m], float(losses[m, j]),
                                    solutions[m][0][:, j].copy()) for m in picks[j]]
            served[class_index] = bool(len(picks[j]))
        return served

    def _weighs_costs(self):
        return self.max_cost is not None or self.cost_tolerance > 0

    def _pick(self, losses):
        """Per matched class, the experts serving it: up to k smallest losses <= beta (the
        cheapest near-best ones, within the budget, when costs are weighed)."""
        beta = np.inf if self.beta is None else float(self.beta)
        if not self._weighs_costs():
            return select_predictors(losses, self.k, beta)
        costs = self._expert_costs(self.cost_unit)
        return select_within_budget(losses, self.k, costs, beta=beta, max_cost=self.max_cost,
                                    tolerance=float(self.cost_tolerance),
                                    names=self.expert_names_)

    def _expert_costs(self, unit):
        """Each expert's cost per image in ``unit`` (NaN where unknown), from the labels."""
        # A labeler fitted by an earlier skmll (unpickled) or assembled by hand has no costs:
        # they are unknown, never zero.
        costs = getattr(self.labeler, "costs_", {})
        values = [costs[name].value(unit) if costs.get(name) is not None else None
                  for name in self.expert_names_]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    def _note_over_budget(self, classes, matched, losses, picks):
        """Why each matched class some expert could serve has no predictor: the budget."""
        beta = np.inf if self.beta is None else float(self.beta)
        for j, class_index in enumerate(matched):
            could = np.flatnonzero(np.isfinite(losses[:, j]) & (losses[:, j] <= beta))
            if self.max_cost is not None and not len(picks[j]) and len(could):
                names = [self.expert_names_[m] for m in could[np.argsort(losses[could, j])]]
                self.over_budget_reasons_[classes[class_index]] = (
                    f"no expert that could serve it ({_quoted(names[:3])}"
                    f"{' ...' if len(names) > 3 else ''}) fits within max_cost={self.max_cost} "
                    f"{self.cost_unit} per image beside the experts of the other classes")

    def _set_costs(self):
        used = {name for c in self.covered_classes_ for name, _, _ in self.experts_[c]}
        rows = [self.expert_names_.index(name) for name in used]
        self.cost_per_image_ = {}
        for unit in ("gflops", "ms"):
            values = self._expert_costs(unit)[rows]
            self.cost_per_image_[unit] = None if np.isnan(values).any() else float(values.sum())

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
                reasons = [f"no matching SDAG node: {_quoted(no_node)}" if no_node else "",
                           "; ".join(f"{c!r} not matched: {self.unmatched_reasons_[c]}"
                                     for c in nested[:_LISTED]),
                           f"no expert passes the selection: {_quoted(no_expert)}"
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
        used = {name for c in covered for name, _, _ in self.experts_[c]}
        self.n_models_used_ = len(used)

    # --- predict: reuse ---------------------------------------------------------------------

    def _serving_plan(self):
        """Distinct experts to run, each with what reads its softmax output: its log profiles
        (profile reuse) or its (heads x covered classes) head weights (Eq. 12). Built once per
        ``predict_proba`` call, not per batch."""
        names = sorted({name for c in self.covered_classes_ for name, _, _ in self.experts_[c]},
                       key=self.expert_names_.index)
        plan = []
        for name in names:
            expert = self.labeler.hub_[name]
            if self.reuse == "profile":
                reader = log_profiles(self.profiles_[name])
            else:
                reader = np.zeros((max(2, int(expert.n_outputs)), len(self.covered_classes_)))
                for j, c in enumerate(self.covered_classes_):
                    for served_by, _, weights in self.experts_[c]:
                        if served_by == name:
                            reader[:, j] = weights
            plan.append((expert, reader))
        return plan

    def _expert_proba(self, images, plan):
        outputs = [softmax(run_expert(expert, images).astype(np.float64), axis=1)
                   for expert, _ in plan]
        readers = [reader for _, reader in plan]
        if self.reuse == "profile":
            return profile_posterior(outputs, readers)
        return normalise_rows(ensemble_scores(outputs, readers))

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
        plan = self._serving_plan()
        batches = iter_image_batches(X, self.batch_size)
        chunks = [self._proba_chunk(images, plan)
                  for images in progress(batches, verbose=self.verbose, desc="predicting",
                                         unit="batch")]
        return np.concatenate(chunks)[:, self._sorted_columns]

    def _proba_chunk(self, images, plan):
        """Probabilities with columns in the given order of the classes (``_task_classes``)."""
        covered = self._covered_mask
        classes = self._task_classes
        if covered.all():
            return self._expert_proba(images, plan)
        general = general_model_proba(self.general_model, images, classes)
        if not covered.any():
            return general
        return patch_probabilities(self._expert_proba(images, plan), general, covered,
                                   bias=self.patch_bias_)

    def predict(self, X):
        """The most probable class name for each image."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def explain(self):
        """A readable account of what ``fit`` decided: matches, experts, heads, coverage."""
        check_is_fitted(self, "classes_")
        how = ("each expert's whole output read through its label profiles" if
               self.reuse == "profile" else "head combinations weighted by entropy (Eq. 12-13)")
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
