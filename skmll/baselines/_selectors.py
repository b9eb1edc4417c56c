"""The paper's baseline selection methods: Random^MLL, LogME^MLL and LEEP^MLL.

Each is a sibling of :class:`~skmll.MLLZeroShotClassifier`: the same matching, coverage and
reuse (``reuse``), another selection (the estimators' one hook, ``_select``). LogME^MLL and
LEEP^MLL label the experts with a balanced binary test per matched SDAG node
(:func:`select_by_transferability`): the metric ranks the experts, and the head with the least
binary cross-entropy is each expert's predictor. Random^MLL keeps CHCO's head combinations and
draws the experts at random.
"""

from functools import partial

import numpy as np
from scipy.sparse.csgraph import breadth_first_order
from scipy.special import softmax
from sklearn.utils import check_random_state

from .._classifier import CHCO_CONSTRAINTS, _BaseMLLClassifier
from ..hub import n_heads
from ..labelling import run_over_nodes
from ..selection import Selection, select_experts, select_predictors
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
    wanted = np.zeros(len(image_node), dtype=bool)
    wanted[images_needed] = True
    row_of = np.full(len(image_node), -1)
    row_of[images_needed] = np.arange(len(images_needed))
    logits = [np.empty((len(images_needed), n_heads(e)), dtype=np.float32) for e in experts]
    for numbers, _, outputs, _ in run_over_nodes(
            experts, sdag, np.unique(image_node[images_needed]), batch_size, wanted=wanted,
            verbose=verbose, desc="binary tests"):
        for out, values in zip(logits, outputs):
            out[row_of[numbers]] = values
    return logits


def _min_bce_head(probabilities, targets):
    """The head whose softmax probability, read as P(y=1|x), has the least binary cross-entropy."""
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    y = targets[:, None]
    bce = -(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=0)
    return int(np.argmin(bce))


def _logme_of_logits(logits, targets):
    return logme_score(logits, targets)


def _leep_of_logits(logits, targets):
    return leep_score(softmax(logits, axis=1), targets)


def select_by_transferability(task, labeler, metric, *, k, random_state=None, batch_size=256,
                              verbose=0):
    """Up to ``k`` experts per matched class, ranked by a transferability metric.

    For each matched node a balanced binary test is drawn (the images of the node and its
    descendants against as many from unrelated nodes); every expert runs once over the
    images of all the tests; ``metric(logits, targets)`` (higher is better) of its logits on a
    class's test ranks it, and its head of least binary cross-entropy is its predictor.

    Parameters
    ----------
    task : TaskMatch
    labeler : ModelLabeler
        A fitted labeler: its SDAG's images and its hub's experts.
    metric : callable
        ``metric(logits, targets) -> float``.
    k : int
    random_state : int, RandomState instance or None, default=None
        Draws the negatives of the binary tests.
    batch_size : int, default=256
    verbose : int, default=0

    Returns
    -------
    Selection
        Its ``losses`` are the metric's negatives (-inf where no test could be made), its
        ``heads`` the least-BCE head of every expert and class (-1 where untested).
    """
    sdag, experts = labeler.sdag, list(labeler.hub_)
    matched = task.matched
    tests = _binary_tests(sdag, task.nodes[matched], check_random_state(random_state))
    needed = np.unique(np.concatenate(
        [np.zeros(0, dtype=np.int64)] + [t[0] for t in tests if t is not None]))
    logits = _expert_logits(sdag, experts, needed, batch_size, verbose)
    scores = np.full((len(experts), len(matched)), -np.inf)
    heads = np.full(scores.shape, -1)
    for m, outputs in enumerate(logits):
        for j, test in enumerate(tests):
            if test is not None:
                features = outputs[np.searchsorted(needed, test[0])].astype(np.float64)
                scores[m, j] = metric(features, test[1])
                heads[m, j] = _min_bce_head(softmax(features, axis=1), test[1])
    picks = select_predictors(-scores, k)   # untested (-inf) experts are never picked
    return Selection.from_picks(
        task, [e.name for e in experts], picks, scores,
        lambda m, j: np.eye(logits[m].shape[1])[heads[m, j]], losses=-scores, heads=heads)


class _TransferabilityMLLClassifier(_BaseMLLClassifier):
    """Selection by a transferability metric on balanced binary SDAG tests (paper's baselines):
    :func:`select_by_transferability` with the class's ``_metric``."""

    _parameter_constraints = {**_BaseMLLClassifier._parameter_constraints,
                              "random_state": ["random_state"]}

    def __init__(self, classes, labeler, *, k=2, text_encoder=None, general_model=None,
                 min_similarity=0.0, name_bonus=0.25, nodes=None, class_template="Name: {}",
                 reuse="profile", on_uncovered="raise", batch_size=256, cache_dir=None,
                 device=None, verbose=0, patch_calibration=0.01, random_state=None):
        super().__init__(classes, labeler, k=k, text_encoder=text_encoder,
                         general_model=general_model, min_similarity=min_similarity,
                         name_bonus=name_bonus, nodes=nodes, class_template=class_template,
                         reuse=reuse, on_uncovered=on_uncovered, batch_size=batch_size,
                         cache_dir=cache_dir, device=device, verbose=verbose,
                         patch_calibration=patch_calibration)
        self.random_state = random_state

    def _select(self, task, labels):
        selection = select_by_transferability(
            task, self.labeler, self._metric, k=self.k, random_state=self.random_state,
            batch_size=self.batch_size, verbose=self.verbose)
        self.reuse_scores_, self.heads_ = -selection.losses, selection.heads
        return selection


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
class_template, reuse, on_uncovered, cache_dir, device, verbose, patch_calibration
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

    _metric = staticmethod(_logme_of_logits)


