"""The Semantic DAG: construction, graph queries, hashing, batch streaming, WordNet builders."""

import copy
import pickle

import numpy as np
import pytest
from PIL import Image

from skmll.hub import as_image_batch
from skmll.semantic_graph import SemanticDAG, load_wordnet, node_text
from skmll.semantic_graph import _wordnet

needs_wordnet = pytest.mark.skipif(not (_wordnet._DEBIAN_WORDNET / "data.noun").is_file(),
                                   reason="Debian's wordnet-base is not installed")


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    return load_wordnet(tmp_path_factory.mktemp("cache"))


def numbered_images(n, shape, dtype=np.uint8):
    """Images whose pixels all equal their position (so a sample reveals which were kept)."""
    return np.broadcast_to(np.arange(n, dtype=dtype).reshape((n,) + (1,) * len(shape)),
                           (n,) + shape).copy()


def shoe_data():
    rng = np.random.default_rng(0)
    return {
        "sandal.n.01": rng.integers(0, 256, (5, 8, 8), dtype=np.uint8),
        "n03472535": rng.integers(0, 256, (7, 28, 28, 3), dtype=np.uint8),  # gym_shoe.n.01
        "boot.n.01": numbered_images(60, (28, 28)),
    }


@pytest.fixture(scope="module")
def shoes(wordnet):
    return SemanticDAG.from_wordnet(shoe_data(), max_per_node=6, wordnet=wordnet)


def collect(batches):
    batches = list(batches)
    return batches, np.concatenate([owners for _, owners in batches])


def longest_path_down(sdag, node):
    """Independent height: recursion over successors."""
    children = sdag.successors(node)
    return 0 if not children else 1 + max(longest_path_down(sdag, c) for c in children)


# -- WordNet SDAG ---------------------------------------------------------------------------

@needs_wordnet
def test_from_wordnet_adds_every_ancestor(shoes, wordnet):
    ids = set(shoes.node_ids)
    assert {"sandal.n.01", "gym_shoe.n.01", "boot.n.01", "shoe.n.01", "footwear.n.02",
            "entity.n.01"} <= ids
    expected = set()
    for name in ("sandal.n.01", "gym_shoe.n.01", "boot.n.01"):
        for path in wordnet.synset(name).hypernym_paths():
            expected.update(s.name() for s in path)
    assert ids == expected
    assert shoes.node_ids == sorted(ids)
    assert shoes.predecessors("entity.n.01") == []
    assert all(shoes.predecessors(n) for n in ids - {"entity.n.01"})


@needs_wordnet
def test_from_wordnet_edges_run_hypernym_to_hyponym(shoes, wordnet):
    assert ("shoe.n.01", "sandal.n.01") in shoes.edges
    assert ("footwear.n.02", "shoe.n.01") in shoes.edges
    assert ("sandal.n.01", "shoe.n.01") not in shoes.edges
    for parent, child in shoes.edges:
        synset = wordnet.synset(child)
        assert wordnet.synset(parent) in synset.hypernyms() + synset.instance_hypernyms()
    assert sorted(shoes.successors("shoe.n.01")) == ["gym_shoe.n.01", "sandal.n.01"]
    matrix = shoes.successor_matrix.toarray()
    index = shoes.node_index
    assert matrix.sum() == len(shoes.edges)
    assert all(matrix[index[p], index[c]] == 1 for p, c in shoes.edges)


@needs_wordnet
def test_from_wordnet_follows_instance_hypernyms(wordnet):
    sdag = SemanticDAG.from_wordnet({"bach.n.01": np.zeros((1, 4, 4), np.uint8)},
                                    wordnet=wordnet)
    assert ("composer.n.01", "bach.n.01") in sdag.edges
    assert "entity.n.01" in sdag.node_ids


@needs_wordnet
def test_from_wordnet_texts_describe_the_synsets(shoes, wordnet):
    for node, text in zip(shoes.node_ids, shoes.texts):
        assert text == node_text(wordnet.synset(node))


