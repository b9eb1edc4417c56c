"""The interim MLL patch: a general zero-shot model for the classes the hub cannot serve.

The paper's rule (its "interim MLL patch") gives covered classes ``P_g(Y^e|x) P_mll(c|x)`` and
uncovered classes ``P_g(c|x)``, so the general model alone decides how much of each image goes
to the uncovered classes. A general model that is overconfident on images far from its own
training data (ConSE on grey 28 x 28 garments) then pulls covered images into uncovered classes.

The calibration measures that on data the system already has: the SDAG's representative images
of the covered classes' nodes are images of covered classes. For each, the *routing score*

    s(x) = log max_{c in Y^g} P_g(c|x) - log P_g(Y^e|x)

is positive exactly when the top uncovered class would beat every covered class that the
experts are sure of. :func:`fit_patch_calibration` picks a bias ``b <= 0`` so that at most a
fraction ``max_covered_loss`` of those reference images has ``s(x) + b > 0``, and
:func:`patch_probabilities` applies it as a prior shift: every uncovered class's general
probability is multiplied by ``exp(b)`` and the row renormalised before the paper's rule.
``b = 0`` is the paper's rule; the bias never trusts the general model more than the paper does.
Reference images of uncovered classes (a node exists but no expert passes selection) refine the
bias within that budget, to the value that separates the two kinds of image best.
"""


import numpy as np

from ..hub import map_size_groups
from ..labelling import HeldImages, StoredReferenceImages, holds_images
from ..utils import hash_json, load_record, resolve_cache_dir, save_record

# Scores are computed on probabilities floored here, so they and the bias stay finite (|s| and
# |b| <= 27.6) and ``exp(b)`` never underflows to a 0 that would empty a row.
_PROBABILITY_FLOOR = 1e-12
# Rows of a general model's output must sum to 1 within this (float32 softmax sums to ~1e-6).
_ROW_SUM_TOLERANCE = 1e-3
# Reference images per class that the general model sees at fit time (evenly drawn from the
# node and its descendants): the paper's SDAG stores 50 per node.
REFERENCE_IMAGES_PER_CLASS = 50

# Reference probabilities by content key (general-model fingerprint, class names, images), so a
# second identical fit, or a clone's, runs no forward pass. Entries are a few kB each.
_REFERENCE_MEMORY = {}


def normalise_rows(scores):
    """Rows scaled to sum to 1; an all-zero row becomes uniform.

    For the experts' Eq. 12 scores, where a zero row means no predictor fired; a general
    model's output is checked instead (:func:`check_general_proba`).

    Examples
    --------
    >>> normalise_rows(np.array([[0.0, 0.0], [1.0, 3.0]])).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / max(scores.shape[1], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, scores / totals, uniform)


def _rows(mask):
    rows = np.flatnonzero(mask)
    return f"{len(rows)} row(s), first {rows[:5].tolist()}"


def check_general_proba(proba, n_images, n_classes, *, model_name="general model"):
    """A general model's ``predict_proba`` output, checked: ``(n_images, n_classes)``
    probabilities, each row summing to 1.

    Parameters
    ----------
    proba : array-like
        What the general model returned.
    n_images, n_classes : int
        The images it was given and the class names it was asked about.
    model_name : str, default="general model"
        Named in the error messages.

    Returns
    -------
    ndarray of shape (n_images, n_classes), float64
        Rows rescaled to sum to 1 exactly.

    Raises
    ------
    ValueError
        Wrong shape, non-numeric values, NaN, infinity, negative values, all-zero rows or rows
        that do not sum to 1: the message names the model and what is wrong.

    Examples
    --------
    >>> check_general_proba([[0.25, 0.75]], 1, 2).tolist()
    [[0.25, 0.75]]
    >>> check_general_proba([[0.5, 0.5, 0.0]], 1, 2, model_name="clip")
    Traceback (most recent call last):
    ...
    ValueError: general model 'clip': predict_proba returned 3 columns for 2 class names
    """
    where = f"general model {model_name!r}: predict_proba returned"
    try:
        proba = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} something that is not a numeric array ({exc})") from exc
    if proba.ndim != 2 or len(proba) != n_images:
        raise ValueError(f"{where} shape {proba.shape} for {n_images} images; expected "
                         f"({n_images}, {n_classes})")
    if proba.shape[1] != n_classes:
        raise ValueError(f"{where} {proba.shape[1]} columns for {n_classes} class names")
    for bad, what in ((np.isnan(proba), "NaN"), (np.isinf(proba), "infinite values"),
                      (proba < 0, "negative values")):
        if bad.any():
            raise ValueError(f"{where} {what} in {_rows(bad.any(axis=1))}")
    sums = proba.sum(axis=1)
    if (sums == 0).any():
        raise ValueError(f"{where} all-zero rows: {_rows(sums == 0)}")
    off = np.abs(sums - 1) > _ROW_SUM_TOLERANCE
    if off.any():
        raise ValueError(f"{where} rows that do not sum to 1 (sums from {sums.min():.4g} to "
                         f"{sums.max():.4g}) in {_rows(off)}: probabilities are expected, "
                         "not scores or logits")
    return proba / sums[:, None]


def general_model_proba(general_model, images, class_names):
    """Ask a general model about ``class_names`` and check its answer.

    Parameters
    ----------
    general_model : object
        Has ``predict_proba(images, class_names)``; its ``name`` (if any) is used in errors.
    images : ndarray (n, H, W, 3), float32 in [0, 1], or a mixed-size batch
        A mixed-size batch (:class:`~skmll.hub.MixedSizeBatch`) is passed one size group at a
        time, so the model only ever receives plain arrays.
    class_names : sequence of str

    Returns
    -------
    ndarray of shape (n, len(class_names)), rows summing to 1.

    Examples
    --------
    >>> class Even:
    ...     name = "even"
    ...     def predict_proba(self, images, class_names):
    ...         return np.full((len(images), len(class_names)), 1 / len(class_names))
    >>> general_model_proba(Even(), np.zeros((2, 4, 4, 3), np.float32), ["a", "b"]).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    class_names = list(class_names)
    name = str(getattr(general_model, "name", type(general_model).__name__))

    def ask(group):   # one same-size array at a time: a model never sees a mixed-size batch
        return check_general_proba(general_model.predict_proba(group, class_names), len(group),
                                   len(class_names), model_name=name)

    return map_size_groups(ask, images)


