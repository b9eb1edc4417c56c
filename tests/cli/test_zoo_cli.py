"""``skmll zoo``: a label directory converted in place, grown, copied away and searched.

The world: four fruit synsets (lemon, cherry, grape, kiwi) as 6 x 6 PNGs of their colours, and
a hub of experts that read the mean colour: one of three heads, one of two, and one of 70
heads (wider than ``--max-dense 64``, which keeps a row's 64 largest entries and a floor).
"""

import json
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from skmll.labelling import label_dir_digest, load_label_dir, read_sdag_manifest
from skmll.selection import match_task, select_experts
from skmll.zoo import ZOO_FOLDER, ZooStore, search_zoo, stored_probabilities, update_zoo

from ._run import run_main

FRUITS = {"lemon.n.01": (230, 220, 40), "cherry.n.03": (180, 20, 30),
          "grape.n.01": (110, 40, 150), "kiwi.n.03": (120, 130, 60)}
CLASSES = ["lemon", "cherry", "grape", "kiwi"]
EXPERT = """
[[expert]]
name = "{name}"
source = "torch:tests.cli._factories:channel_means"
factory_kwargs = {{ tag = "{name}", weights = {weights} }}
input_size = [6, 6]
"""


def _hub(experts):
    return "".join(EXPERT.format(name=name, weights=json.dumps(weights))
                   for name, weights in experts.items())


def _weights(n_heads, seed):
    return np.random.default_rng(seed).normal(0, 8, (n_heads, 3)).round(3).tolist()