@needs_wordnet
def test_topological_order_and_heights(shoes):
    order = shoes.topological_order()
    assert sorted(order.tolist()) == list(range(shoes.n_nodes))
    position = np.empty(shoes.n_nodes, dtype=int)
    position[order] = np.arange(shoes.n_nodes)
    index = shoes.node_index
    assert all(position[index[p]] < position[index[c]] for p, c in shoes.edges)
    heights = shoes.heights()
    assert [heights[index[n]] for n in ("sandal.n.01", "boot.n.01", "shoe.n.01",
                                        "footwear.n.02")] == [0, 0, 1, 2]
    assert heights.tolist() == [longest_path_down(shoes, n) for n in shoes.node_ids]
    assert shoes.has_data_below.all()  # every node is an ancestor of a node with images


@needs_wordnet
def test_max_per_node_sampling_is_deterministic(shoes, wordnet):
    index = shoes.node_index
    assert shoes.n_images[index["sandal.n.01"]] == 5  # fewer than max_per_node: all kept
    assert shoes.n_images[index["gym_shoe.n.01"]] == 6
    assert shoes.n_images[index["boot.n.01"]] == 6
    assert shoes.n_images.sum() == 17

    def kept_boots(sdag):
        images, _ = next(sdag.iter_batches(64, nodes=["boot.n.01"]))
        return np.round(images[:, 0, 0, 0] * 255).astype(int).tolist()

    kept = kept_boots(shoes)
    assert len(set(kept)) == 6 and kept == sorted(kept) and max(kept) < 60
    reordered = dict(reversed(list(shoe_data().items())))
    again = SemanticDAG.from_wordnet(reordered, max_per_node=6, wordnet=wordnet)
    assert kept_boots(again) == kept
    assert again.data_hash == shoes.data_hash
    other = SemanticDAG.from_wordnet(shoe_data(), max_per_node=6, random_state=1,
                                     wordnet=wordnet)
    assert kept_boots(other) != kept
    assert other.data_hash != shoes.data_hash


@needs_wordnet
def test_from_wordnet_rejects_bad_keys(wordnet):
    images = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="'dog.n.01' and 'n02084071' both name"):
        SemanticDAG.from_wordnet({"dog.n.01": images, "n02084071": images}, wordnet=wordnet)
    with pytest.raises(ValueError, match="nosuchword.n.01"):
        SemanticDAG.from_wordnet({"nosuchword.n.01": images}, wordnet=wordnet)
    with pytest.raises(ValueError, match="max_per_node"):
        SemanticDAG.from_wordnet({"dog.n.01": images}, max_per_node=0, wordnet=wordnet)
    with pytest.raises(TypeError, match="single path"):
        SemanticDAG.from_wordnet({"dog.n.01": "dog.png"}, wordnet=wordnet)


# -- hashes ----------------------------------------------------------------------------------

def small_graph(data, texts=None, image_size=None):
    return SemanticDAG(["animal", "dog", "cat", "puppy", "rock"],
                       edges=[("animal", "dog"), ("animal", "cat"), ("dog", "puppy")],
                       texts=texts, data=data, image_size=image_size)


def small_data():
    rng = np.random.default_rng(1)
    return {"puppy": rng.integers(0, 256, (4, 8, 8), dtype=np.uint8),
            "cat": rng.random((3, 8, 8, 3)).astype(np.float32)}


def test_data_hashes_change_exactly_when_data_changes():
    sdag = small_graph(small_data())
    copied = small_graph({k: v.copy() for k, v in reversed(small_data().items())})
    assert copied.data_hash == sdag.data_hash
    assert all(copied.node_data_hash(n) == sdag.node_data_hash(n) for n in sdag.node_ids)

    changed_data = small_data()
    changed_data["puppy"][2, 3, 4] += 1
    changed = small_graph(changed_data)
    assert changed.data_hash != sdag.data_hash
    assert changed.node_data_hash("puppy") != sdag.node_data_hash("puppy")
    assert changed.node_data_hash("cat") == sdag.node_data_hash("cat")

    retexted = small_graph(small_data(), texts={"dog": "a domestic dog"})
    assert retexted.data_hash == sdag.data_hash
    assert retexted.text_hash != sdag.text_hash
    assert small_graph(small_data()).text_hash == sdag.text_hash
    resized = small_graph(small_data(), image_size=(16, 16))
    assert resized.node_data_hash("cat") != sdag.node_data_hash("cat")


