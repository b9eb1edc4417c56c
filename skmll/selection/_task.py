"""A task's class names matched to SDAG nodes (Algorithm 1, line 4), as one value."""

from dataclasses import dataclass, field

import numpy as np

from ..utils import check_template, fill_template, quoted_names
from ._matching import classes_above_others, exact_name_matches, match_classes
from ._text import default_text_encoder, embed_texts

@dataclass(frozen=True, eq=False)
class TaskMatch:
    """Where each class of a task lies in the SDAG, and why a class lies nowhere.

    Attributes
    ----------
    classes : list of str
        The task's class names, in the order given.
    nodes : int ndarray of shape (n_classes,)
        The SDAG node index of each class; -1 where the class is unmatched.
    similarity : ndarray of shape (n_classes,)
        The cosine similarity of each matched pair (1.0 for a node given by the user); NaN
        where unmatched.
    node_ids : list of (str or None)
        The SDAG node id of each class; None where unmatched.
    unmatched_reasons : dict of str to str
        Classes left unmatched although text matching found them a node, with the reason.
    """

    classes: list
    nodes: np.ndarray
    similarity: np.ndarray
    node_ids: list
    unmatched_reasons: dict = field(default_factory=dict)

    @property
    def matched(self):
        """Indices of the matched classes, in the order given."""
        return np.flatnonzero(self.nodes >= 0)

    @property
    def matched_nodes(self):
        """Per class, its ``(node id, similarity)``, or None where unmatched."""
        return {c: (node, float(s)) if node is not None else None
                for c, node, s in zip(self.classes, self.node_ids, self.similarity)}


def match_task(classes, sdag, *, nodes=None, text_encoder=None, class_template="Name: {}",
               name_bonus=0.25, min_similarity=0.0, cache_dir=None, verbose=0):
    """Match a task's class names to SDAG nodes.

    Classes without a node in ``nodes`` are matched by :func:`match_classes` on the cosine
    similarity of their names as written (in ``class_template``) and of the node texts, and on
    their names in dictionary form ("Ankle-Boots" names a node "ankle boot"); ``name_bonus=0``
    keeps the paper's single round of mutual best match on the cosine similarity alone. Only
    nodes with images at or below them can be matched. A class matched by text to a node that
    has no images of its own and lies above another class's node is then left unmatched, with
    the reason: its label is made of the other class's images.

    Parameters
    ----------
    classes : list of str
        The task's class names.
    sdag : SemanticDAG
    nodes : list of (str or None) or None, default=None
        SDAG node ids aligned with ``classes`` (None entries are matched by text).
    text_encoder : callable or None, default=None
        ``list[str] -> (n, d)`` array; None is :func:`default_text_encoder`.
    class_template : str, default="Name: {}"
        How a class name is written before embedding (:func:`~skmll.utils.check_template`).
    name_bonus : float, default=0.25
        See :func:`match_classes`.
    min_similarity : float, default=0.0
        Class-node pairs with lower cosine similarity are left unmatched.
    cache_dir : path, None or False, default=None
        Where node embeddings are cached.
    verbose : int, default=0

    Returns
    -------
    TaskMatch

    Raises
    ------
    ValueError
        When ``nodes`` is not aligned with ``classes``, names a node the SDAG lacks or gives
        one node twice; when ``class_template`` does not hold exactly one ``{}``.

    Examples
    --------
    >>> from skmll import SemanticDAG
    >>> sdag = SemanticDAG(["sky", "night", "day"], edges=[("sky", "night"), ("sky", "day")],
    ...                    data={"night": np.zeros((1, 4, 4)), "day": np.ones((1, 4, 4))})
    >>> task = match_task(["day", "evening"], sdag, nodes=["day", None],
    ...                   text_encoder=lambda texts: np.ones((len(texts), 2)), cache_dir=False)
    >>> task.node_ids
    ['day', None]
    """
    check_template(class_template, what="class_template")
    if nodes is not None:
        _check_nodes(nodes, classes, sdag)
    node_of_class = np.full(len(classes), -1)
    similarity = np.full(len(classes), np.nan)
    given = nodes if nodes is not None else [None] * len(classes)
    for i, node in enumerate(given):
        if node is not None:
            node_of_class[i], similarity[i] = sdag.node_index[node], 1.0
    by_text = [i for i, node in enumerate(given) if node is None]
    if by_text:
        encoder = text_encoder if text_encoder is not None else default_text_encoder()
        node_vectors = embed_texts(encoder, sdag.texts, cache_dir=cache_dir, verbose=verbose)
        names = [classes[i] for i in by_text]
        class_vectors = embed_texts(
            encoder, [fill_template(class_template, name) for name in names], cache_dir=False)
        if class_vectors.shape[1] != node_vectors.shape[1]:
            raise ValueError("text encoder gave class and node embeddings of different sizes")
        labelled = np.asarray(sdag.has_data_below, dtype=bool).copy()
        labelled[node_of_class[node_of_class >= 0]] = False  # a node fixed by `nodes` is taken
        cosine = class_vectors @ node_vectors.T
        hits = None if name_bonus == 0 else exact_name_matches(
            names, sdag.texts, candidates=labelled)
        matched = match_classes(cosine, hits, candidates=labelled, name_bonus=name_bonus,
                                min_similarity=min_similarity)
        node_of_class[by_text] = matched
        similarity[by_text] = np.where(
            matched >= 0, cosine[np.arange(len(by_text)), np.maximum(matched, 0)], np.nan)
    reasons = _unmatch_nested(classes, node_of_class, set(by_text), sdag)
    node_ids = [sdag.node_ids[n] if n >= 0 else None for n in node_of_class]
    return TaskMatch(list(classes), node_of_class, similarity, node_ids, reasons)


