"""The zoo's store: growth by appending only, readers beside a writer, what a segment may hold,
what a damaged one is caught by, what input is refused, and the precision labels keep.

Nodes here are harbour words (not the benchmark's), experts have 1 to 70,000 heads.
"""

import json
import multiprocessing
import os
import shutil

import numpy as np
import pytest

from skmll.selection import TaskMatch
from skmll.zoo import ZooStore, decode_rows, encode_rows, search_zoo, stored_probabilities

h5py = pytest.importorskip("h5py")

NODES = ["quay.n.01", "pier.n.01", "jetty.n.01", "buoy.n.01", "anchor.n.01", "hull.n.01",
         "mast.n.01"]


def rows(seed, n_heads, n_nodes=len(NODES)):
    """Head distributions on every node, each node favouring some heads."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n_heads, 0.3), size=n_nodes)


def experts(prefix, heads, seed=0):
    return [(f"{prefix}{i}", rows(seed + i, h)) for i, h in enumerate(heads)]


@pytest.fixture
def zoo(tmp_path):
    store = ZooStore.create(tmp_path / "zoo", NODES)
    store.append(experts("skiff-", [1, 4, 9, 100]))
    return store


def segment_files(root):
    return {path.name: path.read_bytes() for path in (root / "segments").iterdir()}


def all_columns(store):
    return store.problems(np.arange(len(NODES)), np.arange(store.n_experts))


def task(classes_nodes):
    nodes = np.array([NODES.index(n) for n in classes_nodes])
    return TaskMatch([n.split(".")[0] for n in classes_nodes], nodes, np.ones(len(nodes)),
                     list(classes_nodes))


def picks(selection):
    return {c: [name for name, _, _ in served] for c, served in selection.experts.items()}


# --- growth ---------------------------------------------------------------------------------

def test_appending_never_rewrites_a_segment_and_refuses_taken_names(zoo):
    before = segment_files(zoo.root)
    zoo.append(experts("ketch-", [3, 70], seed=10))
    after = segment_files(zoo.root)
    assert len(after) == 2 and {name: after[name] for name in before} == before
    assert zoo.names == ["skiff-0", "skiff-1", "skiff-2", "skiff-3", "ketch-0", "ketch-1"]
    assert zoo.n_heads.tolist() == [1, 4, 9, 100, 3, 70]

    with pytest.raises(ValueError, match="the zoo has an expert named 'skiff-2' already"):
        zoo.append([("yawl", rows(1, 2)), ("skiff-2", rows(2, 2))])
    with pytest.raises(ValueError, match="named 'yawl' already"):
        zoo.append([("yawl", rows(1, 2)), ("yawl", rows(2, 3))])
    assert segment_files(zoo.root) == after and ZooStore(zoo.root).n_experts == 6
    zoo.append([])                                    # nothing to add: no segment
    assert segment_files(zoo.root) == after


def _append_in_turn(root, batches, appended, resume):
    """A writer in another process: one segment per batch, reported after each; the next
    once told to go on."""
    writer = ZooStore(root)
    for batch in batches:
        writer.append(batch)
        appended.put(len(writer.names))
        resume.get(timeout=120)


def test_a_reader_keeps_its_snapshot_while_another_process_appends(zoo):
    reader = ZooStore(zoo.root)
    columns = all_columns(reader)
    question = task(["pier.n.01", "buoy.n.01", "mast.n.01"])
    chosen = picks(search_zoo(reader, question, k=2))
    batches = [experts(f"dory{b}-", [2, 5, 80], seed=100 + 10 * b) for b in range(3)]
    context = multiprocessing.get_context("spawn")
    appended, resume = context.Queue(), context.Queue()
    writer = context.Process(target=_append_in_turn,
                             args=(str(zoo.root), batches, appended, resume))
    writer.start()
    try:
        for b in range(3):
            assert appended.get(timeout=120) == 4 + 3 * (b + 1)
            assert reader.n_experts == 4                              # the snapshot holds
            for old, new in zip(columns, all_columns(reader)):
                np.testing.assert_array_equal(old, new)
            assert picks(search_zoo(reader, question, k=2)) == chosen
            assert ZooStore(zoo.root).n_experts == 4 + 3 * (b + 1)    # a new reader sees more
            resume.put(True)
    finally:
        writer.join(timeout=120)
        if writer.is_alive():
            writer.terminate()
    assert writer.exitcode == 0
    reader.refresh()
    assert reader.names[:4] == zoo.names and reader.n_experts == 13
    assert reader.names[-3:] == ["dory2-0", "dory2-1", "dory2-2"]
    for old, new in zip(columns, all_columns(reader)[:4]):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(all_columns(reader)[12].T, _normalised(batches[2][2][1]),
                               rtol=2**-10)


def _normalised(probabilities, max_dense=None):
    stored = stored_probabilities(probabilities, max_dense)
    return stored / stored.sum(axis=1, keepdims=True)


# --- what a segment may hold ----------------------------------------------------------------

def _rewrite_segment(root, edit):
    """Apply ``edit(file)`` to the zoo's one segment, the manifest updated to match (as a
    crafted zoo would be), so only the segment's content can be refused."""
    manifest = json.loads((root / "zoo.json").read_text())
    entry = manifest["segments"][0]
    with h5py.File(root / entry["file"], "a") as file:
        edit(file)
    _restamp(root, manifest, entry, root / entry["file"])


