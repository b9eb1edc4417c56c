"""The paper's baseline selection methods: Random^MLL, LogME^MLL and LEEP^MLL.

Each is an :class:`~skmll.MLLZeroShotClassifier` with the same matching and reuse (``reuse``);
only the selection step differs. LogME^MLL and LEEP^MLL label the experts with a balanced
binary test per matched SDAG node: the metric ranks the experts, and the head with the least
binary cross-entropy is each expert's predictor. Random^MLL keeps CHCO's head combinations and
draws the experts at random.
"""

import numpy as np
from scipy.sparse.csgraph import breadth_first_order
from scipy.special import softmax
from sklearn.utils import check_random_state

from .._classifier import MLLZeroShotClassifier
from ..hub import n_heads, run_expert
from ..selection._select import select_predictors
from ..utils import progress
from ._transferability import leep_score, logme_score


def _image_nodes(sdag):
    """The node of every SDAG image, images numbered node by node in index order."""
    return np.repeat(np.arange(sdag.n_nodes), sdag.n_images)


def _binary_tests(sdag, nodes, rng):
    """A balanced one-vs-rest test per node: (SDAG image numbers, 0/1 targets), or None.

    Positives are every image of the node and of its descendants; negatives as many images,
    drawn without replacement from the nodes that are neither below nor above it (an ancestor's
    own images may show the node's class).
    """
    image_node = _image_nodes(sdag)
    graph = sdag.successor_matrix
    reverse = graph.T.tocsr()
    tests = []
    for node in nodes:
        related = np.zeros(sdag.n_nodes, dtype=bool)
        related[breadth_first_order(graph, node, return_predecessors=False)] = True
        positives = np.flatnonzero(related[image_node])
        related[breadth_first_order(reverse, node, return_predecessors=False)] = True
        others = np.flatnonzero(~related[image_node])
        if len(positives) == 0 or len(others) == 0:
            tests.append(None)
            continue
        negatives = np.sort(rng.choice(others, size=min(len(positives), len(others)),
                                       replace=False))
        targets = np.repeat([1, 0], [len(positives), len(negatives)])
        tests.append((np.concatenate([positives, negatives]), targets))
    return tests


def _expert_logits(sdag, experts, images_needed, batch_size, verbose):
    """Every expert's logits on some SDAG images (sorted image numbers).

    Each needed node is read once, in batches, and each expert runs once per batch on the
    needed images of that batch.
    """
    image_node = _image_nodes(sdag)
    nodes = np.unique(image_node[images_needed])
    streamed = np.flatnonzero(np.isin(image_node, nodes))   # iter_batches' order: node by node
    row_of = np.full(len(image_node), -1)
    row_of[images_needed] = np.arange(len(images_needed))
    logits = [np.empty((len(images_needed), n_heads(e)), dtype=np.float32) for e in experts]
    batches = sdag.iter_batches(batch_size, nodes=[sdag.node_ids[n] for n in nodes])
    start = 0
    for images, _ in progress(batches, verbose=verbose, desc="binary tests", unit="batch"):
        rows = row_of[streamed[start:start + len(images)]]
        start += len(images)
        keep = rows >= 0
        if keep.any():
            for out, expert in zip(logits, experts):
                out[rows[keep]] = run_expert(expert, images[keep])
    return logits


def _min_bce_head(probabilities, targets):
    """The head whose softmax probability, read as P(y=1|x), has the least binary cross-entropy."""
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    y = targets[:, None]
    bce = -(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=0)
    return int(np.argmin(bce))


