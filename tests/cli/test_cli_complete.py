"""The command line as complete as the API: a scikit-learn expert in a hub file, the label image
size, ``hub declare``, reasons for uncovered classes, general models, bad images, fast start.

The world here: striped animals (zebra: horizontal stripes, gray; tiger: vertical stripes,
orange) seen by a scikit-learn logistic regression on 6 x 6 gray pixels (saved with skops) and
a colour expert declared at 12 x 12.
"""

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

from skmll import ConSE, MLLZeroShotClassifier
from skmll.hub import ModelHub
from skmll.labelling import load_label_dir

from ._run import labelled, run_main
from ..reuse.test_general import tiny_open_clip, tiny_transformers_clip  # noqa: F401 (fixtures)

skops_io = pytest.importorskip("skops.io")

REPO = Path(__file__).resolve().parents[2]
HUB = """\
[[expert]]
name = "stripes"
source = "sklearn:{skops}"
input_size = [6, 6]

[[expert]]
name = "colour"
source = "torch:tests.cli._factories:channel_means"
factory_kwargs = {{ tag = "colour", weights = [[10.0, 0, -5.0], [-5.0, 0, 10.0]] }}
input_size = [12, 12]
head_names = ["red", "blue"]
"""
ORANGE, GRAY = (230, 120, 20), (200, 200, 200)