def routing_scores(general_proba, covered):
    """``s(x) = log max_{c uncovered} P_g(c|x) - log P_g(Y^e|x)`` per image.

    Positive exactly when the general model's top uncovered class outweighs the mass it gives
    the covered classes together: under the paper's rule the image then goes to that uncovered
    class whenever the experts are sure of a covered class (and sooner when they hesitate).
    Probabilities are floored at 1e-12, so scores lie in [-27.6, 27.6].

    Parameters
    ----------
    general_proba : ndarray (n, n_classes)
        Checked general-model probabilities (:func:`check_general_proba`).
    covered : bool ndarray (n_classes,)
        With at least one covered and one uncovered class.

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> p = np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    >>> routing_scores(p, np.array([True, False, False])).round(3).tolist()
    [-0.693, 2.079]
    """
    covered = np.asarray(covered, dtype=bool)
    if covered.all() or not covered.any():
        raise ValueError("routing scores need both covered and uncovered classes")
    general_proba = np.asarray(general_proba, dtype=np.float64)
    top_uncovered = general_proba[:, ~covered].max(axis=1)
    covered_mass = general_proba[:, covered].sum(axis=1)
    return (np.log(np.maximum(top_uncovered, _PROBABILITY_FLOOR))
            - np.log(np.maximum(covered_mass, _PROBABILITY_FLOOR)))


def fit_patch_calibration(covered_scores, uncovered_scores=(), *, max_covered_loss=0.01):
    """The bias on the routing score that sends at most ``max_covered_loss`` of covered
    reference images to uncovered classes.

    With the covered images' scores sorted, at most ``m = floor(max_covered_loss * n)`` of them
    may lie above the threshold ``t``, so ``t`` is the ``(m + 1)``-th largest score, and the
    bias is ``min(0, -t)``: an image is routed when ``s(x) + b > 0``. A general model that
    already routes few enough covered images keeps the paper's rule (``b = 0``).

    Given scores of uncovered reference images too, the threshold may rise further (never
    fall): among the thresholds at least as high (midpoints between consecutive scores), the
    one with the best balanced accuracy of the covered/uncovered split, the lowest on ties.

    Parameters
    ----------
    covered_scores : array-like of shape (n,)
        :func:`routing_scores` of reference images of covered classes (n >= 1).
    uncovered_scores : array-like of shape (m,), default=()
        The same for reference images of uncovered classes, if any.
    max_covered_loss : float in [0, 1), default=0.01
        The fraction of covered reference images allowed to go to uncovered classes.

    Returns
    -------
    bias : float
        ``<= 0``; 0 is the paper's rule.

    Examples
    --------
    Ten covered images; 20% may be routed, so the third largest score (1.0) is the threshold:

    >>> scores = [-3, -2, -2, -1, -1, 0, 0.5, 1.0, 2.0, 4.0]
    >>> fit_patch_calibration(scores, max_covered_loss=0.2)
    -1.0
    >>> fit_patch_calibration([-3, -2, -1], max_covered_loss=0.2)  # already rarely routed
    0.0
    """
    covered_scores = np.sort(np.asarray(covered_scores, dtype=np.float64).ravel())
    uncovered_scores = np.asarray(uncovered_scores, dtype=np.float64).ravel()
    if not 0 <= max_covered_loss < 1:
        raise ValueError(f"max_covered_loss must lie in [0, 1); got {max_covered_loss!r}")
    if not len(covered_scores):
        raise ValueError("calibrating the patch needs scores of covered reference images")
    if not (np.isfinite(covered_scores).all() and np.isfinite(uncovered_scores).all()):
        raise ValueError("routing scores must be finite")
    allowed = int(np.floor(max_covered_loss * len(covered_scores) + 1e-9))  # 0.29 * 100 is 29
    threshold = max(covered_scores[len(covered_scores) - 1 - allowed], 0.0)
    if len(uncovered_scores):
        threshold = _best_separating_threshold(covered_scores, uncovered_scores, threshold)
    return float(-threshold) + 0.0   # + 0.0: no -0.0


