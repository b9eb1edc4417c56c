"""The paper's experiment end to end, offline, on stand-ins built here.

A tiny ImageNet-layout folder, two tiny random Hugging Face classifiers saved locally and listed
in a hub file, a tiny random open_clip CLIP saved locally, and two evaluation datasets in
their published layouts (Oxford-IIIT Pets, Caltech-101): the same code users run on the real
data, through ``skmll paper run``.
"""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from skmll.cli import main
from skmll.hub import as_image_batch
from skmll.labelling import load_label_dir
from skmll.paper import check_hub, load_caltech101, load_clip, load_oxford_pets, paper_hub_file

transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")

CLIP_NAME = "skmll-paper-tiny-clip"
# ImageNet ids: Chihuahua, tabby cat, banana, soccer ball
WNIDS = {"n02085620": 40, "n02123045": 110, "n07753592": 180, "n04254680": 240}
PETS = {"Abyssinian": 110, "chihuahua": 40}
CALTECH = {"soccer_ball": 240, "banana": 180, "BACKGROUND_Google": 0}


def _save(path, value, rng, size=(20, 28)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(value + rng.integers(-20, 20, (*size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def _save_vit(folder, seed, n_outputs):
    from transformers import AutoModelForImageClassification, ViTConfig, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=n_outputs)
    AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def _save_clip(folder):
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "patch_size": 8, "layers": 1, "width": 32,
                             "head_width": 16},
              "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2,
                           "layers": 1}}
    (folder / f"{CLIP_NAME}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{CLIP_NAME}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(CLIP_NAME).state_dict(), folder / "clip.pt")
    return folder / "clip.pt"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    rng = np.random.default_rng(0)
    for wnid, value in WNIDS.items():
        for i in range(3):
            _save(root / "imagenet" / wnid / f"{wnid}_{i}.JPEG", value, rng)
    _save_vit(root / "models" / "vit-three", 0, 3)
    _save_vit(root / "models" / "vit-five", 1, 5)
    (root / "hub.toml").write_text('[[expert]]\nsource = "hf:models/vit-three"\n\n'
                                   '[[expert]]\nsource = "hf:models/vit-five"\n')
    pets = root / "data" / "oxford-iiit-pet"
    lines = []
    for n, (breed, value) in enumerate(PETS.items(), start=1):
        for i in range(3):
            _save(pets / "images" / f"{breed}_{i}.jpg", value, rng, size=(36, 30))
            lines.append(f"{breed}_{i} {n} 1 {n}")
    (pets / "annotations").mkdir()
    (pets / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")
    caltech = root / "data" / "caltech-101" / "101_ObjectCategories"
    for folder, value in CALTECH.items():
        for i in range(2):
            _save(caltech / folder / f"image_{i:04d}.jpg", value, rng, size=(24, 24))
    return {"root": root, "hub": root / "hub.toml", "clip": _save_clip(root),
            "data": root / "data", "imagenet": root / "imagenet"}


def _run(world, *extra):
    return ["paper", "run", "--hub", str(world["hub"]), "--labels",
            str(world["root"] / "labels"), "--data-root", str(world["data"]),
            "--datasets", "pets", "caltech", "--clip-model", CLIP_NAME,
            "--clip-checkpoint", str(world["clip"]), "--format", "json", "-q", *extra]


@pytest.fixture(scope="module")
def table(world):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(_run(world, "--imagenet", str(world["imagenet"]), "--image-size", "32", "32",
                         "--out", str(world["root"] / "out")))
    assert code == 0
    return json.loads(out.getvalue())


def test_run_prints_table_1_for_each_dataset_and_method(table):
    assert [(r["dataset"], r["method"]) for r in table] == [
        (d, m) for d in ["oxford_pets", "caltech101", "mean"] for m in ["MLL", "CLIP", "MLL+CLIP"]]
    by = {(r["dataset"], r["method"]): r for r in table}
    assert by["caltech101", "MLL"]["coverage"] > 0   # the stand-in hub serves classes: MLL runs
    assert by["oxford_pets", "CLIP"]["n_images"] == 6
    assert by["caltech101", "CLIP"]["n_classes"] == 2   # the background folder is no class
    for dataset in ["oxford_pets", "caltech101"]:
        assert by[dataset, "CLIP"]["coverage"] == 1.0
        assert by[dataset, "MLL"]["coverage"] == by[dataset, "MLL+CLIP"]["coverage"]
        for row in (by[dataset, m] for m in ["MLL", "CLIP", "MLL+CLIP"]):
            assert 0.0 <= row["acc_all"] <= 1.0
    mean = by["mean", "CLIP"]["acc_all"]
    assert mean == pytest.approx((by["oxford_pets", "CLIP"]["acc_all"]
                                  + by["caltech101", "CLIP"]["acc_all"]) / 2)


def test_clip_row_is_the_checkpoints_own_accuracy(world, table):
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    proba = clip.predict_proba(as_image_batch(task.images), task.class_names)
    accuracy = np.mean(np.asarray(task.class_names)[proba.argmax(1)] == task.labels)
    row = next(r for r in table if r["dataset"] == "oxford_pets" and r["method"] == "CLIP")
    assert row["acc_all"] == pytest.approx(accuracy)


def test_mll_rows_follow_the_labelled_hub(world, table):
    from skmll import MLLZeroShotClassifier

    labeler = load_label_dir(world["root"] / "labels")
    assert labeler.hub_.names == ["vit-three", "vit-five"]
    task = load_caltech101(world["data"] / "caltech-101" / "101_ObjectCategories")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    patched = MLLZeroShotClassifier(task.class_names, labeler, general_model=clip).fit()
    row = next(r for r in table if r["dataset"] == "caltech101" and r["method"] == "MLL+CLIP")
    assert row["coverage"] == len(patched.covered_classes_) / 2
    assert row["acc_all"] == pytest.approx(np.mean(patched.predict(task.images) == task.labels))


def test_files_hold_the_printed_table(world, table):
    with open(world["root"] / "out" / "table1.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == len(table)
    for printed, row in zip(table, written):
        for key in ["acc_covered", "coverage", "acc_all"]:
            value = printed[key]
            assert (row[key] == "nan") if value is None else math.isclose(float(row[key]), value)
    markdown = (world["root"] / "out" / "table1.md").read_text()
    assert markdown.count("\n") == len(table) + 2 and "| Acc(c) | Cvr | Acc(a) |" in markdown


def test_a_rerun_reuses_the_label_directory(world, table, capsys):
    args = _run(world, "--out", str(world["root"] / "again"))   # no --imagenet
    del args[args.index("--hub"):args.index("--hub") + 2]   # the directory's own hub file
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == table


def test_missing_labels_and_data_fail_with_one_clear_line(world, tmp_path, capsys):
    args = _run(world, "--out", str(tmp_path / "out"))
    args[args.index("--labels") + 1] = str(tmp_path / "no-labels")
    assert main(args) == 1
    assert "label directory" in capsys.readouterr().err
    args = _run(world, "--datasets", "flowers")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "flowers-102" in err and "robots.ox.ac.uk" in err
    assert main(_run(world, "--hf-imagenet", "ILSVRC/imagenet-1k")) == 2
    assert "--hf-imagenet needs --imagenet" in capsys.readouterr().err


def test_clip_weights_absent_offline_say_how_to_give_them(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="--clip-checkpoint"):
        load_clip("ViT-B-32", "openai")


def test_check_hub_reports_local_folders_and_needs_the_network(world, tmp_path, monkeypatch):
    import huggingface_hub.constants

    (tmp_path / "no-config").mkdir()
    hub = tmp_path / "hub.toml"
    hub.write_text(f'[[expert]]\nsource = "hf:{world["root"] / "models" / "vit-three"}"\n\n'
                   f'[[expert]]\nname = "empty"\nsource = "hf:{tmp_path / "no-config"}"\n')
    assert check_hub(hub) == {"empty": f"local folder {str(tmp_path / 'no-config')!r} holds no "
                                       "config.json (not a save_pretrained folder)"}
    assert main(["paper", "check-hub", "--hub", str(hub), "-q"]) == 1
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with paper_hub_file() as shipped, pytest.raises(ConnectionError, match="needs the network"):
        check_hub(shipped)


def test_tasks_work_with_cross_val_score(world, table):
    from sklearn.model_selection import KFold, cross_val_score

    from skmll import MLLZeroShotClassifier

    labeler = load_label_dir(world["root"] / "labels")
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    clf = MLLZeroShotClassifier(task.class_names, labeler,
                                general_model=load_clip(CLIP_NAME, checkpoint_path=world["clip"]))
    scores = cross_val_score(clf, task.images, task.labels, cv=KFold(2))   # file lists index
    row = next(r for r in table if r["dataset"] == "oxford_pets" and r["method"] == "MLL+CLIP")
    assert np.mean(scores) == pytest.approx(row["acc_all"])   # two folds of three images