def _restamp(root, manifest, entry, path):
    from skmll.zoo._store import _sha256

    entry.update(bytes=path.stat().st_size, sha256=_sha256(path))
    (root / "zoo.json").write_text(json.dumps(manifest))


def _external_link(tmp_path):
    with h5py.File(tmp_path / "elsewhere.h5", "w") as other:
        other["dense"] = np.zeros((len(NODES), 14), np.float16)

    def edit(file):
        del file["dense"]
        file["dense"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/dense")
    return edit, "'dense' is a link to elsewhere"


def _soft_link(tmp_path):
    def edit(file):
        file.move("floor", "hidden_floor")
        file["floor"] = h5py.SoftLink("/hidden_floor")
    return edit, "'floor' is a link to elsewhere"


def _virtual_dataset(tmp_path):
    with h5py.File(tmp_path / "source.h5", "w") as other:
        other["index_d"] = np.full((len(NODES), 4), 255, np.uint8)

    def edit(file):
        del file["index_d"]
        layout = h5py.VirtualLayout(shape=(len(NODES), 4), dtype=np.uint8)
        layout[:] = h5py.VirtualSource(str(tmp_path / "source.h5"), "index_d",
                                       shape=(len(NODES), 4))
        file.create_virtual_dataset("index_d", layout)
    return edit, "'index_d' is not a plain dataset"


def _external_dataset(tmp_path):
    (tmp_path / "raw.bin").write_bytes(bytes(len(NODES) * 4 * 4))

    def edit(file):
        del file["index_order"]
        file.create_dataset("index_order", shape=(len(NODES), 4), dtype=np.uint32,
                            external=[(str(tmp_path / "raw.bin"), 0, len(NODES) * 4 * 4)])
    return edit, "'index_order' is not a plain dataset"


def _plug_in_filter(tmp_path):
    def edit(file):
        del file["sparse_values"]
        # 32004 is LZ4's registered id: a plug-in, loaded from a shared library when read
        file.create_dataset("sparse_values", shape=(len(NODES), 64), dtype=np.float16,
                            chunks=(1, 64), compression=32004, allow_unknown_filter=True)
    return edit, r"'sparse_values' needs HDF5 filters \[32004\], which are plug-ins"


def _group(tmp_path):
    def edit(file):
        file.create_group("extra")
    return edit, "'extra' is not a plain dataset"


@pytest.mark.parametrize("crafted", [_external_link, _soft_link, _virtual_dataset,
                                     _external_dataset, _plug_in_filter, _group])
def test_a_segment_reaching_outside_or_needing_a_plug_in_is_refused(zoo, tmp_path, crafted):
    edit, message = crafted(tmp_path)
    _rewrite_segment(zoo.root, edit)
    with pytest.raises(ValueError, match=message):
        ZooStore(zoo.root)


def _set(name, index, value):
    def edit(file):
        data = file[name][()]
        data[index] = value
        del file[name]
        file.create_dataset(name, data=data)
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set("expert_heads", 0, 2**30), "more than 16777216 heads"),
    (_set("expert_width", 1, 5), "stored width does not fit its heads"),
    (_set("expert_column", 2, 0), "columns do not tile 'dense'"),
    (lambda file: file.__delitem__("index_d") or file.create_dataset(
        "index_d", shape=(len(NODES), 10**7), dtype=np.uint8, chunks=(1, 2**16),
        compression="gzip"), r"claim \d+ bytes, more than 1100 times"),
    (lambda file: file.__delitem__("expert_key") or file.create_dataset(
        "expert_key", data=np.array(["a"] * 5, dtype=h5py.string_dtype())),
     "'expert_key' has shape"),
])
def test_a_segment_whose_layout_is_not_a_zoos_is_refused_before_it_is_read(zoo, edit,
                                                                           message):
    # shapes and offsets that would make one expert read another's rows, or allocate far
    # more than the file holds, are refused when the zoo is opened
    _rewrite_segment(zoo.root, edit)
    with pytest.raises(ValueError, match="is not a zoo segment as skmll writes them: .*"
                                         + message):
        ZooStore(zoo.root)