def test_empty_image_arrays_mean_no_images():
    with_empty = small_graph({**small_data(), "rock": np.zeros((0, 8, 8), np.uint8)})
    without = small_graph(small_data())
    assert with_empty.n_images.tolist() == without.n_images.tolist() == [0, 0, 3, 4, 0]
    assert with_empty.data_hash == without.data_hash


# -- generic constructor ---------------------------------------------------------------------

def test_custom_graph_structure():
    sdag = small_graph(small_data())
    assert sdag.node_ids == ["animal", "dog", "cat", "puppy", "rock"]
    assert sdag.n_nodes == 5
    assert sdag.texts == sdag.node_ids  # default text: the id
    assert sdag.node_index == {"animal": 0, "dog": 1, "cat": 2, "puppy": 3, "rock": 4}
    assert sdag.successors("animal") == ["dog", "cat"]
    assert sdag.predecessors("puppy") == ["dog"]
    assert sdag.successors("rock") == sdag.predecessors("rock") == []
    expected = np.zeros((5, 5))
    expected[0, 1] = expected[0, 2] = expected[1, 3] = 1
    assert np.array_equal(sdag.successor_matrix.toarray(), expected)
    assert sdag.heights().tolist() == [2, 1, 0, 0, 0]
    assert sdag.has_data_below.tolist() == [True, True, True, True, False]
    assert sdag.n_images.dtype == np.int64 and sdag.n_images.tolist() == [0, 0, 3, 4, 0]
    assert repr(sdag) == "SemanticDAG(n_nodes=5, n_edges=3, n_nodes_with_images=2, n_images=7)"


def test_diamond_heights_and_order():
    sdag = SemanticDAG(["leaf", "left", "right", "top", "tail"],
                       edges=[("top", "left"), ("top", "right"), ("left", "leaf"),
                              ("right", "leaf"), ("top", "tail"), ("left", "right")])
    order = sdag.topological_order().tolist()
    names = [sdag.node_ids[i] for i in order]
    assert names.index("top") < names.index("left") < names.index("right") < names.index("leaf")
    assert sdag.heights().tolist() == [0, 2, 1, 3, 0]
    assert not sdag.has_data_below.any()


def test_repeated_edges_are_kept_once():
    sdag = SemanticDAG(["a", "b"], edges=[("a", "b"), ("a", "b")])
    assert sdag.edges == [("a", "b")]
    assert sdag.successor_matrix.sum() == 1


def test_read_only_arrays():
    sdag = small_graph(small_data())
    for array in (sdag.n_images, sdag.heights(), sdag.topological_order(), sdag.has_data_below):
        with pytest.raises(ValueError):
            array[0] = 1


@pytest.mark.parametrize("edges, on_cycle", [
    ([("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")], {"a", "b", "c"}),
    ([("d", "d")], {"d"}),
    ([("a", "b"), ("b", "a"), ("b", "c")], {"a", "b"}),
])
def test_cycle_is_reported_by_a_node_on_it(edges, on_cycle):
    with pytest.raises(ValueError, match="cycle through node") as error:
        SemanticDAG(["a", "b", "c", "d"], edges=edges)
    assert str(error.value).split("'")[1] in on_cycle


@pytest.mark.parametrize("kwargs, error, match", [
    ({"nodes": ["a", "a"]}, ValueError, "'a' appears more than once"),
    ({"nodes": ["a", 3]}, TypeError, "must be str"),
    ({"nodes": "ab"}, TypeError, "single str"),
    ({"edges": [("a", "z")]}, ValueError, "'z', which is not a node"),
    ({"edges": [("a", "b", "c")]}, ValueError, "pair"),
    ({"texts": {"z": "zed"}}, ValueError, "'z', which is not a node"),
    ({"texts": {"a": 3}}, TypeError, "text of node 'a'"),
    ({"data": {"z": np.zeros((1, 4, 4), np.uint8)}}, ValueError, "'z', which is not a node"),
    ({"data": {"a": np.zeros((4, 4), np.uint8)}}, ValueError, "node 'a'.*shape"),
    ({"data": {"a": np.zeros((1, 4, 4, 2), np.uint8)}}, ValueError, "node 'a'.*shape"),
    ({"data": {"a": np.zeros((1, 0, 4), np.uint8)}}, ValueError, "node 'a' are empty"),
    ({"data": {"a": np.full((1, 4, 4), np.nan)}}, ValueError, "node 'a' contain NaN"),
    ({"data": {"a": np.full((1, 4, 4), 2.0)}}, ValueError, "node 'a' must lie in"),
    ({"data": {"a": np.zeros((1, 4, 4), np.int32)}}, TypeError, "node 'a' must be uint8"),
    ({"data": {"a": "cat.png"}}, TypeError, "node 'a'.*single path"),
    ({"data": {"a": [1, 2]}}, TypeError, "node 'a'.*list of image file"),
    ({"data": {"a": ["/no/such/file.png"]}}, FileNotFoundError, "file.png' of node 'a'"),
    ({"image_size": (8,)}, ValueError, "image_size"),
    ({"image_size": (8, 0)}, ValueError, "image_size"),
])
def test_bad_inputs_are_named(kwargs, error, match):
    arguments = {"nodes": ["a", "b"], **kwargs}
    with pytest.raises(error, match=match):
        SemanticDAG(**arguments)