def _check_nodes(nodes, classes, sdag):
    """``nodes`` aligned with ``classes``: SDAG node ids or None, no node given twice."""
    if isinstance(nodes, str) or not hasattr(nodes, "__len__") or len(nodes) != len(classes):
        raise ValueError(f"nodes must be a list aligned with classes ({len(classes)} entries); "
                         f"got {nodes!r:.200}")
    given = [n for n in nodes if n is not None]
    unknown = [n for n in given if not isinstance(n, str) or n not in sdag.node_index]
    if unknown:
        raise ValueError(f"nodes not in the SDAG: {quoted_names(unknown)}")
    twice = sorted({n for n in given if given.count(n) > 1})
    if twice:
        raise ValueError("two classes cannot share one SDAG node (their predictors would be "
                         f"identical); given more than once: {quoted_names(twice)}")


def _unmatch_nested(classes, node_of_class, by_text, sdag):
    """Unmatch each class matched by text to an image-less ancestor of another class's node.

    A node without images of its own is labelled by its successors' images alone (Eq. 2),
    so a class matched there beside a class matched below it would be served by a label
    made of the other class's images ("nine" at digit.n.01 beside "one" at one.n.01): left
    unmatched, it goes to the general model or is reported. A node with images of its own
    (shirt.n.01 above jersey.n.03, the T-shirt) is a class of its own and keeps its match;
    nodes given by the user (classes not in ``by_text``) stay. Returns the reason per
    unmatched class; ``node_of_class`` is changed in place.
    """
    above = classes_above_others(node_of_class, sdag)
    reasons = {}
    for i in np.flatnonzero(above >= 0):
        if i not in by_text or sdag.n_images[node_of_class[i]] > 0:
            continue
        below = above[i]
        reasons[classes[i]] = (f"its nearest node {sdag.node_ids[node_of_class[i]]} has no "
                               f"images of its own and lies above {classes[below]!r}'s "
                               f"node {sdag.node_ids[node_of_class[below]]}")
    for c in reasons:
        node_of_class[classes.index(c)] = -1
    return reasons