class LEEPMLLClassifier(_TransferabilityMLLClassifier):
    """LEEP^MLL: experts ranked per class by LEEP on a balanced binary SDAG test.

    As :class:`LogMEMLLClassifier`, with :func:`leep_score` of the expert's softmax outputs as
    the reuse metric.

    Parameters
    ----------
    classes, labeler, k, text_encoder, general_model, min_similarity, name_bonus, nodes, \
class_template, reuse, on_uncovered, batch_size, cache_dir, device, verbose, \
patch_calibration, random_state
        As in :class:`LogMEMLLClassifier`.

    Attributes
    ----------
    classes_, matched_nodes_, covered_classes_, uncovered_classes_, coverage_, \
expert_names_, n_models_used_, experts_, reuse_scores_, heads_
        As in :class:`LogMEMLLClassifier`.

    Examples
    --------
    A torch expert whose head 1 grows with brightness and head 0 with darkness serves "sun"
    by head 1 and "moon" by head 0:

    >>> import numpy as np
    >>> import torch
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG, TorchExpert
    >>> from skmll.baselines import LEEPMLLClassifier
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.stack([torch.full((64,), -0.1),
    ...                                          torch.full((64,), 0.1)]))
    ...     _ = net[1].bias.zero_()
    >>> rng = np.random.default_rng(0)
    >>> sdag = SemanticDAG(["moon", "sun"],
    ...                    data={"moon": rng.integers(0, 60, (4, 8, 8), dtype=np.uint8),
    ...                          "sun": rng.integers(190, 256, (4, 8, 8), dtype=np.uint8)})
    >>> hub = ModelHub([TorchExpert(net, name="glow", input_size=(8, 8), channels=1)])
    >>> labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)
    >>> clf = LEEPMLLClassifier(["sun", "moon"], labeler, nodes=["sun", "moon"],
    ...                         random_state=0).fit()
    >>> clf.heads_.tolist()
    [[1, 0]]
    """

    _metric = staticmethod(_leep_of_logits)


class RandomMLLClassifier(_BaseMLLClassifier):
    """Random^MLL: CHCO's head combinations, with the experts of each class drawn at random.

    The paper's baseline (Compared Methods): matching, CHCO (Eq. 4-11) and reuse (``reuse``)
    as in :class:`~skmll.MLLZeroShotClassifier` (:func:`~skmll.selection.select_experts`), but
    each class is served by up to ``k``
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
    Two experts read the colour channels; "plus" has the smaller CHCO loss for both classes,
    yet each class is served by an expert drawn at random:

    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.baselines import RandomMLLClassifier
    >>> class Channel:
    ...     n_outputs = 3
    ...     def __init__(self, name, sign):
    ...         self.name, self.sign = name, sign
    ...     def logits(self, images):
    ...         return self.sign * 5 * images.mean(axis=(1, 2))
    >>> colours = {c: np.zeros((2, 6, 6, 3), np.uint8) for c in ("red", "green")}
    >>> colours["red"][..., 0] = colours["green"][..., 1] = 255
    >>> hub = ModelHub([Channel("plus", 1), Channel("minus", -1)])
    >>> labeler = ModelLabeler(SemanticDAG(list(colours), data=colours), cache_dir=False,
    ...                        verbose=0).fit(hub)
    >>> clf = RandomMLLClassifier(["red", "green"], labeler, k=1, nodes=["red", "green"],
    ...                           random_state=0).fit()
    >>> clf.reuse_losses_.round(2).tolist()
    [[0.02, 0.02], [0.58, 0.58]]
    >>> [clf.experts_[c][0][0] for c in ("red", "green")]
    ['minus', 'plus']
    """

    # Experts are drawn at random, so costs do not steer the selection.
    _parameter_constraints = {**_BaseMLLClassifier._parameter_constraints, **CHCO_CONSTRAINTS,
                              "random_state": ["random_state"]}

    def __init__(self, classes, labeler, *, k=2, beta=None, text_encoder=None, general_model=None,
                 min_similarity=0.0, name_bonus=0.25, nodes=None, class_template="Name: {}",
                 label_statistic="probability", combination="chco", reuse="profile",
                 on_uncovered="raise", batch_size=256, cache_dir=None, device=None, verbose=0,
                 patch_calibration=0.01, random_state=None):
        super().__init__(classes, labeler, k=k, text_encoder=text_encoder,
                         general_model=general_model, min_similarity=min_similarity,
                         name_bonus=name_bonus, nodes=nodes, class_template=class_template,
                         reuse=reuse, on_uncovered=on_uncovered, batch_size=batch_size,
                         cache_dir=cache_dir, device=device, verbose=verbose,
                         patch_calibration=patch_calibration)
        self.beta = beta
        self.label_statistic = label_statistic
        self.combination = combination
        self.random_state = random_state

    def _select(self, task, labels):
        """CHCO over every expert (none screened out: any may be drawn), then up to k experts
        per class drawn among those with a finite loss at most ``beta``."""
        selection = select_experts(task, labels, k=self.k, beta=self.beta,
                                   statistic=self.label_statistic,
                                   combination=self.combination,
                                   pick=partial(_draw, rng=check_random_state(self.random_state)))
        self.reuse_losses_ = selection.losses
        return selection


def _draw(losses, k, beta, rng):
    """Per matched class, up to k experts drawn among those with a finite loss <= beta."""
    picks = []
    for column in np.asarray(losses).T:
        usable = np.flatnonzero(np.isfinite(column) & (column <= beta))
        picks.append(rng.choice(usable, size=min(k, len(usable)), replace=False))
    return picks