def stripes(horizontal, rgb, size, rng):
    """Stripes one pixel wide of ``rgb`` on black, with noise: an (H, W, 3) uint8 image."""
    rows = np.arange(size[0])[:, None] % 2 == 0
    cols = np.arange(size[1])[None, :] % 2 == 0
    mask = np.broadcast_to(rows if horizontal else cols, size)
    pixels = mask[..., None] * np.array(rgb) + rng.integers(0, 40, (*size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def stripes_model(rng):
    """A logistic regression told horizontal from vertical stripes on 6 x 6 gray pixels."""
    from sklearn.linear_model import LogisticRegression

    images = [stripes(i % 2 == 0, GRAY, (6, 6), rng)[..., 0] / 255 for i in range(60)]
    targets = ["horizontal" if i % 2 == 0 else "vertical" for i in range(60)]
    return LogisticRegression(max_iter=500).fit(np.reshape(images, (60, -1)), targets)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("striped")
    rng = np.random.default_rng(1)
    skops_io.dump(stripes_model(rng), root / "stripes.skops")
    for synset, horizontal, rgb in [("zebra.n.01", True, GRAY), ("tiger.n.02", False, ORANGE)]:
        (root / "images" / synset).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(stripes(horizontal, rgb, (6, 6), rng)).save(
                root / "images" / synset / f"{i}.png")
    (root / "photos").mkdir()
    for i in range(4):
        Image.fromarray(stripes(i % 2 == 0, (GRAY, ORANGE)[i % 2], (8, 10), rng)).save(
            root / "photos" / f"{i}.png")
    (root / "hub.toml").write_text(HUB.format(skops=root / "stripes.skops"), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def labels(world, tmp_path_factory):
    return labelled(world, tmp_path_factory.mktemp("labels") / "labels")


def test_label_images_follow_the_largest_expert_unless_set(world, labels, capsys, tmp_path):
    manifest = json.loads((labels / "sdag.json").read_text())
    assert manifest["image_size"] == [12, 12]           # colour's 12 x 12 beats stripes' 6 x 6
    code, out, err = run_main(capsys, "label", world / "hub.toml", "--images", world / "images",
                              "--labels", tmp_path / "small", "--image-size", "6", "6",
                              "--format", "json", "-q")
    assert code == 0, err
    assert json.loads(out)["image_size"] == [6, 6]
    assert json.loads((tmp_path / "small" / "sdag.json").read_text())["image_size"] == [6, 6]


def predict(capsys, labels, *flags):
    """``skmll predict`` on the test directory, whose torch factory experts run only with the
    user's consent (``--trust-code``)."""
    return run_main(capsys, "predict", "--trust-code", labels, *flags)


def test_a_scikit_learn_expert_serves_from_a_hub_file(world, labels, capsys):
    code, out, err = run_main(capsys, "search", "--labels", labels, "--no-cache", "--k", "1",
                              "--format", "json", "zebra", "tiger")
    assert code == 0, err
    report = json.loads(out)
    assert [c["node"] for c in report["classes"]] == ["zebra.n.01", "tiger.n.02"]
    assert report["coverage"] == 1.0
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    code, out, err = predict(capsys, labels, "--labels", labels, "--no-cache", "--classes",
                             "zebra", "tiger", "--", *photos)
    assert code == 0, err
    predicted = [row["prediction"] for row in csv.DictReader(io.StringIO(out))]
    assert predicted == ["zebra", "tiger", "zebra", "tiger"]    # even: horizontal, gray


def test_uncovered_classes_get_reasons_and_flag_hints(world, labels, capsys):
    code, out, err = run_main(capsys, "search", "--labels", labels, "--no-cache", "--format",
                              "json", "zebra", "violin")
    assert code == 0, err
    violin = json.loads(out)["classes"][1]
    assert not violin["covered"] and violin["served_by"] is None
    assert violin["reason"].startswith(("unmatched name", "not matched"))

    # matched, but every expert's loss is above --beta: the best one is named
    code, out, err = run_main(capsys, "search", "--labels", labels, "--no-cache", "--beta",
                              "1e-9", "zebra", "tiger")
    assert code == 1 and "serves 0 of 2 classes" in err
    assert "no expert has a reuse loss under --beta 1e-09" in err and "'stripes'" in err
    assert len(err.strip().splitlines()) == 1

    code, out, err = run_main(capsys, "explain", "--labels", labels, "--no-cache", "zebra",
                              "violin")
    assert code == 0, err
    assert "'violin': " in out and "--general-model" in out
    code, out, err = predict(capsys, labels, "--labels", labels, "--no-cache", "--classes",
                             "zebra", "violin", "--", world / "photos")
    assert code == 1 and "--general-model" in err and "--on-uncovered drop" in err
    for text in (out, err):   # the hints name flags, never Python parameters
        assert "general_model=" not in text and "on_uncovered=" not in text


def test_general_model_conse_from_a_hub_expert_matches_python(world, labels, capsys):
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    code, out, err = predict(capsys, labels, "--labels", labels, "--no-cache", "--classes",
                             "zebra", "violin", "--general-model", "conse:colour",
                             "--format", "json", "--", *photos)
    assert code == 0, err
    rows = json.loads(out)
    labeler = load_label_dir(labels, trust_code=True)
    # calibrated as in Python, on the reference images the label directory keeps
    python = MLLZeroShotClassifier(["zebra", "violin"], labeler, cache_dir=False,
                                   general_model=ConSE(labeler.hub_["colour"], ["red", "blue"])
                                   ).fit()
    expected = python.predict_proba(photos)
    got = [[row["probabilities"][c] for c in python.classes_] for row in rows]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert python.uncovered_classes_ == ["violin"]

    code, out, err = run_main(capsys, "search", "--labels", labels, "--no-cache",
                              "--general-model", "conse:nobody", "zebra")
    assert code == 2 and "no expert 'nobody'" in err


def test_general_model_clip_from_a_transformers_folder(world, labels, capsys,
                                                       tiny_transformers_clip):
    from skmll import CLIPZeroShot

    folder = tiny_transformers_clip[2]
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    code, out, err = predict(capsys, labels, "--labels", labels, "--no-cache", "--classes",
                             "tiger", "violin", "--general-model", f"transformers:{folder}",
                             "--patch-calibration", "none", "--device", "cpu", "--format",
                             "json", "--", *photos)
    assert code == 0, err
    python = MLLZeroShotClassifier(["tiger", "violin"], load_label_dir(labels, trust_code=True),
                                   cache_dir=False, patch_calibration=None,
                                   general_model=CLIPZeroShot.from_transformers(folder)).fit()
    got = [[row["probabilities"][c] for c in python.classes_] for row in json.loads(out)]
    np.testing.assert_allclose(got, python.predict_proba(photos), rtol=1e-5)


def test_general_model_open_clip_architecture_with_a_weights_file(world, labels, capsys,
                                                                  tiny_open_clip):
    from skmll import CLIPZeroShot

    checkpoint = tiny_open_clip[2]    # its architecture "skmll-tiny-clip" is registered
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    flags = ["--labels", labels, "--no-cache", "--classes", "zebra", "violin", "--format", "json"]
    code, out, err = predict(capsys, labels, *flags, "--general-model",
                             "open_clip:skmll-tiny-clip", "--general-weights", checkpoint, "--",
                             *photos)
    assert code == 0, err
    python = MLLZeroShotClassifier(
        ["zebra", "violin"], load_label_dir(labels, trust_code=True), cache_dir=False,
        general_model=CLIPZeroShot.from_open_clip("skmll-tiny-clip", checkpoint_path=checkpoint)
    ).fit()
    got = [[row["probabilities"][c] for c in python.classes_] for row in json.loads(out)]
    np.testing.assert_allclose(got, python.predict_proba(photos), rtol=1e-5)
    code, _, err = predict(capsys, labels, *flags, "--general-weights", checkpoint, "--",
                            *photos)
    assert code == 2 and "--general-weights needs --general-model open_clip:ARCH" in err


def test_skip_bad_images_reports_them_and_predicts_the_rest(world, labels, capsys, tmp_path):
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    broken, truncated = tmp_path / "broken.png", tmp_path / "truncated.png"
    broken.write_bytes(b"not an image at all")
    truncated.write_bytes(Path(photos[0]).read_bytes()[:60])
    given = [photos[0], str(broken), photos[1], str(truncated), *photos[2:]]
    flags = ["--labels", labels, "--no-cache", "--classes", "zebra", "tiger", "--format", "json"]

    code, out, err = predict(capsys, labels, *flags, "--", *given)
    assert code == 1 and "broken.png" in err and out == ""
    code, skipped_out, err = predict(capsys, labels, *flags, "--skip-bad-images",
                                     "--batch-size", "3", "--", *given)
    assert code == 0, err
    assert "skipped 2 of 6" in err and f"{broken}:" in err and f"{truncated}:" in err
    code, clean_out, _ = predict(capsys, labels, *flags, "--", *photos)
    assert json.loads(skipped_out) == json.loads(clean_out)

    code, _, err = predict(capsys, labels, *flags, "--skip-bad-images", "--", broken)
    assert code == 1 and "no image could be read" in err


def test_hub_declare_writes_the_missing_declarations(world, capsys, tmp_path):
    out_file = tmp_path / "elsewhere" / "declared.toml"
    out_file.parent.mkdir()
    before = (world / "hub.toml").read_text()
    code, out, err = run_main(capsys, "hub", "declare", world / "hub.toml", "-o", out_file)
    assert code == 0, err
    assert "built to declare: stripes, colour" in out
    assert (world / "hub.toml").read_text() == before     # -o leaves the input alone
    declared = ModelHub.from_toml(out_file)
    built = ModelHub.from_toml(world / "hub.toml")
    for expert in declared:
        assert expert.declared("n_outputs") == built[expert.name].n_outputs == 2
        assert expert.declared("fingerprint") == built[expert.name].fingerprint
    code, out, err = run_main(capsys, "hub", "declare", out_file)    # in place, nothing to build
    assert code == 0 and "built to declare: none" in out


def test_device_flag_reaches_the_experts(labels, world, capsys):
    code, _, err = predict(capsys, labels, "--labels", labels, "--no-cache", "--device",
                            "no-such-device", "--classes", "zebra", "tiger", "--",
                            world / "photos")
    assert code == 1 and "no-such-device" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_torch_or_sklearn(flag):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "skmll", flag],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "skmll.cli" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "sklearn", "numpy")}


def test_a_directory_without_reference_images_names_the_paper_rule(world, labels, capsys,
                                                                   tmp_path):
    older = tmp_path / "older"
    shutil.copytree(labels, older)
    shutil.rmtree(older / "patch-references")     # as written before they were kept
    photos = sorted(str(p) for p in (world / "photos").iterdir())
    flags = ["--labels", older, "--no-cache", "--classes", "zebra", "violin", "--general-model",
             "conse:colour", "--", *photos]
    code, _, err = predict(capsys, older, *flags)
    assert code == 1 and "keeps no reference images" in err and "--patch-calibration none" in err
    assert "patch_calibration=" not in err
    code, out, err = predict(capsys, older, "--patch-calibration", "none", *flags)
    assert code == 0, err
    code, _, err = predict(capsys, older, "--patch-calibration", "2", *flags)
    assert code == 2 and "expected a number in [0, 1]" in err