def _best_separating_threshold(covered_scores, uncovered_scores, lowest):
    """The threshold >= ``lowest`` that best separates the two kinds of score (balanced
    accuracy; the lowest on ties)."""
    pooled = np.unique(np.concatenate([covered_scores, uncovered_scores]))
    above = pooled[pooled > lowest]
    candidates = np.concatenate([[lowest], (above[:-1] + above[1:]) / 2, above[-1:] + 1.0])
    kept = (covered_scores[:, None] <= candidates).mean(axis=0)
    routed = (uncovered_scores[:, None] > candidates).mean(axis=0)
    return float(candidates[np.argmax(kept + routed)])   # argmax: the first, lowest, best


def patch_probabilities(expert_proba, general_proba, covered, *, bias=0.0):
    """The paper's patch rule, after a prior shift of the general model's uncovered classes.

    ``P'_g(c|x)`` is ``P_g(c|x)`` times ``exp(bias)`` for uncovered ``c``, renormalised; then
    ``P(c|x) = P'_g(Y^e|x) P_mll(c|x)`` for covered ``c`` and ``P'_g(c|x)`` otherwise.
    ``bias=0`` is the paper's rule.

    Parameters
    ----------
    expert_proba : ndarray (n, n_covered)
        The experts' distribution over covered classes (rows sum to 1).
    general_proba : ndarray (n, n_classes)
        The general model's distribution over all classes (checked:
        :func:`check_general_proba`).
    covered : bool ndarray (n_classes,)
    bias : float, default=0.0
        From :func:`fit_patch_calibration`.

    Returns
    -------
    ndarray (n, n_classes), rows sum to 1.

    Examples
    --------
    >>> expert, general = np.array([[0.9, 0.1]]), np.array([[0.3, 0.3, 0.4]])
    >>> covered = np.array([True, True, False])
    >>> patch_probabilities(expert, general, covered).round(2).tolist()
    [[0.54, 0.06, 0.4]]
    >>> patch_probabilities(expert, general, covered, bias=np.log(0.5)).round(2).tolist()
    [[0.68, 0.08, 0.25]]
    """
    covered = np.asarray(covered, dtype=bool)
    expert_proba = np.asarray(expert_proba, dtype=np.float64)
    general_proba = check_general_proba(general_proba, len(expert_proba), len(covered))
    if expert_proba.shape[1] != covered.sum():
        raise ValueError(f"expert_proba has {expert_proba.shape[1]} columns for "
                         f"{int(covered.sum())} covered classes")
    if not (np.isfinite(bias) and bias <= 0):
        raise ValueError(f"bias must be a finite number <= 0; got {bias!r}")
    shifted = general_proba * np.where(covered, 1.0, np.exp(bias))
    shifted /= shifted.sum(axis=1, keepdims=True)
    result = shifted.copy()
    result[:, covered] = shifted[:, covered].sum(axis=1, keepdims=True) * expert_proba
    return result


# --- reference images at fit time --------------------------------------------------------------

def _subtree(sdag, node_id):
    """``node_id`` and its descendants, each once, in breadth-first order."""
    seen, queue = {node_id: None}, [node_id]
    while queue:
        for child in sdag.successors(queue.pop(0)):
            if child not in seen:
                seen[child] = None
                queue.append(child)
    return list(seen)


