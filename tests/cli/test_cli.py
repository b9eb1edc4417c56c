"""The ``skmll`` command line: label, copy the directory, search and predict from the copy."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skmll import MLLZeroShotClassifier
from skmll.baselines import SELECTION_METHODS, RandomMLLClassifier
from skmll.cli import build_parser
from skmll.reuse import REUSE_RULES
from skmll.labelling import load_label_dir

from ._factories import BUILD_LOG, builds
from ._run import labelled, run_main

REPO = Path(__file__).resolve().parents[2]
# One synset folder per colour: a WordNet name, an ImageNet id (dog.n.01) and another name.
FOLDERS = {"cat.n.01": (200, 30, 30), "n02084071": (30, 200, 30), "sandal.n.01": (30, 30, 200)}
PHOTOS = {"red": (220, 40, 20), "green": (20, 220, 60), "blue": (40, 20, 220)}
EXPECTED = {"red": "cat", "green": "dog", "blue": "sandal"}
HUB = """\
[[expert]]
name = "colour"
source = "torch:tests.cli._factories:channel_means"
factory_kwargs = {{ tag = "colour", weights = [[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]] }}
input_size = [8, 8]

[[expert]]
name = "brightness"
source = "torch:tests.cli._factories:channel_means"
factory_kwargs = {{ tag = "brightness", weights = [[4.0, 4.0, 4.0], [-4.0, -4.0, -4.0]] }}
input_size = [8, 8]