def test_an_index_naming_an_expert_the_segment_lacks_is_refused(zoo):
    _rewrite_segment(zoo.root, _set("index_order", (0, 0), 50))
    with pytest.raises(ValueError, match="list names expert 50 of 4"):
        search_zoo(ZooStore(zoo.root), task(NODES[:2]))


def _manifest_pointing_at(root, relative):
    manifest = json.loads((root / "zoo.json").read_text())
    manifest["segments"][0]["file"] = relative
    (root / "zoo.json").write_text(json.dumps(manifest))


def test_a_segment_path_must_stay_inside_the_zoo(zoo, tmp_path):
    segment = next((zoo.root / "segments").iterdir())
    outside = tmp_path / "outside.h5"
    shutil.copyfile(segment, outside)      # a valid segment, but not the zoo's own
    for relative in ("../outside.h5", str(outside), "segments/../../outside.h5"):
        _manifest_pointing_at(zoo.root, relative)
        with pytest.raises(ValueError, match="is not inside"):
            ZooStore(zoo.root)
    os.symlink(outside, zoo.root / "segments" / "linked.h5")
    _manifest_pointing_at(zoo.root, "segments/linked.h5")
    with pytest.raises(ValueError, match="'segments/linked.h5' is not inside"):
        ZooStore(zoo.root)


def test_a_truncated_or_modified_segment_is_caught(zoo):
    segment = next((zoo.root / "segments").iterdir())
    data = segment.read_bytes()
    opened = ZooStore(zoo.root)
    opened.verify()                                   # whole: no error
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x01                   # same size: only the digest tells
    segment.write_bytes(bytes(changed))
    with pytest.raises(ValueError, match="SHA-256 [0-9a-f]{64} differs from the manifest's"):
        opened.verify()
    segment.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=f"{len(data) - 100} bytes, the manifest says "
                                         f"{len(data)}: the file was changed or truncated"):
        ZooStore(zoo.root)


# --- input refused --------------------------------------------------------------------------

@pytest.mark.parametrize("name, given, message", [
    ("one-node-short", rows(0, 3, n_nodes=6), r"rows must be \(n_nodes=7, n_heads\), got shape "
                                              r"\(6, 3\)"),
    ("flat", rows(0, 3)[0], r"got shape \(3,\)"),
    ("no-heads", np.zeros((7, 0)), r"expert 'no-heads': probability rows must be"),
    ("nan", np.where(np.eye(7, 3) > 0, np.nan, rows(0, 3)), "must be finite and non-negative"),
    ("negative", rows(0, 3) - 0.5, "'negative': probability rows must be finite and non-neg"),
    ("massless", np.vstack([rows(0, 3)[:6], np.zeros((1, 3))]),
     r"a row has no probability mass once stored in float16 \(node rows \[6\]\)"),
    ("", rows(0, 3), "an expert needs a name; got ''"),
    ("  ", rows(0, 3), "an expert needs a name"),
])
def test_bad_rows_and_names_are_refused_and_nothing_is_written(zoo, name, given, message):
    before = segment_files(zoo.root)
    with pytest.raises(ValueError, match=message):
        zoo.append([("fine", rows(5, 3)), (name, given)])
    assert segment_files(zoo.root) == before and ZooStore(zoo.root).n_experts == 4


def test_a_zoo_needs_distinct_nodes_and_one_folder_each(tmp_path):
    with pytest.raises(ValueError, match="distinct, non-empty node ids"):
        ZooStore.create(tmp_path / "a", ["quay.n.01", "quay.n.01"])
    with pytest.raises(ValueError, match="distinct, non-empty node ids"):
        ZooStore.create(tmp_path / "b", [])
    ZooStore.create(tmp_path / "c", NODES)
    with pytest.raises(FileExistsError, match="holds a zoo already"):
        ZooStore.create(tmp_path / "c", NODES)
    with pytest.raises(FileNotFoundError, match=r"is not a zoo \(no zoo.json\)"):
        ZooStore(tmp_path / "d")


# --- stored precision -----------------------------------------------------------------------

