"""Semantic matching of task class names to SDAG nodes (Algorithm 1, line 4)."""

import numpy as np


def mutual_best_match(similarity, *, candidates=None, min_similarity=-1.0):
    """Keep a (class, node) pair only when each is the other's best match.

    Parameters
    ----------
    similarity : ndarray of shape (n_classes, n_nodes)
        Cosine similarities of class and node text embeddings (one matrix product).
    candidates : bool ndarray of shape (n_nodes,) or None
        Nodes that may be matched (e.g. those carrying a label); None allows all.
    min_similarity : float
        Pairs below this similarity are not kept.

    Returns
    -------
    nodes : int ndarray of shape (n_classes,)
        Matched node index per class, -1 when the class is unmatched.
    best : float ndarray of shape (n_classes,)
        Each class's best similarity among candidate nodes (reported even when unmatched).

    Examples
    --------
    >>> sim = np.array([[0.9, 0.2, 0.1], [0.8, 0.3, 0.7]])
    >>> nodes, best = mutual_best_match(sim)
    >>> nodes.tolist()   # class 1's best node (0) prefers class 0, so class 1 is unmatched
    [0, -1]
    """
    similarity = np.asarray(similarity)
    n_classes, n_nodes = similarity.shape
    if candidates is not None:
        similarity = np.where(np.asarray(candidates, bool)[None, :], similarity, -np.inf)
    if n_nodes == 0:
        return np.full(n_classes, -1), np.full(n_classes, -np.inf)
    best_node = similarity.argmax(axis=1)
    best = similarity[np.arange(n_classes), best_node]
    # Only the chosen columns need their best class: O(classes^2), not O(classes x nodes).
    mutual = similarity[:, best_node].argmax(axis=0) == np.arange(n_classes)
    keep = mutual & (best >= min_similarity) & np.isfinite(best)
    return np.where(keep, best_node, -1), best


def _name_variants(name):
    return {name.strip().lower().replace("_", " ").replace("-", " ")}


def node_names(text):
    """The comma-separated names on a node text's ``Name:`` line (lower case), else the text."""
    for line in text.splitlines():
        if line.startswith("Name:"):
            return {n.strip().lower().replace("_", " ").replace("-", " ")
                    for n in line[len("Name:"):].split(",") if n.strip()}
    return _name_variants(text)


def exact_name_matches(class_names, node_texts):
    """Boolean (n_classes, n_nodes): the class name is one of the node's names, verbatim.

    WordNet lemma names are the words people write as class names; an exact hit is stronger
    evidence than embedding similarity, which for short names often prefers a broader node
    ("zero" is closer to number.n.02 than to zero.n.02 for small encoders).

    Examples
    --------
    >>> exact_name_matches(["Sneaker", "boot"],
    ...                    ["Name: gym shoe, sneaker\\nDescription: ...", "Name: footwear"]).tolist()
    [[True, False], [False, False]]
    """
    names = [node_names(t) for t in node_texts]
    return np.array([[bool(_name_variants(c) & n) for n in names] for c in class_names],
                    dtype=bool).reshape(len(class_names), len(node_texts))