[[expert]]
name = "red-or-not"
source = "torch:tests.cli._factories:channel_means"
factory_kwargs = {{ tag = "red-or-not", weights = [[6.0, -3.0, -3.0], [-6.0, 3.0, 3.0]] }}
input_size = [8, 8]
{extra}"""


def _save_noisy(path, rgb, size, rng):
    pixels = np.array(rgb) + rng.integers(-25, 25, (*size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Synset folders of small PNGs, photos to classify (another size) and a hub file."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    for folder, rgb in FOLDERS.items():
        (root / "images" / folder).mkdir(parents=True)
        for i in range(4):
            _save_noisy(root / "images" / folder / f"{i}.png", rgb, (6, 6), rng)
    (root / "photos").mkdir()
    for name, rgb in PHOTOS.items():
        _save_noisy(root / "photos" / f"{name}.png", rgb, (10, 7), rng)
    (root / "hub.toml").write_text(HUB.format(extra=""), encoding="utf-8")
    return root


def skmll(*args, build_log, cwd):
    """``python -m skmll ARGS`` in a fresh process; its factories log builds to ``build_log``."""
    env = {**os.environ, BUILD_LOG: str(build_log), "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "skmll", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_walk_through_label_copy_search_predict(world, tmp_path):
    labels, log = tmp_path / "labels", tmp_path / "builds.log"
    done = skmll("label", world / "hub.toml", "--images", world / "images", "--labels", labels,
                 "--format", "json", build_log=log, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["experts"] == ["colour", "brightness", "red-or-not"]
    assert (summary["n_nodes_with_images"], summary["n_images"]) == (3, 12)
    assert summary["n_forward_images"] == 3 * 12
    assert {"sdag.json", "hub.toml", "labels"} <= {p.name for p in labels.iterdir()}

    # Another machine: only the directory, under another name; the images are gone.
    copy = tmp_path / "elsewhere" / "labels"
    shutil.copytree(labels, copy)
    shutil.rmtree(labels)
    log.unlink()
    images = world / "images"
    hidden = images.rename(world / "images-away")
    try:
        found = skmll("search", "--labels", copy, "--format", "json", "cat", "dog", "sandal",
                      build_log=log, cwd=tmp_path)
        assert found.returncode == 0, found.stderr
        assert builds(log) == []                       # search built no expert
        report = json.loads(found.stdout)
        assert [c["node"] for c in report["classes"]] == ["cat.n.01", "dog.n.01", "sandal.n.01"]
        assert all(c["experts"][0]["name"] == "colour" for c in report["classes"])
        assert report["coverage"] == 1.0

        predicted = skmll("predict", "--labels", copy, "--trust-code", copy, "--k", "1",
                          "--classes", "cat", "dog",
                          "sandal", "--out", tmp_path / "predictions.csv", "--",
                          world / "photos", build_log=log, cwd=tmp_path)
        assert predicted.returncode == 0, predicted.stderr
        assert builds(log) == ["colour"]               # only the selected expert, once
        rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
        assert [list(row) for row in rows[:1]] == [["image", "prediction", "cat", "dog", "sandal"]]
        for row in rows:
            assert row["prediction"] == EXPECTED[Path(row["image"]).stem]
            assert sum(float(row[c]) for c in ("cat", "dog", "sandal")) == pytest.approx(1)

        info = skmll("info", "--labels", copy, "--trust-code", copy, "--verify", "--format",
                     "json", build_log=log, cwd=tmp_path)
        assert info.returncode == 0, info.stderr
        described = json.loads(info.stdout)
        assert described["status"] == "ok" and described["records"]["n_records"] == 3
        assert [e["n_labelled"] for e in described["experts"]] == [3, 3, 3]
        assert builds(log) == ["colour"]
    finally:
        hidden.rename(images)


@pytest.fixture(scope="module")
def label_dir(world, tmp_path_factory):
    return labelled(world, tmp_path_factory.mktemp("cli") / "labels")


def test_labelling_again_runs_nothing_and_reports_json(world, label_dir, capsys):
    code, out, _ = run_main(capsys, "label", world / "hub.toml", "--images", world / "images",
                            "--labels", label_dir, "--format", "json", "-q")
    assert code == 0 and json.loads(out)["n_forward_images"] == 0


def test_predict_output_is_the_classifiers_in_csv_and_json(world, label_dir, capsys):
    flags = ["--labels", label_dir, "--trust-code", label_dir, "--k", "2", "--reuse", "entropy",
             "--no-cache"]
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    code, out, err = run_main(capsys, "predict", *photos, *flags, "--classes", "sandal", "cat",
                              "--format", "json")
    assert code == 0, err
    as_json = json.loads(out)
    code, out, err = run_main(capsys, "predict", *flags, "--classes", "sandal", "cat", "--",
                              *photos)
    assert code == 0, err
    as_csv = list(csv.reader(io.StringIO(out)))

    expected = MLLZeroShotClassifier(["sandal", "cat"], load_label_dir(label_dir, trust_code=True),
                                     k=2,
                                     reuse="entropy", cache_dir=False).fit()
    proba = expected.predict_proba(photos)
    assert as_csv[0] == ["image", "prediction", "cat", "sandal"]   # classes_ order
    for i, photo in enumerate(photos):
        assert as_json[i]["image"] == as_csv[i + 1][0] == photo
        assert as_json[i]["prediction"] == as_csv[i + 1][1] == expected.classes_[proba[i].argmax()]
        np.testing.assert_allclose([float(p) for p in as_csv[i + 1][2:]], proba[i], rtol=1e-12)
        np.testing.assert_allclose([as_json[i]["probabilities"][c] for c in ("cat", "sandal")],
                                   proba[i], rtol=1e-12)


def test_search_and_explain_read_labels_only(label_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_LOG, str(tmp_path / "builds.log"))
    code, out, _ = run_main(capsys, "search", "--labels", label_dir, "--k", "1", "--no-cache",
                            "dog", "sandal")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["dog"][1] == "dog.n.01" and rows["sandal"][1] == "sandal.n.01"
    assert rows["dog"][3] == rows["sandal"][3] == "colour"
    assert "coverage 100% (2 of 2 classes), 1 expert(s) used" in out
    code, out, _ = run_main(capsys, "explain", "--labels", label_dir, "--no-cache", "dog")
    assert code == 0 and "'dog' -> dog.n.01" in out and "colour: loss" in out
    assert builds(tmp_path / "builds.log") == []


def test_selection_methods_and_reuse_rules_come_from_the_registries(label_dir, capsys):
    """--selection reaches every method of SELECTION_METHODS, as its class selects (LogME and
    LEEP run the experts on the SDAG's images, which a label directory does not hold)."""
    code, out, err = run_main(capsys, "search", "--labels", label_dir, "--no-cache", "--k", "2",
                              "--selection", "random", "--random-state", "3", "--format", "json",
                              "dog", "sandal")
    assert code == 0, err
    expected = RandomMLLClassifier(["dog", "sandal"], load_label_dir(label_dir), k=2,
                                   random_state=3, cache_dir=False, on_uncovered="drop").fit()
    assert [[(e["name"], e["loss"]) for e in c["experts"]] for c in json.loads(out)["classes"]] \
        == [[(name, score) for name, score, _ in expected.experts_[c]] for c in ("dog", "sandal")]
    code, out, err = run_main(capsys, "search", "--labels", label_dir, "--no-cache", "--k", "2",
                              "--format", "json", "dog", "sandal")
    assert code == 0, err
    chco = MLLZeroShotClassifier(["dog", "sandal"], load_label_dir(label_dir), k=2,
                                 cache_dir=False, on_uncovered="drop").fit()
    assert [[e["name"] for e in c["experts"]] for c in json.loads(out)["classes"]] \
        == [[name for name, _, _ in chco.experts_[c]] for c in ("dog", "sandal")] \
        != [[name for name, _, _ in expected.experts_[c]] for c in ("dog", "sandal")]
    code, _, err = run_main(capsys, "search", "--labels", label_dir, "--selection", "leep",
                            "--beta", "0.5", "dog")
    assert code == 2 and "--selection leep takes no --beta" in err
    help_text = build_parser().format_help() + "".join(
        action.choices["search"].format_help() for action in build_parser()._subparsers._actions
        if isinstance(action.choices, dict))
    assert "{" + ",".join(SELECTION_METHODS) + "}" in help_text
    assert "{" + ",".join(REUSE_RULES) + "}" in help_text


def test_usage_errors_exit_2_with_one_line(world, label_dir, capsys, tmp_path):
    photo = world / "photos" / "red.png"
    cases = [
        ["search", "--labels", label_dir, "--k", "0", "cat"],               # bad value
        ["search", "--labels", label_dir, "--bogus", "cat"],                # unknown flag
        ["search", "--labels", tmp_path / "absent", "cat"],                 # no directory
        ["label", tmp_path / "absent.toml", "--images", world / "images", "--labels", tmp_path],
        ["predict", "--labels", label_dir, "--classes", "cat", "--", tmp_path / "absent.png"],
        ["predict", "--labels", label_dir, "--classes", "cat", "--out", tmp_path / "p.txt", "--",
         photo],
        ["frobnicate"],
    ]
    for args in cases:
        code, out, err = run_main(capsys, *args)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 and "error:" in err and out == ""


def test_failures_exit_1_naming_the_cause(world, label_dir, capsys, tmp_path):
    # a class no node matches closely enough: nothing to serve it
    code, _, err = run_main(capsys, "search", "--labels", label_dir, "--no-cache",
                            "--min-similarity", "0.45", "qwxzv")
    assert code == 1 and "serves 0 of 1 classes" in err and "--general-model" in err
    code, _, err = run_main(capsys, "predict", "--labels", label_dir, "--no-cache",
                            "--min-similarity", "0.45", "--classes", "cat", "qwxzv", "--",
                            world / "photos")
    assert code == 1 and "'qwxzv'" in err and len(err.strip().splitlines()) == 1

    # the directory's hub and an expert it holds no labels of
    extra = ('\n[[expert]]\nname = "green-or-not"\nsource = '
             '"torch:tests.cli._factories:channel_means"\nfactory_kwargs = { tag = "g", weights '
             '= [[-3.0, 6.0, -3.0], [3.0, -6.0, 3.0]] }\ninput_size = [8, 8]\nn_outputs = 2\n'
             'fingerprint = "not-labelled-here"\n')
    bigger = tmp_path / "bigger.toml"
    bigger.write_text((label_dir / "hub.toml").read_text() + extra, encoding="utf-8")
    code, out, err = run_main(capsys, "info", "--labels", label_dir, "--hub", bigger,
                              "--format", "json")
    assert code == 1
    assert [e["status"] for e in json.loads(out)["experts"]] == ["ok", "ok", "ok", "missing"]
    code, _, err = run_main(capsys, "search", "--labels", label_dir, "--hub", bigger, "cat")
    assert code == 1 and "'green-or-not'" in err

    # a manifest whose node keys were edited
    broken = tmp_path / "broken"
    shutil.copytree(label_dir, broken)
    manifest = json.loads((broken / "sdag.json").read_text())
    next(node for node in manifest["nodes"] if node["n_images"])["data_key"] = "0" * 32
    (broken / "sdag.json").write_text(json.dumps(manifest))
    code, _, err = run_main(capsys, "search", "--labels", broken, "cat")
    assert code == 1 and "sdag.json" in err and "data_hash" in err


def test_entry_points():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"skmll": "skmll.cli:main"}
    done = subprocess.run([sys.executable, "-m", "skmll", "--version"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("skmll ")