class _TransferabilityMLLClassifier(MLLZeroShotClassifier):
    """Selection by a transferability metric on balanced binary SDAG tests (paper's baselines)."""

    # CHCO's options (beta, label_statistic, combination) do not apply here: a metric ranks the
    # experts and one head is the predictor.
    _parameter_constraints = {
        **{name: constraint for name, constraint in
           MLLZeroShotClassifier._parameter_constraints.items()
           if name not in ("beta", "label_statistic", "combination", "max_cost", "cost_unit",
                           "cost_tolerance")},
        "random_state": ["random_state"],
    }

    def __init__(self, classes, labeler, *, k=2, text_encoder=None, general_model=None,
                 min_similarity=0.0, name_bonus=0.25, nodes=None, class_template="Name: {}",
                 reuse="profile", on_uncovered="raise", batch_size=256, cache_dir=None,
                 device=None, verbose=0, patch_calibration=0.01, random_state=None):
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
        self.random_state = random_state

    def _metric(self, logits, targets):
        """The reuse metric of an expert's logits on a binary test (higher is better)."""
        raise NotImplementedError

    def _select(self, classes, matched, node_of_class, labels):
        """Binary tests per matched node, the metric of every expert, the top k per class."""
        self.experts_ = {c: [] for c in classes}
        sdag, experts = self.labeler.sdag, list(self.labeler.hub_)
        tests = _binary_tests(sdag, node_of_class[matched], check_random_state(self.random_state))
        needed = np.unique(np.concatenate(
            [np.zeros(0, dtype=np.int64)] + [t[0] for t in tests if t is not None]))
        logits = _expert_logits(sdag, experts, needed, self.batch_size, self.verbose)
        scores = np.full((len(experts), len(matched)), -np.inf)
        heads = np.full(scores.shape, -1)
        for m, outputs in enumerate(logits):
            for j, test in enumerate(tests):
                if test is not None:
                    features = outputs[np.searchsorted(needed, test[0])].astype(np.float64)
                    scores[m, j] = self._metric(features, test[1])
                    heads[m, j] = _min_bce_head(softmax(features, axis=1), test[1])
        self.reuse_scores_, self.heads_ = scores, heads
        picks = select_predictors(-scores, self.k)   # untested (-inf) experts are never picked
        served = np.zeros(len(classes), dtype=bool)
        for j, class_index in enumerate(matched):
            self.experts_[classes[class_index]] = [
                (self.expert_names_[m], float(scores[m, j]),
                 np.eye(logits[m].shape[1])[heads[m, j]]) for m in picks[j]]
            served[class_index] = bool(len(picks[j]))
        return served


class LogMEMLLClassifier(_TransferabilityMLLClassifier):
    """LogME^MLL: experts ranked per class by LogME on a balanced binary SDAG test.

    The paper's baseline (Compared Methods): for each matched node, the images of the node and
    its descendants are the positives and as many images drawn from unrelated nodes the
    negatives. Each expert runs once over these images; its LogME evidence on its logits
    (:func:`logme_score`) is its reuse metric for the class and its head with the least binary
    cross-entropy its predictor. The ``k`` experts with the highest metric serve each class,
    reused as in :class:`~skmll.MLLZeroShotClassifier` (``reuse``).

    Parameters
    ----------
    classes, labeler, k, text_encoder, general_model, min_similarity, name_bonus, nodes, \
class_template, reuse, on_uncovered, cache_dir, verbose
        As in :class:`~skmll.MLLZeroShotClassifier`.
    batch_size : int, default=256
        Images per batch in ``predict_proba`` and when running the binary tests.
    random_state : int, RandomState instance or None, default=None
        Draws the negatives of the binary tests.

    Attributes
    ----------
    classes_, matched_nodes_, covered_classes_, uncovered_classes_, coverage_, \
expert_names_, n_models_used_
        As in :class:`~skmll.MLLZeroShotClassifier`.
    experts_ : dict of str to list of (str, float, ndarray)
        Per class, the serving experts as (name, metric, one-hot head weights).
    reuse_scores_ : ndarray of shape (n_experts, n_matched)
        The metric of every expert for every matched class (-inf where no test could be made).
    heads_ : ndarray of int of shape (n_experts, n_matched)
        The least-BCE head of every expert for every matched class (-1 where untested).

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.baselines import LogMEMLLClassifier
    >>> dark, light = np.zeros((3, 8, 8), np.uint8), np.full((3, 8, 8), 255, np.uint8)
    >>> sdag = SemanticDAG(["night", "day"], data={"night": dark, "day": light})
    >>> class Brightness:
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1) * 4
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    >>> clf = LogMEMLLClassifier(["day", "night"], labeler, nodes=["day", "night"],
    ...                          random_state=0).fit()
    >>> clf.predict(np.stack([light[0], dark[0]])).tolist()
    ['day', 'night']
    """

    def _metric(self, logits, targets):
        return logme_score(logits, targets)


