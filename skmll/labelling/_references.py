"""Reference images for the patch calibration: the SDAG's own, or the few per node that a
label directory keeps so that the patch can be calibrated where the SDAG's images are absent.

Both sources answer the same three questions (how many images a node has, what they are for
keying, and the images themselves), so the calibration reads either the same way.
"""

from pathlib import Path

import numpy as np

from ..utils import hash_json, load_record, save_record

# Images per SDAG node that a label directory keeps for calibrating where the SDAG's images are
# absent: 4 x 224 x 224 x 3 bytes = 0.6 MB per node, about 6.8 GB for the paper's 11k nodes.
REFERENCE_IMAGES_PER_NODE = 4
REFERENCES_FOLDER = "patch-references"
_INDEX = "index"
_NODES_PER_SHARD = 64


class NoReferenceImagesError(FileNotFoundError):
    """A label directory keeps no reference images for the patch calibration."""


def holds_images(sdag):
    """Whether ``sdag`` holds its images (one read from a label directory's manifest only
    describes them)."""
    return getattr(sdag, "_described", None) is None


class HeldImages:
    """The SDAG's own images of each node."""

    def __init__(self, sdag):
        self._sdag = sdag

    def count(self, node):
        return int(self._sdag.n_images[self._sdag.node_index[node]])

    def key(self, node):
        return self._sdag.node_data_hash(node)

    def batches(self, nodes):
        """Each node's images, one float32 array per node, in the order given."""
        for node in nodes:
            yield np.concatenate([images for images, _ in self._sdag.iter_batches(nodes=[node])])


class StoredReferenceImages:
    """The reference images a label directory keeps for the patch calibration.

    :func:`save_reference_images` writes them when the directory is written; they stand in for
    the SDAG's images where a label directory is opened without them. Each shard of nodes is a
    checksummed record of plain uint8 arrays (no pickle); an index record lists the shards.

    Parameters
    ----------
    directory : path
        A label directory.
    sdag : SemanticDAG
        The SDAG the directory describes: every node's stored images must come from the
        images this SDAG records for it (the same data key).

    Raises
    ------
    FileNotFoundError
        When the directory keeps no reference images (written before they were kept, or its
        index is damaged: a warning then says why).
    """

    def __init__(self, directory, sdag):
        self._folder = Path(directory) / REFERENCES_FOLDER
        index = load_record(self._folder, _INDEX) if self._folder.is_dir() else None
        if index is None:
            raise NoReferenceImagesError(
                f"label directory {str(directory)!r} keeps no reference images for the patch "
                "calibration (written by an skmll that did not keep them): write it again from "
                "the SDAG's images (skmll label), or pass patch_calibration=None for the "
                "paper's rule")
        self._where = {}
        for shard in index[1]["shards"]:
            for position, (node, data_key, count) in enumerate(shard["nodes"]):
                self._where[node] = (shard["key"], position, data_key, count)
        self._sdag = sdag

    def count(self, node):
        """Images kept for ``node`` (0 for a node without images); refused when they were
        drawn from other images than those the SDAG records for it."""
        if node not in self._where:
            return 0
        _, _, data_key, count = self._where[node]
        if data_key != self._sdag.node_data_hash(node):
            raise ValueError(f"the reference images kept for node {node!r} in "
                             f"{str(self._folder)!r} come from other images than the SDAG's: "
                             "write the label directory again")
        return count

    def key(self, node):
        """What the kept images of ``node`` are, for keying the general model's outputs."""
        _, _, data_key, count = self._where[node]
        return f"{data_key}:kept {count}"

    def batches(self, nodes):
        """Each node's kept images, one float32 array in [0, 1] per node, in the order given;
        each shard is read once."""
        by_shard = {}
        for node in nodes:
            by_shard.setdefault(self._where[node][0], []).append(node)
        kept = {}
        for shard, members in by_shard.items():
            arrays = self._shard(shard)
            kept.update({node: arrays[f"node_{self._where[node][1]}"] for node in members})
        for node in nodes:
            yield kept[node].astype(np.float32) / 255.0

    def _shard(self, key):
        record = load_record(self._folder, key)
        if record is None:
            raise FileNotFoundError(f"reference-image record {key!r} in {str(self._folder)!r} "
                                    "is missing or damaged: write the label directory again")
        return record[0]


def _shard_arrays(sdag, nodes, per_node, image_size):
    arrays = {}
    for position, node in enumerate(nodes):
        batches = sdag.iter_batches(batch_size=per_node, nodes=[node], image_size=image_size)
        images, _ = next(iter(batches))   # the node's first files: a random sample already
        arrays[f"node_{position}"] = np.round(images * 255).astype(np.uint8)
    return arrays


def save_reference_images(sdag, directory, *, per_node=REFERENCE_IMAGES_PER_NODE):
    """Keep up to ``per_node`` images of every SDAG node with images in a label directory.

    What the patch calibration needs where the directory is opened without the SDAG's images
    (:class:`StoredReferenceImages`): ``DIR/patch-references/``, records of uint8 arrays as the
    SDAG yields them (at its image size), in shards of nodes, each with its own checksum.
    Pixels are kept in 8 bits after the SDAG's resize, so they lie within half a grey level
    (0.5 / 255) of what the SDAG yields. Shards already kept for the same images are not
    written again. An SDAG that holds no images (read from a manifest) keeps what the
    directory has.

    Parameters
    ----------
    sdag : SemanticDAG
    directory : path
    per_node : int, default=REFERENCE_IMAGES_PER_NODE

    Returns
    -------
    n_bytes : int
        The size of the images kept (0 when nothing was written).

    Examples
    --------
    >>> import tempfile
    >>> from skmll import SemanticDAG
    >>> sdag = SemanticDAG(["thing", "dark"], edges=[("thing", "dark")],
    ...                    data={"dark": np.zeros((6, 8, 8), np.uint8)})
    >>> folder = tempfile.mkdtemp()
    >>> save_reference_images(sdag, folder, per_node=4)
    768
    >>> StoredReferenceImages(folder, sdag).count("dark")
    4
    """
    if not holds_images(sdag):
        return 0
    folder = Path(directory) / REFERENCES_FOLDER
    image_size = sdag.image_size   # None: each node as the SDAG yields it (one size per node)
    nodes = [sdag.node_ids[n] for n in np.flatnonzero(sdag.n_images > 0)]
    shards, n_bytes = [], 0
    for start in range(0, len(nodes), _NODES_PER_SHARD):
        chunk = nodes[start:start + _NODES_PER_SHARD]
        key = hash_json(["patch-references", [sdag.node_data_hash(n) for n in chunk], per_node,
                         image_size])
        record = load_record(folder, key) if (folder / f"{key}.json").is_file() else None
        arrays = record[0] if record is not None else _shard_arrays(sdag, chunk, per_node,
                                                                     image_size)
        if record is None:
            save_record(folder, key, arrays, {"nodes": chunk})
        counts = [len(arrays[f"node_{i}"]) for i in range(len(chunk))]
        n_bytes += sum(a.nbytes for a in arrays.values())
        shards.append({"key": key, "nodes": [[n, sdag.node_data_hash(n), c]
                                             for n, c in zip(chunk, counts)]})
    save_record(folder, _INDEX, {}, {"shards": shards})   # last: it names only whole shards
    return n_bytes
