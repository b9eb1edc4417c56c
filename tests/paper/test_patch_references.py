"""The reference images a label directory keeps for the patch calibration (``--labels`` runs)."""

import numpy as np
import pytest

from skmll import SemanticDAG
from skmll.labelling import StoredReferenceImages, save_reference_images
from skmll.utils import CorruptRecordWarning


def _sdag(rng, sizes={"maple": (5, 11, 9), "oak": (2, 6, 14)}):
    """Two leaves of different native sizes under one root; arrays, no resize."""
    data = {node: rng.integers(0, 256, size, dtype=np.uint8) for node, size in sizes.items()}
    return SemanticDAG(["tree", *sizes], edges=[("tree", n) for n in sizes], data=data)


def test_each_node_keeps_at_most_per_node_images_at_its_own_size(tmp_path):
    sdag = _sdag(np.random.default_rng(3))
    n_bytes = save_reference_images(sdag, tmp_path, per_node=3)
    kept = StoredReferenceImages(tmp_path, sdag)
    assert (kept.count("maple"), kept.count("oak"), kept.count("tree")) == (3, 2, 0)
    maple, oak = kept.batches(["maple", "oak"])
    expected = {node: np.concatenate([i for i, _ in sdag.iter_batches(nodes=[node])])
                for node in ("maple", "oak")}
    np.testing.assert_array_equal(maple, expected["maple"][:3])   # arrays: kept exactly
    np.testing.assert_array_equal(oak, expected["oak"])
    assert maple.shape == (3, 11, 9, 3) and oak.shape == (2, 6, 14, 3)
    assert n_bytes == 3 * 11 * 9 * 3 + 2 * 6 * 14 * 3


def _shards(folder):
    return sorted(p for p in (folder / "patch-references").glob("*.npz")
                  if not p.name.startswith("index."))


def test_writing_again_keeps_the_shards_already_kept(tmp_path):
    sdag = _sdag(np.random.default_rng(4))
    save_reference_images(sdag, tmp_path)
    shards = _shards(tmp_path)
    stamps = [path.stat().st_mtime_ns for path in shards]
    save_reference_images(sdag, tmp_path)   # the index is written again, the shard is not
    assert _shards(tmp_path) == shards and len(shards) == 1
    assert [path.stat().st_mtime_ns for path in shards] == stamps


def test_images_kept_from_other_images_are_refused(tmp_path):
    save_reference_images(_sdag(np.random.default_rng(5)), tmp_path)
    other = _sdag(np.random.default_rng(6))   # same nodes, other images
    kept = StoredReferenceImages(tmp_path, other)
    with pytest.raises(ValueError, match="node 'maple' .* come from other images"):
        kept.count("maple")


def test_a_damaged_shard_is_named(tmp_path):
    sdag = _sdag(np.random.default_rng(7))
    save_reference_images(sdag, tmp_path)
    _shards(tmp_path)[0].write_bytes(b"not an npz")
    kept = StoredReferenceImages(tmp_path, sdag)
    with pytest.warns(CorruptRecordWarning), pytest.raises(FileNotFoundError,
                                                           match="missing or damaged"):
        list(kept.batches(["oak"]))


def test_a_directory_without_them_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="keeps no reference images .* "
                                                "patch_calibration=None"):
        StoredReferenceImages(tmp_path, _sdag(np.random.default_rng(8)))