def _reference_proba(general_model, source, nodes, class_names, cache_dir):
    """The general model's probabilities on up to ``REFERENCE_IMAGES_PER_CLASS`` images drawn
    evenly from ``nodes``; remembered by content when the model has a ``fingerprint``."""
    nodes = [n for n in nodes if source.count(n)]
    counts = [source.count(n) for n in nodes]
    if not nodes:
        return np.zeros((0, len(class_names)))
    fingerprint = getattr(general_model, "fingerprint", None)
    key = None
    if isinstance(fingerprint, str):
        key = hash_json(["patch-reference", fingerprint, list(class_names),
                         [source.key(n) for n in nodes], REFERENCE_IMAGES_PER_CLASS])
        stored = _recall(key, cache_dir)
        if stored is not None:
            return stored
    keep = np.unique(np.linspace(0, sum(counts) - 1, REFERENCE_IMAGES_PER_CLASS).round()
                     .astype(int))
    starts = np.cumsum([0, *counts[:-1]])
    rows = {node: keep[(keep >= start) & (keep < start + count)] - start
            for node, start, count in zip(nodes, starts, counts)}
    drawn = [node for node in nodes if len(rows[node])]   # only these nodes' images are read
    proba = np.concatenate([general_model_proba(general_model, images[rows[node]], class_names)
                            for node, images in zip(drawn, source.batches(drawn))])
    proba.setflags(write=False)   # shared by every fit that recalls it
    if key is not None:
        _remember(key, proba, cache_dir, general_model, nodes)
    return proba


def _recall(key, cache_dir):
    if key in _REFERENCE_MEMORY:
        return _REFERENCE_MEMORY[key]
    folder = resolve_cache_dir(cache_dir)
    record = load_record(folder / "patch", key) if folder is not None else None
    if record is None:
        return None
    proba = record[0]["proba"]
    proba.setflags(write=False)
    _REFERENCE_MEMORY[key] = proba
    return proba


def _remember(key, proba, cache_dir, general_model, nodes):
    _REFERENCE_MEMORY[key] = proba
    folder = resolve_cache_dir(cache_dir)
    if folder is not None:
        save_record(folder / "patch", key, {"proba": proba},
                    {"general_model": str(getattr(general_model, "name", "")), "nodes": nodes})


def _image_source(sdag, references):
    if holds_images(sdag):
        return HeldImages(sdag)
    if references is None or references is False:
        raise ValueError("the SDAG holds no images (read from a label directory) and no label "
                         "directory with reference images was given, so the patch cannot be "
                         "calibrated; pass patch_calibration=None for the paper's rule")
    return StoredReferenceImages(references, sdag)


def calibrate_patch(general_model, sdag, class_names, class_nodes, covered, *,
                    max_covered_loss=0.01, cache_dir=None, references=None):
    """The patch bias of a task, measured on the SDAG's reference images.

    Reference images of a class are drawn evenly from its node and the node's descendants
    (at most ``REFERENCE_IMAGES_PER_CLASS``); those of an uncovered class leave out the
    subtrees of covered classes' nodes, which may lie below it.

    Parameters
    ----------
    general_model : object
        ``predict_proba(images, class_names)``.
    sdag : SemanticDAG
    class_names : sequence of str
        Every task class, in the order of the general model's columns.
    class_nodes : sequence of (str or None)
        The node each class matched, aligned with ``class_names`` (None: no node).
    covered : bool array-like (n_classes,)
        Which classes the experts serve; at least one covered and one uncovered class.
    max_covered_loss : float in [0, 1), default=0.01
        See :func:`fit_patch_calibration`.
    cache_dir : path, None or False, default=None
        Also keep the reference probabilities on disk (None: the default folder; False: off),
        when the general model has a ``fingerprint``. They are always kept in memory then.
    references : path or None, default=None
        A label directory whose kept reference images (:func:`save_reference_images`) stand
        in for the SDAG's when ``sdag`` holds none (an SDAG read from that directory).

    Returns
    -------
    bias : float
        For :func:`patch_probabilities`.
    """
    covered = np.asarray(covered, dtype=bool)
    source = _image_source(sdag, references)
    covered_nodes = {n for node, c in zip(class_nodes, covered) if c
                     for n in _subtree(sdag, node)}
    scores = {True: [], False: []}
    for node, is_covered in zip(class_nodes, covered):
        if node is None:
            continue
        nodes = [n for n in _subtree(sdag, node) if is_covered or n not in covered_nodes]
        proba = _reference_proba(general_model, source, nodes, class_names, cache_dir)
        scores[bool(is_covered)].append(routing_scores(proba, covered))
    if not scores[True]:
        raise ValueError("no covered class has reference images in the SDAG to calibrate the "
                         "patch on; pass patch_calibration=None for the paper's rule")
    return fit_patch_calibration(np.concatenate(scores[True]),
                                 np.concatenate(scores[False] or [np.zeros(0)]),
                                 max_covered_loss=max_covered_loss)