@pytest.fixture(scope="module")
def orchard(tmp_path_factory):
    root = tmp_path_factory.mktemp("orchard")
    rng = np.random.default_rng(3)
    for synset, rgb in FRUITS.items():
        (root / "images" / synset).mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(np.array(rgb) + rng.integers(-15, 15, (6, 6, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / "images" / synset / f"{i}.png")
    (root / "hub.toml").write_text(_hub({
        "hue": [[9.0, 0, -4], [0, 9.0, 0], [-4, 0, 9.0]],
        "warmth": [[5.0, 0, -5.0], [-5.0, 0, 5.0]],
        "wide": _weights(70, seed=0)}))
    (root / "more.toml").write_text(_hub({"fresh": _weights(5, seed=1)}))
    (root / "clash.toml").write_text(_hub({"warmth": [[-5.0, 0, 5.0], [5.0, 0, -5.0]]}))
    return root


def _label(capsys, orchard, labels, hub="hub.toml"):
    code, _, err = run_main(capsys, "label", orchard / hub, "--images", orchard / "images",
                            "--labels", labels, "-q")
    assert code == 0, err
    return labels


@pytest.fixture(scope="module")
def converted(orchard, tmp_path_factory):
    """A label directory of the orchard's hub, converted once with ``skmll zoo update``."""
    from skmll.cli import main

    labels = tmp_path_factory.mktemp("converted") / "labels"
    assert main(["label", str(orchard / "hub.toml"), "--images", str(orchard / "images"),
                 "--labels", str(labels), "-q"]) == 0
    assert main(["zoo", "update", str(labels), "-q"]) == 0
    return labels


def _segment_bytes(zoo_folder):
    return {path.name: path.read_bytes() for path in (zoo_folder / "segments").glob("*.h5")}


def test_conversion_stores_the_labels_as_search_sees_them(converted):
    labeler = load_label_dir(converted)
    zoo = ZooStore(converted / ZOO_FOLDER)
    sdag = labeler.sdag
    rows = np.flatnonzero(sdag.has_data_below)
    assert zoo.names == ["hue", "warmth", "wide"] == list(labeler.hub_.names)
    assert zoo.node_ids == [sdag.node_ids[n] for n in rows]
    assert set(FRUITS) <= set(zoo.node_ids)
    assert zoo.n_heads.tolist() == [3, 2, 70]
    stored = zoo.problems(np.arange(len(rows)), np.arange(3))
    for name, columns in zip(zoo.names, stored):
        expected = stored_probabilities(labeler.labels_[name].probabilities[rows]).T
        np.testing.assert_allclose(columns, expected / expected.sum(axis=0), rtol=1e-12)
        full = labeler.labels_[name].probabilities[rows].T       # every head, float16 only
        np.testing.assert_allclose(columns, full / full.sum(axis=0), rtol=2**-10, atol=2**-24)


def test_a_compact_zoo_keeps_64_entries_per_node_of_a_wider_expert(orchard, tmp_path, capsys):
    labels = _label(capsys, orchard, tmp_path / "labels")
    code, out, err = run_main(capsys, "zoo", "update", labels, "--max-dense", "64")
    assert code == 0, err
    zoo = ZooStore(labels / ZOO_FOLDER)
    assert zoo.manifest["max_dense_heads"] == 64
    labeler = load_label_dir(labels)
    rows = np.flatnonzero(labeler.sdag.has_data_below)
    wide = labeler.labels_["wide"].probabilities[rows]
    stored = zoo.problems(np.arange(len(rows)), [2])[0]
    expected = stored_probabilities(wide, max_dense=64)
    np.testing.assert_allclose(stored, (expected / expected.sum(axis=1, keepdims=True)).T,
                               rtol=1e-12)
    whole = stored_probabilities(wide)            # every head, as the default zoo keeps it
    assert not np.array_equal(stored, (whole / whole.sum(axis=1, keepdims=True)).T)


def test_update_is_idempotent_and_appends_only_new_experts(orchard, tmp_path, capsys):
    labels = _label(capsys, orchard, tmp_path / "labels")
    code, out, err = run_main(capsys, "zoo", "update", labels)
    assert code == 0, err
    assert "added 3 expert(s) (hue, warmth, wide); 3 expert(s) in 1 segment(s)" in out
    digest, before = label_dir_digest(labels), _segment_bytes(labels / ZOO_FOLDER)
    manifest = (labels / ZOO_FOLDER / "zoo.json").read_bytes()

    code, out, err = run_main(capsys, "zoo", "update", labels)
    assert code == 0 and "added 0 expert(s); 3 expert(s) in 1 segment(s)" in out, out + err
    assert (labels / ZOO_FOLDER / "zoo.json").read_bytes() == manifest
    assert label_dir_digest(labels) == digest

    _label(capsys, orchard, labels, hub="more.toml")      # the hub file gains an expert
    code, out, err = run_main(capsys, "zoo", "search", "--labels", labels, "--no-cache",
                              "lemon", "cherry")
    assert code == 0 and "1 expert(s) of the label directory are not in its zoo" in err
    code, out, err = run_main(capsys, "zoo", "update", labels, "--segment-size", "1")
    assert code == 0 and "added 1 expert(s) (fresh); 4 expert(s) in 2 segment(s)" in out, err
    after = _segment_bytes(labels / ZOO_FOLDER)
    assert {name: after[name] for name in before} == before       # nothing rewritten
    assert label_dir_digest(labels) != digest                     # the digest covers the zoo
    assert ZooStore(labels / ZOO_FOLDER).names == ["hue", "warmth", "wide", "fresh"]


def test_an_expert_replaced_under_its_name_is_refused(orchard, tmp_path, capsys):
    labels = _label(capsys, orchard, tmp_path / "labels")
    assert run_main(capsys, "zoo", "update", labels)[0] == 0
    code, _, err = run_main(capsys, "label", orchard / "clash.toml", "--images",
                            orchard / "images", "--labels", labels)
    assert code == 0 and "expert 'warmth' of" in err and "is replaced" in err
    code, out, err = run_main(capsys, "zoo", "update", labels)
    assert code == 1 and out == ""
    # caught by the fingerprint the zoo stored with the expert
    assert "holds an expert 'warmth' with fingerprint" in err and "another model" in err
    assert len(err.strip().splitlines()) == 1


def test_zoo_search_selects_what_skmll_search_and_select_experts_select(converted, capsys):
    for k in (1, 2):
        code, out, err = run_main(capsys, "zoo", "search", "--labels", converted, "--k", k,
                                  "--no-cache", "--format", "json", *CLASSES)
        assert code == 0, err
        from_zoo = json.loads(out)
        code, out, err = run_main(capsys, "search", "--labels", converted, "--k", k,
                                  "--no-cache", "--format", "json", *CLASSES)
        assert code == 0, err
        from_labels = json.loads(out)
        assert [c["node"] for c in from_zoo["classes"]] == list(FRUITS)
        assert from_zoo.keys() == from_labels.keys()
        for ours, theirs in zip(from_zoo["classes"], from_labels["classes"]):
            assert ours.keys() == theirs.keys()
            assert (ours["node"], ours["similarity"]) == (theirs["node"], theirs["similarity"])
            assert [e["name"] for e in ours["experts"]] == [e["name"] for e in theirs["experts"]]
            np.testing.assert_allclose([e["loss"] for e in ours["experts"]],
                                       [e["loss"] for e in theirs["experts"]], rtol=1e-2)
        assert (from_zoo["coverage"], from_zoo["n_models_used"]) == (
            from_labels["coverage"], from_labels["n_models_used"])

    # exactly select_experts on the labels as the zoo stores them
    labeler = load_label_dir(converted)
    task = match_task(["kiwi", "grape", "lemon"], read_sdag_manifest(converted), cache_dir=False)
    rows = np.flatnonzero(labeler.sdag.has_data_below)
    stored = {}
    for name, label in labeler.labels_.items():
        probabilities = np.full_like(label.probabilities, np.nan, dtype=np.float64)
        probabilities[rows] = stored_probabilities(label.probabilities[rows])
        stored[name] = SimpleNamespace(probabilities=probabilities)
    expected = select_experts(task, stored, k=2)
    found = search_zoo(ZooStore(converted / ZOO_FOLDER), task, k=2)
    for c in task.classes:
        assert [n for n, _, _ in found.experts[c]] == [n for n, _, _ in expected.experts[c]]
        np.testing.assert_allclose([s for _, s, _ in found.experts[c]],
                                   [s for _, s, _ in expected.experts[c]], rtol=1e-6)


def test_a_copied_directory_is_searched_and_verified_where_it_lands(converted, tmp_path, capsys):
    digest = label_dir_digest(converted)
    copy = tmp_path / "far" / "labels"
    copy.parent.mkdir()
    subprocess.run(["cp", "-r", str(converted), str(copy)], check=True)
    code, out, err = run_main(capsys, "zoo", "info", copy, "--verify", "--expect-digest", digest)
    assert code == 0, err
    assert "3 expert(s) in 1 segment(s)" in out and "SHA-256 verified" in out
    code, out, err = run_main(capsys, "zoo", "info", copy, "--format", "json")
    described = json.loads(out)
    assert (described["n_experts"], described["n_segments"], described["not_in_zoo"]) == (
        3, 1, [])
    assert described["bytes"] == sum(p.stat().st_size
                                     for p in (copy / ZOO_FOLDER / "segments").iterdir())
    code, out, err = run_main(capsys, "zoo", "search", "--labels", copy, "--no-cache", "--k", 1,
                              "--expect-digest", digest, "lemon", "grape")
    assert code == 0, err
    table = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert table["lemon"][1] == "lemon.n.01" and table["grape"][1] == "grape.n.01"
    assert "coverage 100% (2 of 2 classes)" in out

    segment = next((copy / ZOO_FOLDER / "segments").iterdir())
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    code, out, err = run_main(capsys, "zoo", "info", copy, "--verify")
    assert code == 1 and "differs from the manifest's" in err
    code, _, err = run_main(capsys, "zoo", "search", "--labels", copy, "--no-cache",
                            "--expect-digest", digest, "lemon")
    assert code == 1 and "is not what was published" in err


def test_errors_are_one_line_with_what_to_do(converted, tmp_path, capsys):
    plain = tmp_path / "plain"
    shutil.copytree(converted, plain)
    shutil.rmtree(plain / ZOO_FOLDER)
    for argv in (["zoo", "info", plain], ["zoo", "search", "--labels", plain, "lemon"]):
        code, out, err = run_main(capsys, *argv)
        assert code == 1 and out == ""
        assert f"has no zoo: convert it first with 'skmll zoo update {plain}'" in err
    code, _, err = run_main(capsys, "zoo", "update", tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err
    code, _, err = run_main(capsys, "zoo", "search", "--labels", converted, "--k", "0", "lemon")
    assert code == 2 and "expected an integer >= 1" in err
    code, _, err = run_main(capsys, "zoo", "search", "--labels", converted, "--no-cache",
                            "--beta", "0", "lemon", "cherry")
    assert code == 1 and "no expert of the zoo has a reuse loss under --beta 0.0" in err
    with pytest.raises(ValueError, match="segment_size must be a positive integer"):
        update_zoo(converted, segment_size=0)
    ZooStore.create(plain / ZOO_FOLDER, ["lemon.n.01", "lime.n.01"])   # another SDAG's zoo
    code, _, err = run_main(capsys, "zoo", "update", plain)
    assert code == 1 and "was built on another SDAG (2 labelled nodes" in err
