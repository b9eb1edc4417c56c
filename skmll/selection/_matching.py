"""Semantic matching of task class names to SDAG nodes (Algorithm 1, line 4).

Class names are compared with node names in their dictionary forms: lower case, separators as
spaces, possessives dropped, and each word reduced to its noun dictionary forms by WordNet's
morphology ("Ankle-Boots" -> "ankle boot"). The same normal form is applied to node names, so
SDAGs with texts of their own (not from WordNet) are compared in the same way.
"""

import functools
import itertools
import re
import unicodedata
import warnings

import numpy as np

# Alternatives within one name: "T-shirt/top", or a lemma list such as "tabby, tabby cat".
_ALTERNATIVES = re.compile(r"[,/;]")
_POSSESSIVE = re.compile(r"(?<=\w)'s\b|(?<=s)'(?!\w)")
_NOT_A_WORD = re.compile(r"[^\w']|_")
# A name of n words each with several analyses has exponentially many forms; names are short,
# and the first few combinations already hold the likely ones.
_MAX_FORMS_PER_NAME = 16


def mutual_best_match(similarity, *, candidates=None, min_similarity=-1.0):
    """Keep a (class, node) pair only when each is the other's best match.

    This is the paper's rule (Algorithm 1, line 4), one round.

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
    if n_nodes == 0 or n_classes == 0:
        return np.full(n_classes, -1), np.full(n_classes, -np.inf)
    best_node = similarity.argmax(axis=1)
    best = similarity[np.arange(n_classes), best_node]
    # Only the chosen columns need their best class: O(classes^2), not O(classes x nodes).
    mutual = similarity[:, best_node].argmax(axis=0) == np.arange(n_classes)
    keep = mutual & (best >= min_similarity) & np.isfinite(best)
    return np.where(keep, best_node, -1), best


def normalise_name(name):
    """A name in plain normal form: lower case, separators as single spaces, no possessives.

    Hyphens, underscores and punctuation become spaces and the possessive ``'s`` is dropped, so
    "T-Shirt", "t_shirt" and "T shirt" agree. Words keep their inflection: see
    :func:`dictionary_forms`.

    Parameters
    ----------
    name : str

    Returns
    -------
    str

    Examples
    --------
    >>> normalise_name("  Men's  Running-Shoes ")
    'men running shoes'
    """
    name = unicodedata.normalize("NFKC", name).replace("\u2019", "'").casefold()
    name = _NOT_A_WORD.sub(" ", _POSSESSIVE.sub("", name))
    return " ".join(name.replace("'", "").split())


@functools.lru_cache(maxsize=None)
def _wordnet_reader():
    """WordNet when installed, else None (with a warning: names are then compared as written)."""
    from ..semantic_graph import load_wordnet

    try:
        return load_wordnet()
    except LookupError as exc:
        warnings.warn(f"class names are compared without WordNet's morphology ({exc})",
                      UserWarning, stacklevel=3)
        return None


@functools.lru_cache(maxsize=2**18)
def wordnet_noun_forms(word):
    """WordNet's noun dictionary forms of one word, in WordNet's order (nltk's morphy).

    A word WordNet has as a noun comes back as itself first, then any other analysis
    ("glasses" is also the plural of "glass"); a word it does not know as a noun gives an empty
    tuple. Without WordNet installed, every word gives an empty tuple.

    Parameters
    ----------
    word : str
        One word, in plain normal form (:func:`normalise_name`).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> wordnet_noun_forms("boots"), wordnet_noun_forms("glasses"), wordnet_noun_forms("swiftly")
    (('boot',), ('glasses', 'glass'), ())
    """
    reader = _wordnet_reader()
    if reader is None:
        return ()
    # morphy returns only the first analysis; "pants" has two (itself and "pant").
    analyse = getattr(reader, "_morphy", None)
    if analyse is None:  # pragma: no cover - every nltk 3 reader has it
        first = reader.morphy(word, "n")
        return () if first is None else (first,)
    return tuple(dict.fromkeys(form.replace("_", " ") for form in analyse(word, "n")))


def _resolve_morphology(morphology):
    if morphology == "wordnet":
        return wordnet_noun_forms
    if morphology is None:
        return lambda word: ()
    if callable(morphology):
        return morphology
    raise ValueError(f"morphology must be 'wordnet', a callable or None; got {morphology!r}")


def _alternative_forms(plain, morphology):
    """Forms of one alternative: as written, then each word in its dictionary forms."""
    options = [tuple(morphology(word)) or (word,) for word in plain.split()]
    combined = (" ".join(words) for words in itertools.product(*options))
    return [plain, *itertools.islice(combined, _MAX_FORMS_PER_NAME)]


def dictionary_forms(name, *, morphology="wordnet"):
    """Every normal form of a name: as written, and with each word in its dictionary forms.

    A name may hold alternatives separated by ``,``, ``/`` or ``;`` ("T-shirt/top"); each
    contributes its forms. A hyphen is read both as a space and as joining two parts into one
    word. Two names denote the same word when their forms intersect.

    Parameters
    ----------
    name : str
    morphology : "wordnet", callable or None, default="wordnet"
        How a word (in plain normal form) is reduced to its dictionary forms: "wordnet" uses
        :func:`wordnet_noun_forms` (plain normalisation alone, with a warning, when WordNet is
        not installed); a callable maps a word to its forms (an empty result keeps the word);
        None compares names in plain normal form only (:func:`normalise_name`).

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> sorted(dictionary_forms("Ankle-Boots"))
    ['ankle boot', 'ankle boots', 'ankleboots']
    >>> sorted(dictionary_forms("T-shirts/tops", morphology=None))
    ['t shirts', 'tops', 'tshirts']
    """
    morphology = _resolve_morphology(morphology)
    forms = set()
    for alternative in _ALTERNATIVES.split(name):
        # A hyphen may join one word ("day-time" is "daytime") or separate two ("T-shirt").
        for plain in {normalise_name(alternative), normalise_name(alternative.replace("-", ""))}:
            if plain:
                forms.update(_alternative_forms(plain, morphology))
    return frozenset(forms)


def dictionary_form(name, *, morphology="wordnet"):
    """A name as one text in dictionary form: each word in its first WordNet noun form.

    WordNet's first form of a word it knows as a noun is the word itself ("shoes" is a lemma,
    for a place one stands in), so only words it knows only inflected are reduced.

    Alternatives (``,``, ``/``, ``;``) are kept, joined by ", ". This is the text a class name
    can be embedded as, so that "Ankle-Boots" and "ankle boot" read alike to the encoder.

    Parameters
    ----------
    name : str
    morphology : "wordnet", callable or None, default="wordnet"
        As in :func:`dictionary_forms`.

    Returns
    -------
    str

    Examples
    --------
    >>> dictionary_form("Ankle-Boots"), dictionary_form("T-Shirts/Tops")
    ('ankle boot', 't shirt, top')
    """
    morphology = _resolve_morphology(morphology)
    alternatives = (normalise_name(part) for part in _ALTERNATIVES.split(name))
    return ", ".join(" ".join((tuple(morphology(word)) or (word,))[0] for word in plain.split())
                     for plain in alternatives if plain)


def node_names(text):
    """The names a node text gives: the comma-separated ``Name:`` line, else the whole text.

    Examples
    --------
    >>> node_names("Name: gym shoe, sneaker\\nDescription: a canvas shoe")
    ['gym shoe', 'sneaker']
    """
    for line in text.splitlines():
        if line.startswith("Name:"):
            return [n.strip() for n in line[len("Name:"):].split(",") if n.strip()]
    return [text]


def exact_name_matches(class_names, node_texts, *, candidates=None, morphology="wordnet"):
    """Boolean (n_classes, n_nodes): the class name is one of the node's names.

    Names are compared in their dictionary forms (:func:`dictionary_forms`), so "Boots" is a
    name of a node named "boot" and "T-Shirts" of one named "T-shirt". WordNet lemma names are
    the words people write as class names: such a hit is stronger evidence than embedding
    similarity, which for short names often prefers a broader node ("zero" is closer to
    number.n.02 than to zero.n.02 for small encoders).

    Parameters
    ----------
    class_names : list of str
    node_texts : list of str
        Node texts; their names are read by :func:`node_names`.
    candidates : bool ndarray of shape (n_nodes,) or None
        Only these nodes are compared (the others are False); None compares all.
    morphology : "wordnet", callable or None, default="wordnet"
        As in :func:`dictionary_forms`; None compares plain normal forms only.

    Returns
    -------
    ndarray of bool, shape (n_classes, n_nodes)

    Examples
    --------
    >>> texts = ["Name: gym shoe, sneaker\\nDescription: ...", "Name: footwear"]
    >>> exact_name_matches(["Sneakers", "boot"], texts).tolist()
    [[True, False], [False, False]]
    """
    hits = np.zeros((len(class_names), len(node_texts)), dtype=bool)
    class_forms = [dictionary_forms(c, morphology=morphology) for c in class_names]
    wanted = frozenset().union(*class_forms)
    compared = (range(len(node_texts)) if candidates is None
                else np.flatnonzero(np.asarray(candidates, bool)))
    for j in compared:
        forms = _node_forms(node_texts[j], morphology)
        if forms & wanted:
            hits[:, j] = [bool(forms & own) for own in class_forms]
    return hits


@functools.lru_cache(maxsize=2**17)
def _node_forms(text, morphology):
    """All dictionary forms of a node's names; remembered, since every fit reads every node
    (seconds for the 82,115 WordNet noun synsets, under 0.1 s once remembered)."""
    return frozenset().union(*(dictionary_forms(name, morphology=morphology)
                               for name in node_names(text)))


def match_classes(similarity, name_hits=None, *, candidates=None, name_bonus=0.25,
                  min_similarity=-1.0):
    """Match classes to nodes: names first, then the paper's mutual best match on the rest.

    With ``name_bonus > 0``:

    1. A class that names exactly one candidate node (the node has the class name among its
       names) takes it, unless another class names that node alone too. This is repeated: a
       class that named two nodes names one once the other is taken.
    2. Every other class takes its best node among those left, by ``similarity`` plus
       ``name_bonus`` where the class names the node, if that node scores it highest of all
       the task's classes (those matched in step 1 included).

    A node thus goes by similarity only to the class it is closest to: a class name that is
    no node's name and whose nearest node is nearer to another class ("volcano" among digit
    names, nearest to the root entity.n.01) stays unmatched, for the general model to serve.
    A class whose best node another class names does get its next node, when that node
    scores it highest. Two classes never share a node. A pair whose similarity is below
    ``min_similarity`` is never matched.

    With ``name_bonus=0`` the names are ignored and this is the paper's rule: one round of
    :func:`mutual_best_match` on ``similarity``, the floor applied to the pairs it keeps.

    Parameters
    ----------
    similarity : ndarray of shape (n_classes, n_nodes)
        Cosine similarities of class and node text embeddings.
    name_hits : bool ndarray of shape (n_classes, n_nodes) or None
        Where the class name is one of the node's names (:func:`exact_name_matches`); None or
        ``name_bonus=0``: no name evidence.
    candidates : bool ndarray of shape (n_nodes,) or None
        Nodes that may be matched (e.g. those carrying a label); None allows all.
    name_bonus : float, default=0.25
        Added to the similarity of the nodes a class names, in step 2.
    min_similarity : float, default=-1.0
        Pairs with lower similarity are left unmatched.

    Returns
    -------
    nodes : int ndarray of shape (n_classes,)
        Matched node index per class, -1 when the class is unmatched.

    Examples
    --------
    Class 0 ("trash can") names node 0 and takes it; class 1 ("recycling bin") is nearer to
    node 0 but takes node 1, which is nearer to it than to class 0. The paper's rule gives node
    0 to class 1 and leaves class 0 unmatched:

    >>> sim = np.array([[0.58, 0.3], [0.63, 0.5]])
    >>> hits = np.array([[True, False], [False, False]])
    >>> match_classes(sim, hits).tolist()
    [0, 1]
    >>> match_classes(sim, hits, name_bonus=0).tolist()
    [-1, 0]
    """
    similarity = np.asarray(similarity, dtype=float)
    if candidates is None:
        candidates = np.ones(similarity.shape[1], dtype=bool)
    candidates = np.asarray(candidates, dtype=bool)
    if name_bonus == 0:
        return mutual_best_match(similarity, candidates=candidates,
                                 min_similarity=min_similarity)[0]
    allowed = candidates[None, :] & (similarity >= min_similarity)
    hits = allowed & (False if name_hits is None else np.asarray(name_hits, dtype=bool))
    nodes = _take_sole_names(hits)
    score = np.where(allowed, similarity + name_bonus * hits, -np.inf)
    _mutual_among_all_classes(score, nodes)
    return nodes


def _take_sole_names(hits):
    """Step 1 of :func:`match_classes`: sole name hits, repeated as nodes are taken."""
    nodes = np.full(hits.shape[0], -1)
    hits = hits.copy()
    while True:
        sole = hits.sum(axis=1) == 1
        node_of = hits.argmax(axis=1)
        claims = np.bincount(node_of[sole], minlength=hits.shape[1])
        take = np.flatnonzero(sole & (claims[node_of] == 1))
        if len(take) == 0:
            return nodes
        nodes[take] = node_of[take]
        hits[take] = False
        hits[:, node_of[take]] = False


def _mutual_among_all_classes(score, nodes):
    """Step 2 of :func:`match_classes`: each unmatched class's best free node, kept when the
    node scores that class highest of all classes (the first on ties)."""
    free = np.flatnonzero(nodes < 0)
    taken = nodes[nodes >= 0]
    if len(free) == 0 or len(taken) == score.shape[1]:
        return
    free_score = score[free]
    free_score[:, taken] = -np.inf
    wanted = free_score.argmax(axis=1)
    keep = np.isfinite(free_score[np.arange(len(free)), wanted])
    keep &= score[:, wanted].argmax(axis=0) == free
    nodes[free[keep]] = wanted[keep]


def classes_above_others(nodes, sdag):
    """For each class, another class whose matched node lies strictly below its own node.

    Classes of one task exclude each other; a class matched to an ancestor of another class's
    node ("nine" to digit.n.01 beside "one" at one.n.01, when nine's own synset has no images)
    is read through a label dominated by the other class's images and cannot be told from it.

    Parameters
    ----------
    nodes : int array-like of shape (n_classes,)
        Matched node index per class, -1 when unmatched.
    sdag : SemanticDAG

    Returns
    -------
    ndarray of int, shape (n_classes,)
        The index of one class matched below each class's node, -1 where there is none.

    Examples
    --------
    >>> from skmll import SemanticDAG
    >>> sdag = SemanticDAG(["digit", "one", "two"], edges=[("digit", "one"), ("digit", "two")])
    >>> classes_above_others([0, 1, -1], sdag).tolist()
    [1, -1, -1]
    """
    nodes = np.asarray(nodes, dtype=int)
    owner = {int(n): i for i, n in enumerate(nodes) if n >= 0}
    above = np.full(len(nodes), -1)
    for j, node in enumerate(nodes):
        if node < 0:
            continue
        # Walk up from the node: ancestors are few, descendants of a broad node are many.
        stack, seen = [sdag.node_ids[node]], set()
        while stack:
            for parent in sdag.predecessors(stack.pop()):
                if parent in seen:
                    continue
                seen.add(parent)
                stack.append(parent)
                i = owner.get(sdag.node_index[parent])
                if i is not None and above[i] < 0:
                    above[i] = j
    return above