def test_rows_of_a_narrow_expert_keep_float16_relative_precision():
    rng = np.random.default_rng(4)
    # magnitudes from 1e-8 (float16 subnormals) to 1
    P = 10.0 ** rng.uniform(-8, 0, (50, 64))
    decoded = decode_rows(*encode_rows(P), P.shape[1])
    assert encode_rows(P)[1] is None                             # every head kept
    error = np.abs(decoded - P)
    # round to nearest: half a unit, 2^-11 relative above 2^-14, half of 2^-24 below
    assert np.all(error <= 2**-11 * (1 + 2**-12) * P + 2**-25)
    assert error.max() > 2**-13 * P.max() / 4                     # the bound is not slack


def test_rows_of_a_wide_expert_lose_at_most_their_tail_mass_in_total_variation():
    rng = np.random.default_rng(5)
    for n_heads, concentration in [(65, 0.05), (300, 0.3), (1000, 2.0)]:
        P = rng.dirichlet(np.full(n_heads, concentration), size=40)
        values, heads, floor = encode_rows(P, max_dense=64)
        decoded = decode_rows(values, heads, floor, n_heads)
        top = np.sort(P.astype(np.float32), axis=1)[:, -64:]     # encoded from float32
        tail = P.sum(axis=1) - top.sum(axis=1)
        tv = 0.5 * np.abs(decoded - P).sum(axis=1)
        assert np.all(tv <= tail + 2**-12), (n_heads, (tv - tail).max())
        # the heads kept are the 64 largest, so no other choice of 64 loses less tail mass
        kept = np.take_along_axis(P.astype(np.float32), heads.astype(int), 1)
        np.testing.assert_array_equal(np.sort(kept, axis=1), top)
        np.testing.assert_allclose(decoded.sum(axis=1), 1.0, atol=2**-11)
        # the rest's mean is smaller (the floor is a difference of sums: exact to ~1e-16)
        assert np.all(floor <= kept.min(axis=1) * (1 + 1e-6) + 1e-15)


@pytest.mark.parametrize("max_dense", [None, 64])
def test_the_store_returns_exactly_the_stored_probabilities(tmp_path, max_dense):
    store = ZooStore.create(tmp_path, NODES[:3], max_dense=max_dense)
    widest = rows(9, 70_000, n_nodes=3)                  # head ids beyond uint16
    store.append([("lugger", rows(7, 6, 3)), ("barque", rows(8, 200, 3)),
                  ("galleon", widest)])
    columns = ZooStore(tmp_path).problems(np.array([2, 0]), np.array([2, 0, 1]))
    for got, given in zip(columns, (widest, rows(7, 6, 3), rows(8, 200, 3))):
        expected = _normalised(given, max_dense)[[2, 0]].T
        np.testing.assert_array_equal(got, expected)
    if max_dense is None:   # every head kept: float16 rounding only
        exact = widest / widest.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(columns[0], exact[[2, 0]].T, rtol=2**-10, atol=2**-24)


def test_changed_labels_are_refused_by_key_or_by_rows(tmp_path):
    from types import SimpleNamespace

    from skmll.zoo._convert import _refuse_changed_experts

    rng = np.random.default_rng(4)
    rows = rng.dirichlet(np.ones(6), size=20)
    zoo = ZooStore.create(tmp_path, [f"spot{i}" for i in range(20)])
    zoo.append([("keyed", rows, "fingerprint-1"), ("bare", rows)])
    assert zoo.keys == ["fingerprint-1", ""]
    same = SimpleNamespace(probabilities=rows, expert_fingerprint="fingerprint-1")
    _refuse_changed_experts(zoo, {"keyed": same}, np.arange(20))       # unchanged: no error
    other_key = SimpleNamespace(probabilities=rows, expert_fingerprint="fingerprint-2")
    with pytest.raises(ValueError, match="'keyed' with fingerprint 'fingerprint-1'"):
        _refuse_changed_experts(zoo, {"keyed": other_key}, np.arange(20))
    # no fingerprint: the stored rows tell another model apart
    _refuse_changed_experts(zoo, {"bare": SimpleNamespace(probabilities=rows,
                                                          expert_fingerprint=None)},
                            np.arange(20))
    other_rows = SimpleNamespace(probabilities=rng.dirichlet(np.ones(6), size=20),
                                 expert_fingerprint=None)
    with pytest.raises(ValueError, match="'bare' whose label differs"):
        _refuse_changed_experts(zoo, {"bare": other_rows}, np.arange(20))