class LEEPMLLClassifier(_TransferabilityMLLClassifier):
    """LEEP^MLL: experts ranked per class by LEEP on a balanced binary SDAG test.

    As :class:`LogMEMLLClassifier`, with :func:`leep_score` of the expert's softmax outputs as
    the reuse metric.

    Parameters
    ----------
    classes, labeler, k, text_encoder, general_model, min_similarity, name_bonus, nodes, \
class_template, reuse, on_uncovered, cache_dir, verbose
        As in :class:`~skmll.MLLZeroShotClassifier`.
    batch_size : int, default=256
        Images per batch in ``predict_proba`` and when running the binary tests.
    random_state : int, RandomState instance or None, default=None
        Draws the negatives of the binary tests.

    Attributes
    ----------
    classes_, matched_nodes_, covered_classes_, uncovered_classes_, coverage_, \
expert_names_, n_models_used_, experts_, reuse_scores_, heads_
        As in :class:`LogMEMLLClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.baselines import LEEPMLLClassifier
    >>> dark, light = np.zeros((3, 8, 8), np.uint8), np.full((3, 8, 8), 255, np.uint8)
    >>> sdag = SemanticDAG(["night", "day"], data={"night": dark, "day": light})
    >>> class Brightness:
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1) * 4
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    >>> clf = LEEPMLLClassifier(["day", "night"], labeler, nodes=["day", "night"],
    ...                         random_state=0).fit()
    >>> clf.predict(np.stack([light[0], dark[0]])).tolist()
    ['day', 'night']
    """

    def _metric(self, logits, targets):
        return leep_score(softmax(logits, axis=1), targets)


class RandomMLLClassifier(MLLZeroShotClassifier):
    """Random^MLL: CHCO's head combinations, with the experts of each class drawn at random.

    The paper's baseline (Compared Methods): matching, CHCO (Eq. 4-11) and reuse (``reuse``)
    as in :class:`~skmll.MLLZeroShotClassifier`, but each class is served by up to ``k``
    experts drawn uniformly among those with a finite CHCO loss at most ``beta``.

    Parameters
    ----------
    classes, labeler, k, beta, text_encoder, general_model, min_similarity, name_bonus, \
nodes, class_template, label_statistic, combination, reuse, on_uncovered, batch_size, \
cache_dir, verbose
        As in :class:`~skmll.MLLZeroShotClassifier`.
    random_state : int, RandomState instance or None, default=None
        Draws the experts.

    Attributes
    ----------
    classes_, matched_nodes_, experts_, covered_classes_, uncovered_classes_, coverage_, \
reuse_losses_, expert_names_, n_models_used_
        As in :class:`~skmll.MLLZeroShotClassifier` (``experts_`` lists each class's experts
        in the order drawn).

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.baselines import RandomMLLClassifier
    >>> dark, light = np.zeros((3, 8, 8), np.uint8), np.full((3, 8, 8), 255, np.uint8)
    >>> sdag = SemanticDAG(["night", "day"], data={"night": dark, "day": light})
    >>> class Brightness:
    ...     name, n_outputs = "brightness", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1) * 4
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    >>> clf = RandomMLLClassifier(["day", "night"], labeler, nodes=["day", "night"],
    ...                           random_state=0).fit()
    >>> clf.n_models_used_
    1
    """

    _prune = False   # any expert with a finite loss <= beta may be drawn: solve them all

    # Experts are drawn at random, so costs do not steer the selection.
    _parameter_constraints = {
        **{name: constraint for name, constraint in
           MLLZeroShotClassifier._parameter_constraints.items()
           if name not in ("max_cost", "cost_unit", "cost_tolerance")},
        "random_state": ["random_state"]}

    def __init__(self, classes, labeler, *, k=2, beta=None, text_encoder=None, general_model=None,
                 min_similarity=0.0, name_bonus=0.25, nodes=None, class_template="Name: {}",
                 label_statistic="probability", combination="chco", reuse="profile",
                 on_uncovered="raise", batch_size=256, cache_dir=None, device=None, verbose=0,
                 patch_calibration=0.01, random_state=None):
        super().__init__(classes, labeler, k=k, beta=beta, text_encoder=text_encoder,
                         general_model=general_model, min_similarity=min_similarity,
                         name_bonus=name_bonus, nodes=nodes, class_template=class_template,
                         label_statistic=label_statistic, combination=combination,
                         reuse=reuse, on_uncovered=on_uncovered, batch_size=batch_size,
                         cache_dir=cache_dir, device=device, verbose=verbose,
                         patch_calibration=patch_calibration)
        self.random_state = random_state

    def _pick(self, losses):
        """Per matched class, up to k experts drawn among those with a loss <= beta."""
        rng = check_random_state(self.random_state)
        beta = np.inf if self.beta is None else float(self.beta)
        picks = []
        for column in np.asarray(losses).T:
            usable = np.flatnonzero(np.isfinite(column) & (column <= beta))
            picks.append(rng.choice(usable, size=min(self.k, len(usable)), replace=False))
        return picks