def test_unknown_node_in_queries():
    sdag = small_graph(small_data())
    for query in (sdag.successors, sdag.predecessors, sdag.node_data_hash):
        with pytest.raises(ValueError, match="'wolf', which is not a node"):
            query("wolf")
    with pytest.raises(ValueError, match="'wolf', which is not a node"):
        sdag.iter_batches(nodes=["wolf"])
    with pytest.raises(TypeError, match="single str"):
        sdag.iter_batches(nodes="cat")
    with pytest.raises(ValueError, match="batch_size"):
        sdag.iter_batches(batch_size=0)


# -- streaming -------------------------------------------------------------------------------

@needs_wordnet
@pytest.mark.parametrize("batch_size", [1, 4, 5, 64])
def test_iter_batches_covers_every_image_once(shoes, batch_size):
    batches, owners = collect(shoes.iter_batches(batch_size))
    assert np.bincount(owners, minlength=shoes.n_nodes).tolist() == shoes.n_images.tolist()
    shapes = set()
    for images, node_indices in batches:
        assert images.dtype == np.float32 and node_indices.dtype == np.int64
        assert 1 <= len(images) <= batch_size and len(images) == len(node_indices)
        assert images.ndim == 4 and images.shape[-1] == 3
        assert 0 <= images.min() and images.max() <= 1
        shapes.add(images.shape[1:3])
    assert shapes == {(8, 8), (28, 28)}  # the sandal's 8 x 8 never share a batch with 28 x 28


def test_iter_batches_yields_each_node_images_in_order():
    data = small_data()
    sdag = small_graph(data)
    batches, owners = collect(sdag.iter_batches(2))
    images = np.concatenate([b for b, _ in batches])
    for node, original in data.items():
        got = images[owners == sdag.node_index[node]]
        assert np.array_equal(got, as_image_batch(original))
    assert owners.tolist() == [2, 2, 2, 3, 3, 3, 3]  # node order, then image order


def test_iter_batches_reads_only_the_listed_nodes_in_their_order():
    sdag = small_graph(small_data())
    _, owners = collect(sdag.iter_batches(3, nodes=["puppy", "rock", "cat", "puppy"]))
    assert owners.tolist() == [3, 3, 3, 3, 2, 2, 2]
    assert list(sdag.iter_batches(3, nodes=["rock", "dog"])) == []


def test_iter_batches_resizes_to_image_size():
    sdag = small_graph(small_data(), image_size=(6, 6))
    assert {b.shape[1:] for b, _ in sdag.iter_batches(3)} == {(6, 6, 3)}
    assert {b.shape[1:] for b, _ in sdag.iter_batches(3, image_size=(16, 12))} == {(16, 12, 3)}


# -- image folders ---------------------------------------------------------------------------

def write_png(path, height, width, value):
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "train"
    (root / "n03472535").mkdir(parents=True)  # gym_shoe.n.01
    for i in range(3):
        write_png(root / "n03472535" / f"img{i}.png", 10, 12, 40 * i)
    (root / "n03472535" / "notes.txt").write_text("not an image")
    (root / "sandal.n.01").mkdir()
    write_png(root / "sandal.n.01" / "small.png", 10, 10, 200)
    write_png(root / "sandal.n.01" / "large.png", 20, 20, 100)
    (root / ".cache").mkdir()
    return root


