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
# ImageNet ids: Chihuahua, tabby cat, strawberry, soccer ball
WNIDS = {"n02085620": 40, "n02123045": 110, "n07745940": 180, "n04254680": 240}
PETS = {"Abyssinian": 110, "chihuahua": 40}
CALTECH = {"soccer_ball": 240, "strawberry": 180, "BACKGROUND_Google": 0}


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


def _by(table):
    return {(r["dataset"], r["configuration"], r["method"]): r for r in table}


def test_run_prints_table_1_per_configuration_with_the_papers_figures(table):
    methods = ["CLIP", "CLIP (10 prompts)", "MLL"]
    assert [(r["dataset"], r["configuration"], r["method"]) for r in table] == [
        (d, c, m) for d in ["oxford_pets", "caltech101", "mean"] for c in ["paper", "skmll"]
        for m in methods]
    by = _by(table)
    assert by["oxford_pets", "paper", "CLIP"]["n_images"] == 6
    assert by["caltech101", "paper", "CLIP"]["n_classes"] == 2   # the background is no class
    for dataset in ["oxford_pets", "caltech101"]:
        for configuration in ["paper", "skmll"]:
            rows = [by[dataset, configuration, m] for m in methods]
            # every row's Acc(c) is over the configuration's covered classes
            assert len({r["coverage"] for r in rows}) == 1
    # the published figures stand beside the paper's configuration only
    pets = by["oxford_pets", "paper", "MLL"]
    assert (pets["paper_acc_covered"], pets["paper_coverage"], pets["paper_acc_all"]) == (
        0.9861, 0.53, 0.8614)
    assert by["oxford_pets", "paper", "CLIP"]["paper_acc_all"] == 0.8311
    assert by["oxford_pets", "skmll", "MLL"]["paper_acc_all"] is None
    assert by["oxford_pets", "paper", "CLIP (10 prompts)"]["paper_acc_all"] is None
    # two of the seven tasks: the paper's average over seven is not set beside their mean
    assert by["mean", "paper", "MLL"]["paper_acc_all"] is None
    mean = by["mean", "skmll", "CLIP"]["acc_all"]
    assert mean == pytest.approx((by["oxford_pets", "skmll", "CLIP"]["acc_all"]
                                  + by["caltech101", "skmll", "CLIP"]["acc_all"]) / 2)


def test_a_task_is_partly_covered(table):
    """The world exercises the patch: some task has covered and uncovered classes."""
    by = _by(table)
    assert any(0 < by[d, c, "MLL"]["coverage"] < 1 for d in ["oxford_pets", "caltech101"]
               for c in ["paper", "skmll"])


def _accuracy(clip, images, labels, class_names):
    proba = clip.predict_proba(as_image_batch(images), class_names)
    return np.mean(np.asarray(class_names)[proba.argmax(1)] == labels)


@pytest.mark.parametrize("templates, method", [(None, "CLIP"),
                                                ("default", "CLIP (10 prompts)")])
def test_clip_rows_are_the_checkpoints_own_accuracy(world, table, templates, method):
    options = {} if templates is None else {"templates": templates}
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"], **options)
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    for configuration in ["paper", "skmll"]:
        row = _by(table)["oxford_pets", configuration, method]
        assert row["acc_all"] == pytest.approx(
            _accuracy(clip, task.images, task.labels, task.class_names))
        covered = _by(table)["oxford_pets", configuration, "MLL"]
        names = [c for c in task.class_names
                 if c in _covered_classes(world, task, configuration)]
        assert row["coverage"] == covered["coverage"] == len(names) / len(task.class_names)
        if not names:
            assert row["acc_covered"] is None
            continue
        # Acc(c): CLIP asked about the covered classes only, on their images
        keep = np.isin(task.labels, names)
        assert row["acc_covered"] == pytest.approx(_accuracy(
            clip, [i for i, k in zip(task.images, keep) if k], task.labels[keep], names))


def _covered_classes(world, task, configuration):
    from skmll import MLLZeroShotClassifier
    from skmll.paper import CONFIGURATIONS

    labeler = load_label_dir(world["root"] / "labels")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    return MLLZeroShotClassifier(task.class_names, labeler, general_model=clip,
                                 **CONFIGURATIONS[configuration]).fit().covered_classes_


@pytest.mark.parametrize("configuration", ["paper", "skmll"])
def test_mll_row_is_mll_alone_on_covered_and_patched_on_all(world, table, configuration):
    from skmll import MLLZeroShotClassifier
    from skmll.paper import CONFIGURATIONS

    labeler = load_label_dir(world["root"] / "labels")
    assert labeler.hub_.names == ["vit-three", "vit-five"]
    task = load_caltech101(world["data"] / "caltech-101" / "101_ObjectCategories")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    params = CONFIGURATIONS[configuration]
    patched = MLLZeroShotClassifier(task.class_names, labeler, general_model=clip,
                                    **params).fit()
    row = _by(table)["caltech101", configuration, "MLL"]
    assert row["coverage"] == len(patched.covered_classes_) / 2
    assert row["acc_all"] == pytest.approx(np.mean(patched.predict(task.images) == task.labels))
    keep = np.isin(task.labels, patched.covered_classes_)
    if not keep.any():
        assert row["acc_covered"] is None
        return
    alone = MLLZeroShotClassifier(task.class_names, labeler, on_uncovered="drop",
                                  **params).fit()
    images = [i for i, k in zip(task.images, keep) if k]
    assert row["acc_covered"] == pytest.approx(np.mean(alone.predict(images)
                                                       == task.labels[keep]))


