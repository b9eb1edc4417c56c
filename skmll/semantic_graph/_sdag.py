"""The Semantic DAG (SDAG): semantic nodes, hypernym edges, node texts and representative images.

Step I of Model Label Learning pre-tests every expert on the images of each node and mixes the
results up the graph (Eq. 1-2); :class:`SemanticDAG` holds what that needs and streams the images
in bounded batches, so an SDAG of thousands of nodes backed by image files never sits in memory.
"""

import functools
import numbers
import os
from collections import deque
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from ..hub._images import as_image_batch, is_image_path
from ..utils import hash_array, hash_file, hash_json, new_hasher
from ._wordnet import load_wordnet, node_text, synset_for

_MIXED_SIZE_DEFAULT = (224, 224)  # files of differing sizes in one node are resized to this
MANIFEST_FORMAT = "skmll-sdag"
MANIFEST_VERSION = 1


def _read_only(array):
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def _check_image_size(image_size):
    """None, or a pair of positive ints ``(H, W)``."""
    if image_size is None:
        return None
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        raise ValueError(
            f"image_size must be None or (height, width) in pixels; got {image_size!r}")
    return tuple(int(s) for s in size)


def _check_array_images(node, images):
    """Validate one node's image array cheaply (rank, channels, dtype, range)."""
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            f"images of node {node!r} must have shape (n, H, W) or (n, H, W, C) with C in "
            f"(1, 3, 4); got shape {images.shape}"
        )
    if len(images) == 0:
        return None
    if 0 in images.shape[1:]:
        raise ValueError(f"images of node {node!r} are empty: shape {images.shape}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise ValueError(f"images of node {node!r} contain NaN or infinite values")
        if images.min() < 0 or images.max() > 1:
            raise ValueError(
                f"float images of node {node!r} must lie in [0, 1]; got values in "
                f"[{images.min():.3g}, {images.max():.3g}] (pass uint8, or divide by 255)"
            )
    elif images.dtype not in (np.uint8, np.bool_):
        raise TypeError(
            f"images of node {node!r} must be uint8 or float in [0, 1]; got dtype {images.dtype}"
        )
    return images


def _check_file_images(node, images):
    """Validate one node's list of image files: paths that exist."""
    if isinstance(images, (str, bytes, os.PathLike)):
        raise TypeError(
            f"images of node {node!r} must be an array or a list of file paths; got the single "
            f"path {images!r}"
        )
    try:
        paths = tuple(os.fsdecode(path) for path in images)
    except TypeError:
        raise TypeError(
            f"images of node {node!r} must be an ndarray (n, H, W[, C]) or a list of image file "
            f"paths; got {type(images).__name__}"
        ) from None
    missing = next((path for path in paths if not os.path.isfile(path)), None)
    if missing is not None:
        raise FileNotFoundError(f"image file {missing!r} of node {node!r} does not exist")
    return paths or None


def _check_images(node, images):
    """One node's images -> a read-only array, a tuple of file paths, or None (no images)."""
    if isinstance(images, np.ndarray):
        return _check_array_images(node, images)
    return _check_file_images(node, images)


def _batched(chunks, batch_size):
    """Regroup ``(images, node index)`` chunks into batches of at most ``batch_size`` images.

    A batch never mixes image shapes: the buffer is flushed when the shape changes.
    """
    images, owners, count = [], [], 0
    for chunk, index in chunks:
        if count and images[0].shape[1:] != chunk.shape[1:]:
            yield np.concatenate(images), np.concatenate(owners)
            images, owners, count = [], [], 0
        images.append(chunk)
        owners.append(np.full(len(chunk), index, dtype=np.int64))
        count += len(chunk)
        while count >= batch_size:
            merged, merged_owners = np.concatenate(images), np.concatenate(owners)
            yield merged[:batch_size], merged_owners[:batch_size]
            count -= batch_size
            images = [merged[batch_size:]] if count else []
            owners = [merged_owners[batch_size:]] if count else []
    if count:
        yield np.concatenate(images), np.concatenate(owners)


def _hypernyms(synset):
    return synset.hypernyms() + synset.instance_hypernyms()


def _hypernym_closure(synsets):
    """name -> synset for ``synsets`` and all their (instance) hypernym ancestors."""
    found = {synset.name(): synset for synset in synsets}
    stack = list(found.values())
    while stack:
        for parent in _hypernyms(stack.pop()):
            if parent.name() not in found:
                found[parent.name()] = parent
                stack.append(parent)
    return found


def _sample_images(images, max_per_node, rng):
    """At most ``max_per_node`` of a node's images, drawn with ``rng`` (original order kept)."""
    if not isinstance(images, np.ndarray):
        if isinstance(images, (str, bytes, os.PathLike)) or not hasattr(images, "__iter__"):
            return images  # invalid: left for the constructor to report
        images = list(images)
    if max_per_node is None or len(images) <= max_per_node:
        return images
    keep = np.sort(rng.choice(len(images), size=max_per_node, replace=False))
    return images[keep] if isinstance(images, np.ndarray) else [images[i] for i in keep]


class SemanticDAG:
    """Semantic nodes with representative images, linked hypernym -> hyponym.

    An immutable data object: build it once, then share it (``copy.deepcopy`` returns the same
    object, so scikit-learn's ``clone`` does not copy its images). Image arrays are kept by
    reference, not copied: do not modify them afterwards.

    Parameters
    ----------
    nodes : sequence of str
        Unique node ids; their order fixes the node indices.
    edges : iterable of (str, str), default=()
        ``(parent, child)`` pairs, both nodes; the graph must have no cycle.
    texts : mapping of str to str, default=None
        Text describing each node, for matching class names (default: the node id).
    data : mapping of str to images, default=None
        Representative images per node: an ndarray ``(n, H, W)`` or ``(n, H, W, C)`` with C in
        1, 3, 4 (uint8, or float in [0, 1]), or a list of image file paths, which are read only
        when iterated. Nodes absent from ``data`` have no images.
    image_size : (int, int), default=None
        Size ``(H, W)`` every image is resized to when iterated (None: native sizes).

    Attributes
    ----------
    node_ids, n_nodes, edges, texts, node_index, n_images, successor_matrix, has_data_below,
    data_hash, text_hash, image_size
        See the properties below.

    Examples
    --------
    >>> import numpy as np
    >>> from skmll import SemanticDAG
    >>> sdag = SemanticDAG(["shape", "round", "square"],
    ...                    edges=[("shape", "round"), ("shape", "square")],
    ...                    data={"round": np.zeros((3, 8, 8), np.uint8),
    ...                          "square": np.ones((2, 8, 8, 3), np.float32)})
    >>> sdag
    SemanticDAG(n_nodes=3, n_edges=2, n_nodes_with_images=2, n_images=5)
    >>> sdag.successors("shape"), sdag.heights().tolist()
    (['round', 'square'], [1, 0, 0])
    >>> [(images.shape, owners.tolist()) for images, owners in sdag.iter_batches(4)]
    [((4, 8, 8, 3), [1, 1, 1, 2]), ((1, 8, 8, 3), [2])]
    """

    def __init__(self, nodes, edges=(), texts=None, data=None, *, image_size=None):
        self._node_ids = self._check_nodes(nodes)
        self._node_index = {node: i for i, node in enumerate(self._node_ids)}
        self._edges = self._check_edges(edges)
        self._texts = self._check_texts(texts)
        self._images = self._check_data(data)
        self._image_size = _check_image_size(image_size)
        self._successors = [[] for _ in self._node_ids]
        self._predecessors = [[] for _ in self._node_ids]
        for parent, child in self._edges:
            self._successors[self._node_index[parent]].append(self._node_index[child])
            self._predecessors[self._node_index[child]].append(self._node_index[parent])
        self._order = self._sort_topologically()
        self._node_hashes = {}
        self._file_sizes = {}
        # node index -> (data hash, image count) of the images a manifest describes; None when
        # the images themselves are held (see from_manifest)
        self._described = None

    # -- construction ---------------------------------------------------------------------

    @staticmethod
    def _check_nodes(nodes):
        if isinstance(nodes, str):
            raise TypeError(f"nodes must be a sequence of str ids; got the single str {nodes!r}")
        node_ids = list(nodes)
        seen = set()
        for node in node_ids:
            if not isinstance(node, str):
                raise TypeError(f"node ids must be str; got {type(node).__name__} {node!r}")
            if node in seen:
                raise ValueError(f"node id {node!r} appears more than once")
            seen.add(node)
        return [str(node) for node in node_ids]

    def _check_edges(self, edges):
        unique = {}
        for edge in edges:
            try:
                parent, child = edge
            except (TypeError, ValueError):
                raise ValueError(
                    f"each edge must be a (parent, child) pair; got {edge!r}") from None
            where = f"edge {edge!r}"
            unique[(self._known(parent, where), self._known(child, where))] = None
        return list(unique)

    def _check_texts(self, texts):
        texts = dict(texts or {})
        for node, text in texts.items():
            self._known(node, "texts")
            if not isinstance(text, str):
                raise TypeError(
                    f"the text of node {node!r} must be a str; got {type(text).__name__}")
        return [texts.get(node, node) for node in self._node_ids]

    def _check_data(self, data):
        images = [None] * len(self._node_ids)
        for node, node_images in dict(data or {}).items():
            images[self._node_index[self._known(node, "data")]] = _check_images(node, node_images)
        return images

    def _known(self, node, where):
        """``node`` as a str id, or a ValueError saying where the unknown id came from."""
        if not isinstance(node, str) or node not in self._node_index:
            raise ValueError(f"{where} names {node!r}, which is not a node of the SDAG")
        return str(node)

    def _index_of(self, node_id):
        return self._node_index[self._known(node_id, "the argument")]

    def _sort_topologically(self):
        """Kahn's algorithm; a cycle is reported by one node on it."""
        indegree = [len(parents) for parents in self._predecessors]
        queue = deque(i for i, d in enumerate(indegree) if d == 0)
        order = []
        while queue:
            node = queue.popleft()
            order.append(node)
            for child in self._successors[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    queue.append(child)
        if len(order) < len(self._node_ids):
            node = self._node_on_cycle(indegree)
            raise ValueError(f"the edges contain a cycle through node {self._node_ids[node]!r}")
        return _read_only(np.array(order, dtype=np.int64))

    def _node_on_cycle(self, indegree):
        """Walk back through unsorted predecessors (each unsorted node has one) until a repeat."""
        node = next(i for i, d in enumerate(indegree) if d > 0)
        visited = set()
        while node not in visited:
            visited.add(node)
            node = next(p for p in self._predecessors[node] if indegree[p] > 0)
        return node

    @classmethod
    def from_wordnet(cls, data, *, max_per_node=50, random_state=0, image_size=None,
                     cache_dir=None, wordnet=None):
        """Build the SDAG of WordNet synsets that carry images, with all their ancestors.

        Parameters
        ----------
        data : mapping of str to images
            Synset names (``"gym_shoe.n.01"``) or ImageNet ids (``"n03472535"``) to images, as
            in the constructor's ``data``.
        max_per_node : int or None, default=50
            At most this many images are kept per node, sampled without replacement.
        random_state : int, RandomState instance or None, default=0
            Seeds the sampling (nodes are sampled in sorted name order, so the result does not
            depend on the order of ``data``).
        image_size : (int, int), default=None
            See the constructor.
        cache_dir : path, None or False, default=None
            Where the WordNet copy is kept (see :func:`load_wordnet`).
        wordnet : WordNetCorpusReader, default=None
            The WordNet reader (default: :func:`load_wordnet` of ``cache_dir``).

        Returns
        -------
        sdag : SemanticDAG
            Nodes are the synsets and all their hypernym and instance-hypernym ancestors,
            sorted by synset name; edges run hypernym -> hyponym; texts are :func:`node_text`.

        Examples
        --------
        >>> import numpy as np
        >>> from skmll import SemanticDAG
        >>> images = np.zeros((4, 8, 8), np.uint8)
        >>> sdag = SemanticDAG.from_wordnet({"sandal.n.01": images, "n03472535": images},
        ...                                 max_per_node=3)
        >>> sdag.successors("shoe.n.01"), int(sdag.n_images[sdag.node_index["sandal.n.01"]])
        (['gym_shoe.n.01', 'sandal.n.01'], 3)
        >>> print(sdag.texts[sdag.node_index["sandal.n.01"]])
        Name: sandal
        Description: a shoe consisting of a sole fastened by straps to the foot
        """
        if max_per_node is not None and (
                not isinstance(max_per_node, numbers.Integral) or max_per_node < 1):
            raise ValueError(f"max_per_node must be a positive int or None; got {max_per_node!r}")
        wordnet = load_wordnet(cache_dir) if wordnet is None else wordnet
        synsets, images, key_of = [], {}, {}
        for key, node_images in data.items():
            synset = synset_for(key, wordnet)
            name = synset.name()
            if name in key_of:
                raise ValueError(f"keys {key_of[name]!r} and {key!r} both name the synset {name!r}")
            key_of[name] = key
            synsets.append(synset)
            images[name] = node_images
        nodes = _hypernym_closure(synsets)
        rng = check_random_state(random_state)
        return cls(
            sorted(nodes),
            edges=[(parent.name(), name) for name in sorted(nodes)
                   for parent in _hypernyms(nodes[name])],
            texts={name: node_text(synset) for name, synset in nodes.items()},
            data={name: _sample_images(images[name], max_per_node, rng) for name in sorted(images)},
            image_size=image_size,
        )

    @classmethod
    def from_image_folder(cls, root, *, per_node=50, random_state=0, image_size=(224, 224),
                          cache_dir=None, wordnet=None):
        """Build a WordNet SDAG from an ImageNet-style folder ``root/<synset>/<image files>``.

        Parameters
        ----------
        root : path
            Holds one folder per synset, named by ImageNet id (``n03472535``) or synset name
            (``gym_shoe.n.01``); image files directly inside it (by extension) are its images.
        per_node : int or None, default=50
            Files kept per node, sampled with ``random_state``; they are read only when iterated.
        random_state : int, RandomState instance or None, default=0
        image_size : (int, int) or None, default=(224, 224)
            Size every image is resized to when iterated.
        cache_dir : path, None or False, default=None
        wordnet : WordNetCorpusReader, default=None
            See :meth:`from_wordnet`.

        Returns
        -------
        sdag : SemanticDAG

        Examples
        --------
        >>> from skmll import SemanticDAG
        >>> sdag = SemanticDAG.from_image_folder("imagenet/train")  # doctest: +SKIP
        """
        root = Path(root)
        if not root.is_dir():
            raise NotADirectoryError(f"image folder {str(root)!r} does not exist")
        data = {}
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for folder in folders:
            files = sorted(os.path.abspath(p) for p in folder.iterdir()
                           if p.is_file() and is_image_path(p))
            if files:
                data[folder.name] = files
        if not data:
            raise ValueError(f"{str(root)!r} holds no <synset folder>/<image file> pairs")
        return cls.from_wordnet(data, max_per_node=per_node, random_state=random_state,
                                image_size=image_size, cache_dir=cache_dir, wordnet=wordnet)

    def to_manifest(self):
        """The SDAG without its images, as a JSON-ready dict: what labels need of it.

        Node ids, edges, texts, ``image_size``, and for each node with images their count and
        data hash (:meth:`node_data_hash`, the key of that node's rows in a label store). A label
        directory keeps it beside the labels, so that another machine can match class names to
        nodes and read labels without the images (:meth:`from_manifest`).

        Returns
        -------
        manifest : dict
            ``{"format": "skmll-sdag", "version": 1, "nodes": [...], "edges": [...],
            "image_size": ..., "data_hash": ...}``; ``json.dumps`` writes it as it is.

        Examples
        --------
        >>> import json
        >>> import numpy as np
        >>> from skmll import SemanticDAG
        >>> sdag = SemanticDAG(["shape", "round"], edges=[("shape", "round")],
        ...                    data={"round": np.zeros((3, 8, 8), np.uint8)})
        >>> manifest = json.loads(json.dumps(sdag.to_manifest()))
        >>> [(node["id"], node["n_images"]) for node in manifest["nodes"]]
        [('shape', 0), ('round', 3)]
        >>> described = SemanticDAG.from_manifest(manifest)
        >>> described.data_hash == sdag.data_hash, described.n_images.tolist()
        (True, [0, 3])
        """
        nodes = []
        for node, text, count in zip(self._node_ids, self._texts, self.n_images):
            entry = {"id": node, "text": text, "n_images": int(count)}
            if count:
                entry["data_key"] = self.node_data_hash(node)
            nodes.append(entry)
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "nodes": nodes,
                "edges": [list(edge) for edge in self._edges],
                "image_size": None if self._image_size is None else list(self._image_size),
                "data_hash": self.data_hash}

    @classmethod
    def from_manifest(cls, manifest):
        """An SDAG that describes its images without holding them (see :meth:`to_manifest`).

        It has the node ids, edges, texts, image counts and data hashes of the SDAG the manifest
        was written from, so :class:`~skmll.ModelLabeler` finds that SDAG's stored labels with
        it and :class:`~skmll.MLLZeroShotClassifier` matches class names on it; reading its
        images (:meth:`iter_batches` of a node that has some: labelling an expert anew, or
        calibrating a general model's patch) raises a ValueError that says so.

        Parameters
        ----------
        manifest : dict
            As :meth:`to_manifest` returns it (or ``json.load`` reads it back).

        Returns
        -------
        sdag : SemanticDAG

        Raises
        ------
        ValueError
            When ``manifest`` is not a version-1 SDAG manifest, is malformed, or its data hash
            does not match its nodes' (an edited or damaged manifest).

        Examples
        --------
        >>> from skmll import SemanticDAG
        >>> sdag = SemanticDAG.from_manifest({
        ...     "format": "skmll-sdag", "version": 1, "edges": [["shape", "round"]],
        ...     "nodes": [{"id": "shape", "text": "Name: shape", "n_images": 0},
        ...               {"id": "round", "text": "Name: round", "n_images": 3,
        ...                "data_key": "4f1c"}]})
        >>> sdag
        SemanticDAG(n_nodes=2, n_edges=1, n_nodes_with_images=1, n_images=3, images_held=False)
        >>> sdag.node_data_hash("round"), sdag.has_data_below.tolist()
        ('4f1c', [True, True])
        """
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("not an SDAG manifest: expected a dict with "
                             f"format={MANIFEST_FORMAT!r} (SemanticDAG.to_manifest)")
        if manifest.get("version") != MANIFEST_VERSION:
            raise ValueError(f"SDAG manifest version {manifest.get('version')!r} is not "
                             f"{MANIFEST_VERSION}, the version this skmll reads")
        try:
            entries = [_manifest_node(entry) for entry in manifest["nodes"]]
            sdag = cls([node for node, _, _, _ in entries], edges=manifest.get("edges", ()),
                       texts={node: text for node, text, _, _ in entries},
                       image_size=manifest.get("image_size"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed SDAG manifest: {exc!r}") from None
        sdag._described = {i: (key, count) for i, (_, _, count, key) in enumerate(entries)
                           if count}
        recorded = manifest.get("data_hash")
        if recorded is not None and recorded != sdag.data_hash:
            raise ValueError("the SDAG manifest's data_hash does not match its nodes' data keys: "
                             "it was edited or damaged")
        return sdag

    # -- graph ----------------------------------------------------------------------------

    @property
    def node_ids(self):
        """list of str: the node ids, in index order (shared: do not modify)."""
        return self._node_ids

    @property
    def n_nodes(self):
        """int: the number of nodes."""
        return len(self._node_ids)

    @property
    def edges(self):
        """list of (str, str): the ``(parent, child)`` edges (shared: do not modify)."""
        return self._edges

    @property
    def texts(self):
        """list of str: each node's text, aligned with ``node_ids`` (shared: do not modify)."""
        return self._texts

    @property
    def node_index(self):
        """dict of str to int: each node id's index (shared: do not modify)."""
        return self._node_index

    @property
    def image_size(self):
        """(int, int) or None: the size images are resized to when iterated."""
        return self._image_size

    @property
    def successor_matrix(self):
        """scipy.sparse.csr_matrix (n_nodes, n_nodes): 1 at ``[parent, child]`` for each edge."""
        parents = [self._node_index[p] for p, _ in self._edges]
        children = [self._node_index[c] for _, c in self._edges]
        return sp.csr_matrix((np.ones(len(self._edges)), (parents, children)),
                             shape=(self.n_nodes, self.n_nodes))

    def successors(self, node_id):
        """Ids of the children (first-order successors) of ``node_id``."""
        return [self._node_ids[c] for c in self._successors[self._index_of(node_id)]]

    def predecessors(self, node_id):
        """Ids of the parents of ``node_id``."""
        return [self._node_ids[p] for p in self._predecessors[self._index_of(node_id)]]

    def topological_order(self):
        """Node indices with every parent before its children (read-only int64 array)."""
        return self._order

    @functools.cached_property
    def _heights(self):
        heights = np.zeros(self.n_nodes, dtype=np.int64)
        for node in self._order[::-1]:
            if self._successors[node]:
                heights[node] = 1 + max(heights[c] for c in self._successors[node])
        return _read_only(heights)

    def heights(self):
        """Longest path down to a leaf per node: 0 for leaves (read-only int64 array)."""
        return self._heights

    # -- data -----------------------------------------------------------------------------

    @functools.cached_property
    def n_images(self):
        """ndarray of int64 (n_nodes,): the number of images of each node (read-only)."""
        if self._described is not None:
            counts = [self._described.get(i, (None, 0))[1] for i in range(self.n_nodes)]
            return _read_only(np.array(counts, dtype=np.int64))
        counts = [0 if images is None else len(images) for images in self._images]
        return _read_only(np.array(counts, dtype=np.int64))

    @functools.cached_property
    def has_data_below(self):
        """ndarray of bool (n_nodes,): the node or one of its descendants has images."""
        below = self.n_images > 0
        for node in self._order[::-1]:
            below[node] |= any(below[c] for c in self._successors[node])
        return _read_only(below)

    def node_data_hash(self, node_id):
        """Content hash of a node's images (array bytes or file bytes) and of ``image_size``.

        Two SDAGs give a node the same hash exactly when iterating it yields the same images,
        so it keys cached forward passes. Computed once per node; an SDAG read from a manifest
        answers the hashes the manifest records.
        """
        index = self._index_of(node_id)
        if self._described is not None and index in self._described:
            return self._described[index][0]
        if index not in self._node_hashes:
            images = self._images[index]
            hasher = new_hasher()
            hasher.update(f"image_size={self._image_size}|".encode())
            if isinstance(images, np.ndarray):
                hasher.update(b"array|")
                hash_array(images, hasher)
            elif images is not None:
                hasher.update(b"files|")
                for path in images:
                    hasher.update(hash_file(path).encode())
            self._node_hashes[index] = hasher.hexdigest()
        return self._node_hashes[index]

    @functools.cached_property
    def data_hash(self):
        """str: content hash of every node's images (independent of the order of ``data``)."""
        return hash_json({node: self.node_data_hash(node)
                          for node, n in zip(self._node_ids, self.n_images) if n})

    @functools.cached_property
    def text_hash(self):
        """str: content hash of the node ids and their texts."""
        return hash_json(dict(zip(self._node_ids, self._texts)))

    def iter_batches(self, batch_size=64, nodes=None, image_size=None):
        """Stream the images of some nodes in batches, never holding more than two batches.

        Parameters
        ----------
        batch_size : int, default=64
            Most images per batch. Batches are smaller where the image shape changes.
        nodes : iterable of str, default=None
            The nodes to read, in this order (default: every node with images).
        image_size : (int, int), default=None
            Resize every image to ``(H, W)`` (default: the SDAG's ``image_size``; if that is
            None too, native sizes, except that a node whose files differ in size is resized
            to 224 x 224).

        Returns
        -------
        batches : iterator of (images, node_indices)
            ``images``: float32 ndarray ``(b, H, W, 3)`` in [0, 1], one shape per batch;
            ``node_indices``: int64 ndarray ``(b,)``, the node index of each image. Arguments
            are checked at the call; images are read as the iterator advances.
        """
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        image_size = _check_image_size(image_size) or self._image_size
        if nodes is None:
            indices = range(self.n_nodes)
        elif isinstance(nodes, str):
            raise TypeError(f"nodes must be a list of node ids; got the single str {nodes!r}")
        else:
            indices = dict.fromkeys(self._index_of(node) for node in nodes)  # drop repeats
        self._check_images_held(indices)
        chunks = ((chunk, index) for index in indices if self._images[index] is not None
                  for chunk in self._read_node(index, batch_size, image_size))
        return _batched(chunks, batch_size)

    def _check_images_held(self, indices):
        """Raise when a node to read has images that a manifest describes but nobody holds."""
        described = [i for i in indices if self._described and i in self._described]
        if described:
            raise ValueError(
                f"this SDAG was read from a manifest: it records {int(self.n_images[described[0]])}"
                f" image(s) of node {self._node_ids[described[0]]!r} (and {len(described) - 1} "
                "more node(s)) but holds none, so they cannot be read; build the SDAG from the "
                "images (SemanticDAG.from_image_folder, from_wordnet) to label new experts")

    def _read_node(self, index, chunk_size, image_size):
        """A node's images as float32 RGB chunks of at most ``chunk_size``, read on demand."""
        images, node = self._images[index], self._node_ids[index]
        if not isinstance(images, np.ndarray):
            image_size = image_size or self._files_size(index)
        for start in range(0, len(images), chunk_size):
            chunk = images[start:start + chunk_size]
            try:
                yield as_image_batch(chunk if isinstance(chunk, np.ndarray) else list(chunk),
                                     image_size=image_size, assume_channels_last=True)
            except ValueError as exc:
                raise ValueError(f"node {node!r}: {exc}") from exc

    def _files_size(self, index):
        """None when all of a node's files share one size, else the default 224 x 224.

        Reads only the file headers; remembered per node.
        """
        if index not in self._file_sizes:
            from PIL import Image

            sizes = set()
            for path in self._images[index]:
                try:
                    with Image.open(path) as image:
                        sizes.add(image.size)
                except OSError as exc:
                    raise ValueError(
                        f"image file {path!r} of node {self._node_ids[index]!r} could not be "
                        f"read: {exc}") from exc
            self._file_sizes[index] = None if len(sizes) == 1 else _MIXED_SIZE_DEFAULT
        return self._file_sizes[index]

    # -- object protocol ------------------------------------------------------------------

    def __deepcopy__(self, memo):
        return self  # immutable: sharing is safe, and copying could duplicate many images

    def __copy__(self):
        return self

    def __getstate__(self):
        # Pickle the content only: lazily computed caches would make two pickles of the same
        # SDAG differ (joblib.hash, sklearn's parameter checks) and are cheap to rebuild.
        cached = {name for name, value in vars(type(self)).items()
                  if isinstance(value, functools.cached_property)}
        state = {k: v for k, v in self.__dict__.items() if k not in cached}
        state["_node_hashes"], state["_file_sizes"] = {}, {}
        return state

    def __repr__(self):
        held = "" if self._described is None else ", images_held=False"
        return (f"{type(self).__name__}(n_nodes={self.n_nodes}, n_edges={len(self._edges)}, "
                f"n_nodes_with_images={int((self.n_images > 0).sum())}, "
                f"n_images={int(self.n_images.sum())}{held})")


def _manifest_node(entry):
    """``(id, text, n_images, data key or None)`` of one manifest node entry, checked."""
    node, text, count = entry["id"], entry["text"], entry["n_images"]
    key = entry.get("data_key")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise TypeError(f"node {node!r} has n_images={count!r}; expected an int >= 0")
    if bool(count) != isinstance(key, str):
        raise TypeError(f"node {node!r} has {count} image(s) and data_key={key!r}: a node with "
                        "images needs a str data key, one without has none")
    return node, text, count, key