@needs_wordnet
def test_from_image_folder_streams_sampled_files(image_folder, wordnet):
    sdag = SemanticDAG.from_image_folder(image_folder, per_node=2, image_size=None,
                                         wordnet=wordnet)
    index = sdag.node_index
    assert sdag.n_images[index["gym_shoe.n.01"]] == 2 and sdag.n_images[index["sandal.n.01"]] == 2
    assert "footwear.n.02" in sdag.node_ids
    shapes = {sdag.node_ids[owners[0]]: images.shape[1:3]
              for images, owners in sdag.iter_batches(8)}
    assert shapes == {"gym_shoe.n.01": (10, 12), "sandal.n.01": (224, 224)}  # mixed sizes
    # Files are read when iterated, not when the SDAG is built.
    for path in (image_folder / "sandal.n.01").iterdir():
        write_png(path, 10, 10, 255)
    images, _ = next(sdag.iter_batches(8, nodes=["sandal.n.01"]))
    assert np.allclose(images, 1.0)


@needs_wordnet
def test_from_image_folder_default_size_and_file_hashes(image_folder, wordnet):
    sdag = SemanticDAG.from_image_folder(image_folder, wordnet=wordnet)
    assert sdag.image_size == (224, 224)
    assert {b.shape[1:] for b, _ in sdag.iter_batches(2)} == {(224, 224, 3)}
    assert sdag.n_images[sdag.node_index["gym_shoe.n.01"]] == 3  # notes.txt is not an image
    before = {node: sdag.node_data_hash(node) for node in ("sandal.n.01", "gym_shoe.n.01")}
    write_png(image_folder / "sandal.n.01" / "small.png", 10, 10, 201)
    changed = SemanticDAG.from_image_folder(image_folder, wordnet=wordnet)
    assert changed.node_data_hash("sandal.n.01") != before["sandal.n.01"]
    assert changed.node_data_hash("gym_shoe.n.01") == before["gym_shoe.n.01"]


@needs_wordnet
def test_from_image_folder_errors(tmp_path, wordnet):
    with pytest.raises(NotADirectoryError):
        SemanticDAG.from_image_folder(tmp_path / "absent", wordnet=wordnet)
    (tmp_path / "n03472535").mkdir()
    with pytest.raises(ValueError, match="no <synset folder>"):
        SemanticDAG.from_image_folder(tmp_path, wordnet=wordnet)
    (tmp_path / "not_a_synset").mkdir()
    write_png(tmp_path / "not_a_synset" / "a.png", 4, 4, 0)
    with pytest.raises(ValueError, match="not_a_synset"):
        SemanticDAG.from_image_folder(tmp_path, wordnet=wordnet)


def test_unreadable_file_is_reported_with_its_node(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    sdag = SemanticDAG(["a"], data={"a": [str(bad)]})
    with pytest.raises(ValueError, match="bad.png' of node 'a'"):
        list(sdag.iter_batches())


# -- object protocol -------------------------------------------------------------------------

def test_copies_share_the_object():
    sdag = small_graph(small_data())
    assert copy.deepcopy(sdag) is sdag
    assert copy.copy(sdag) is sdag
    holder = copy.deepcopy({"sdag": sdag})
    assert holder["sdag"] is sdag


def test_pickle_round_trip(tmp_path):
    write_png(tmp_path / "x.png", 5, 5, 10)
    data = {**small_data(), "rock": [str(tmp_path / "x.png")]}
    sdag = small_graph(data, texts={"cat": "a small feline"})
    restored = pickle.loads(pickle.dumps(sdag))
    for attribute in ("node_ids", "edges", "texts", "node_index", "image_size",
                      "data_hash", "text_hash"):
        assert getattr(restored, attribute) == getattr(sdag, attribute)
    assert restored.n_images.tolist() == sdag.n_images.tolist()
    assert restored.node_data_hash("rock") == sdag.node_data_hash("rock")
    for (a, ia), (b, ib) in zip(sdag.iter_batches(3), restored.iter_batches(3), strict=True):
        assert np.array_equal(a, b) and np.array_equal(ia, ib)