def test_files_hold_the_printed_table(world, table):
    with open(world["root"] / "out" / "table1.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == len(table)
    for printed, row in zip(table, written):
        for key in ["acc_covered", "coverage", "acc_all", "paper_acc_all"]:
            value = printed[key]
            assert (row[key] == "nan") if value is None else math.isclose(float(row[key]), value)
    markdown = (world["root"] / "out" / "table1.md").read_text()
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == len(table) + 2
    assert "| Acc(c) | Cvr | Acc(a) | paper Acc(c) | paper Cvr | paper Acc(a) |" in markdown
    assert "all-MiniLM-L6-v2" in markdown   # what stands in for the paper's text encoder


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


def test_check_hub_reports_local_folders_and_offline_ids(world, tmp_path, monkeypatch):
    import huggingface_hub.constants

    (tmp_path / "no-config").mkdir()
    hub = tmp_path / "hub.toml"
    hub.write_text(f'[[expert]]\nsource = "hf:{world["root"] / "models" / "vit-three"}"\n\n'
                   f'[[expert]]\nname = "empty"\nsource = "hf:{tmp_path / "no-config"}"\n')
    assert check_hub(hub) == {"empty": f"local folder {str(tmp_path / 'no-config')!r} holds no "
                                       "config.json (not a save_pretrained folder)"}
    assert main(["paper", "check-hub", "--hub", str(hub), "-q"]) == 1
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with paper_hub_file() as shipped:
        problems = check_hub(shipped)
    assert len(problems) == 48 and set(problems.values()) == {
        "not checked: offline (HF_HUB_OFFLINE is set)"}


def test_check_hub_offline_prints_one_line_per_id(world, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hub = world["root"] / "offline-hub.toml"
    hub.write_text('[[expert]]\nsource = "hf:org/a"\n\n[[expert]]\nsource = "hf:org/b"\n')
    assert main(["paper", "check-hub", "--hub", str(hub)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and all("not checked: offline" in line for line in lines[1:])
    assert "Traceback" not in captured.err


def test_tasks_work_with_cross_val_score(world, table):
    from sklearn.model_selection import KFold, cross_val_score

    from skmll import MLLZeroShotClassifier

    labeler = load_label_dir(world["root"] / "labels")
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    clf = MLLZeroShotClassifier(task.class_names, labeler,
                                general_model=load_clip(CLIP_NAME, checkpoint_path=world["clip"]))
    scores = cross_val_score(clf, task.images, task.labels, cv=KFold(2))   # file lists index
    row = _by(table)["oxford_pets", "skmll", "MLL"]
    assert np.mean(scores) == pytest.approx(row["acc_all"])   # two folds of three images


def test_label_directory_keeps_reference_images_the_patch_calibrates_on(world, table):
    from skmll import MLLZeroShotClassifier, ModelLabeler
    from skmll.paper import imagenet_sdag
    from skmll.labelling import StoredReferenceImages

    labels = world["root"] / "labels"
    opened = load_label_dir(labels)   # no image held
    sdag = imagenet_sdag(world["imagenet"], image_size=(32, 32))
    kept = StoredReferenceImages(labels, opened.sdag)
    synsets = [sdag.node_ids[i] for i in np.flatnonzero(sdag.n_images)]
    assert len(synsets) == len(WNIDS)
    for node in synsets:   # three images each, all kept as the SDAG reads them, in 8 bits
        read = np.concatenate([images for images, _ in sdag.iter_batches(nodes=[node])])
        assert kept.count(node) == 3
        np.testing.assert_allclose(np.concatenate(list(kept.batches([node]))), read,
                                   rtol=0, atol=0.5 / 255 + 1e-7)
    held = ModelLabeler(sdag, cache_dir=labels, verbose=0).fit(opened.hub_)   # from the cache
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    fitted = [MLLZeroShotClassifier(task.class_names, labeler, general_model=clip,
                                    patch_calibration=0.2, cache_dir=False).fit()
              for labeler in (held, opened)]
    assert 0 < fitted[0].coverage_ < 1   # partly covered: the patch is calibrated
    assert fitted[0].patch_bias_ == fitted[1].patch_bias_


def test_no_reference_images_and_no_sdag_images_is_a_clear_error(world, table, tmp_path):
    import shutil

    from skmll import MLLZeroShotClassifier

    copy = tmp_path / "labels"
    shutil.copytree(world["root"] / "labels", copy)
    shutil.rmtree(copy / "patch-references")
    task = load_oxford_pets(world["data"] / "oxford-iiit-pet")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    clf = MLLZeroShotClassifier(task.class_names, load_label_dir(copy), general_model=clip,
                                cache_dir=False)
    with pytest.raises(FileNotFoundError, match="keeps no reference images.*"
                                                "patch_calibration=None"):
        clf.fit()
    clf.set_params(patch_calibration=None).fit()   # the paper's rule needs none


def test_dry_run_counts_labelling_and_times_each_expert(world, table, capsys):
    args = _run(world, "--imagenet", str(world["imagenet"]), "--image-size", "32", "32",
                "--per-node", "2", "--dry-run", "--device", "cpu")
    args.remove("--format"), args.remove("json")
    assert main(args) == 0
    out = capsys.readouterr().out
    # 2 experts x 4 synsets x 2 images; labels: 4 nodes x (16 x heads + 8) bytes per expert
    assert "2 experts x 8 images (4 synsets, <= 2 each) = 16 forward passes" in out
    assert "labels counted below" in out   # the stand-in hub file declares no n_outputs
    assert f"labels {4 * (16 * 3 + 8) + 4 * (16 * 5 + 8)} B" in out
    assert f"patch reference images {4 * 2 * 32 * 32 * 3 / 1e3:.3g} kB" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()
             if line.startswith("vit-")}
    assert set(lines) == {"vit-three", "vit-five"}
    assert all(float(fields[1]) > 0 for fields in lines.values())   # measured ms per image
    args = _run(world, "--dry-run")   # labels made elsewhere: nothing to label
    args.remove("--format"), args.remove("json")
    assert main(args) == 0
    assert "labelling: none (the labels in" in capsys.readouterr().out
    args[args.index("--labels") + 1] = str(world["root"] / "no-such-labels")
    assert main(args) == 1
    assert "label directory" in capsys.readouterr().err


def test_the_mean_row_carries_the_papers_average_only_over_its_seven_tasks():
    from skmll.paper._experiment import _mean_rows
    from skmll.paper._published import PAPER_COLUMNS

    def rows(datasets):
        return [{"dataset": d, "configuration": "paper", "method": "MLL", "n_classes": 2,
                 "n_images": 4, "acc_covered": i / 10, "coverage": 0.5, "acc_all": 0.25}
                for i, d in enumerate(datasets)]

    [mean] = _mean_rows(rows(PAPER_COLUMNS))
    assert mean["acc_covered"] == pytest.approx(0.3)
    assert (mean["paper_acc_covered"], mean["paper_coverage"], mean["paper_acc_all"]) == (
        0.9723, 0.51, 0.8519)
    [mean] = _mean_rows(rows(list(PAPER_COLUMNS)[:6]))
    assert math.isnan(mean["paper_acc_all"])


def test_every_selected_expert_runs_on_the_device(world, table):
    """The device reaches the experts the paper run selects (an unknown one is refused by
    them), and, as every classifier does, the run moves copies: the labeler's experts stay."""
    from skmll.paper import run_paper_experiment

    labeler = load_label_dir(world["root"] / "labels")
    task = load_caltech101(world["data"] / "caltech-101" / "101_ObjectCategories")
    clip = load_clip(CLIP_NAME, checkpoint_path=world["clip"])
    rows = run_paper_experiment([task], labeler, clip, device="cpu")
    assert rows[-1]["coverage"] > 0   # some expert serves a class, so some expert runs
    assert all(expert._device is None for expert in labeler.hub_)
    with pytest.raises(Exception, match="no-such-device"):
        run_paper_experiment([task], labeler, clip, device="no-such-device")


def test_class_names_files_reach_the_loaders_from_the_command_line(world, tmp_path, capsys):
    names = tmp_path / "caltech.tsv"
    names.write_text("soccer_ball\tfootball\n")   # no line for the strawberry folder
    args = _run(world, "--datasets", "caltech", "--class-names", f"caltech={names}")
    assert main(args) == 1
    assert "names no class for ['strawberry']" in capsys.readouterr().err
    assert main(_run(world, "--class-names", f"cifar={names}")) == 2
    assert "expected DATASET=FILE with DATASET one of" in capsys.readouterr().err


def test_a_local_copy_of_openai_weights_gets_quick_gelu(world):
    """The paper's CLIP is ViT-B/32 with OpenAI's weights, trained with QuickGELU: a local
    checkpoint of them is built the same way, and any other checkpoint as its tag says."""
    import open_clip

    from skmll.reuse import trained_with_quick_gelu

    assert trained_with_quick_gelu("ViT-B-32", "openai")
    state = open_clip.create_model("ViT-B-32").state_dict()
    path = world["root"] / "vit-b-32.pt"
    torch.save(state, path)
    openai = load_clip("ViT-B-32", checkpoint_path=path, batch_size=2)
    plain = load_clip("ViT-B-32", pretrained=None, checkpoint_path=path, batch_size=2)
    images = np.random.default_rng(0).random((2, 40, 30, 3), dtype=np.float32)
    assert openai.fingerprint != plain.fingerprint    # the same weights, other activations
    assert not np.allclose(openai.predict_proba(images, ["cat", "dog"]),
                           plain.predict_proba(images, ["cat", "dog"]))
