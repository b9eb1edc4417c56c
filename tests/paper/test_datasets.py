"""The evaluation-dataset loaders on tiny copies of each published layout, and their errors."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from skmll.paper import (
    PAPER_DATASETS,
    ZeroShotTask,
    flowers102_class_names,
    imagenet_sdag,
    load_caltech101,
    load_flowers102,
    load_food101,
    load_hf_task,
    load_meta_album,
    load_oxford_pets,
    load_paper_task,
)


def _image(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(path)


def test_oxford_pets_reads_the_annotation_split(tmp_path):
    for name in ["Abyssinian_7", "Abyssinian_9", "american_pit_bull_terrier_3", "Bombay_1"]:
        _image(tmp_path / "images" / f"{name}.jpg")
    (tmp_path / "annotations").mkdir()
    # the test list: image, class id (1-based), species, breed id; Bombay_1 is not in it
    (tmp_path / "annotations" / "test.txt").write_text(
        "Abyssinian_7 1 1 1\namerican_pit_bull_terrier_3 3 2 2\nAbyssinian_9 1 1 1\n")
    task = load_oxford_pets(tmp_path)
    assert task.class_names == ["Abyssinian", "american pit bull terrier"]
    assert task.labels.tolist() == ["Abyssinian", "american pit bull terrier", "Abyssinian"]
    assert task.images[1].endswith("images/american_pit_bull_terrier_3.jpg")


def test_food101_names_come_from_labels_txt(tmp_path):
    for entry in ["apple_pie/11", "waffles/5", "waffles/8"]:
        _image(tmp_path / "images" / f"{entry}.jpg")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "classes.txt").write_text("apple_pie\nwaffles\n")
    (tmp_path / "meta" / "labels.txt").write_text("Apple pie\nWaffles\n")
    (tmp_path / "meta" / "test.txt").write_text("waffles/8\napple_pie/11\n")
    task = load_food101(tmp_path)
    assert task.class_names == ["Apple pie", "Waffles"]
    assert task.labels.tolist() == ["Waffles", "Apple pie"]
    (tmp_path / "meta" / "labels.txt").write_text("Apple pie\n")
    with pytest.raises(ValueError, match="1 names for 2 classes"):
        load_food101(tmp_path)


def test_caltech101_leaves_out_the_background_folder(tmp_path):
    for folder in ["soccer_ball", "Faces_easy", "BACKGROUND_Google"]:
        _image(tmp_path / folder / "image_0001.jpg")
    (tmp_path / "soccer_ball" / "notes.txt").write_text("not an image")
    task = load_caltech101(tmp_path)
    assert task.class_names == ["centered face", "soccer ball"]
    assert len(task.images) == 2


def test_caltech101_names_tell_the_face_folders_apart_and_read_as_people_say(tmp_path):
    folders = ["Faces", "Faces_easy", "Leopards", "car_side", "water_lilly", "yin_yang", "ant"]
    for i, folder in enumerate(folders):
        _image(tmp_path / folder / "image_0001.jpg", value=10 * i)
    task = load_caltech101(tmp_path)
    assert {Path(i).parent.name: label for i, label in zip(task.images, task.labels)} == {
        "Faces": "off-center face", "Faces_easy": "centered face", "Leopards": "leopard",
        "car_side": "side of a car", "water_lilly": "water lily",
        "yin_yang": "yin and yang symbol", "ant": "ant"}
    assert sorted(task.class_names) == sorted(task.labels)   # one image per folder


def test_caltech101_shipped_names_cover_every_folder_once():
    from importlib import resources

    from skmll.paper import read_class_names

    names = read_class_names(resources.files("skmll.paper").joinpath("caltech101_classes.tsv"))
    assert len(names) == 101 == len({n.lower() for n in names.values()})
    assert "BACKGROUND_Google" not in names


def test_class_names_are_a_file_a_user_can_override(tmp_path):
    for folder in ["Faces", "Faces_easy", "ant"]:
        _image(tmp_path / "data" / folder / "image_0001.jpg")
    mine = tmp_path / "names.tsv"
    mine.write_text("# mine\nFaces\tface in a scene\nFaces_easy\tportrait\nant\tant\n")
    assert load_caltech101(tmp_path / "data", class_names=mine).class_names == [
        "face in a scene", "portrait", "ant"]
    mine.write_text("Faces\tface\nFaces_easy\tFace\nant\tant\n")
    with pytest.raises(ValueError, match="one name for several classes: 'face' "
                                         "\\(Faces, Faces_easy\\)"):
        load_caltech101(tmp_path / "data", class_names=mine)
    mine.write_text("Faces\tface\n")
    with pytest.raises(ValueError, match="names no class for \\['Faces_easy', 'ant'\\]"):
        load_caltech101(tmp_path / "data", class_names=mine)
    mine.write_text("Faces face\n")
    with pytest.raises(ValueError, match="line 1 .* is not 'identifier<TAB>name'"):
        load_caltech101(tmp_path / "data", class_names=mine)


def test_pets_and_food_take_user_names(tmp_path):
    _image(tmp_path / "pets" / "images" / "great_pyrenees_1.jpg")
    (tmp_path / "pets" / "annotations").mkdir()
    (tmp_path / "pets" / "annotations" / "test.txt").write_text("great_pyrenees_1 1 2 1\n")
    task = load_oxford_pets(tmp_path / "pets",
                            class_names={"great_pyrenees": "Great Pyrenees dog"})
    assert task.class_names == ["Great Pyrenees dog"] == task.labels.tolist()
    _image(tmp_path / "food" / "images" / "pho" / "1.jpg")
    (tmp_path / "food" / "meta").mkdir()
    (tmp_path / "food" / "meta" / "classes.txt").write_text("pho\n")
    (tmp_path / "food" / "meta" / "test.txt").write_text("pho/1\n")
    task = load_food101(tmp_path / "food", class_names={"pho": "Vietnamese noodle soup"})
    assert task.labels.tolist() == ["Vietnamese noodle soup"]


def test_flowers102_maps_mat_labels_to_the_shipped_names(tmp_path):
    for i in range(1, 5):
        _image(tmp_path / "jpg" / f"image_{i:05d}.jpg")
    savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[102, 1, 1, 77]])})
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[2]]), "valid": np.array([[3]]),
                                      "tstid": np.array([[4, 1]])})
    task = load_flowers102(tmp_path)
    assert task.labels.tolist() == ["passion flower", "blackberry lily"]
    assert len(task.class_names) == 102 == len(set(flowers102_class_names()))
    assert load_flowers102(tmp_path, split="train").labels.tolist() == ["pink primrose"]
    with pytest.raises(ValueError, match="split must be one of"):
        load_flowers102(tmp_path, split="validation")
    mine = {str(n): f"flower {n}" for n in range(1, 103)}
    assert load_flowers102(tmp_path, class_names=mine).labels.tolist() == [
        "flower 77", "flower 102"]
    del mine["77"]
    with pytest.raises(ValueError, match=r"names no class for \['77'\]"):
        load_flowers102(tmp_path, class_names=mine)


def _meta_album(folder, n_classes, per_class):
    rows = ["FILE_NAME,CATEGORY,SUPER_CATEGORY"]
    for c in range(n_classes):
        for i in range(per_class):
            _image(folder / "images" / f"{c}_{i}.jpg")
            rows.append(f"{c}_{i}.jpg,Bird_{c:02d},bird")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def test_meta_album_reads_labels_csv(tmp_path):
    _meta_album(tmp_path, 20, 40)   # the Micro version's shape
    task = load_meta_album(tmp_path, subset="BRD")
    assert task.name == "meta_album_brd"
    assert len(task.class_names) == 20 and len(task.images) == 800
    assert task.labels[:41].tolist() == ["Bird 00"] * 40 + ["Bird 01"]
    (tmp_path / "labels.csv").write_text("FILE,LABEL\na.jpg,x\n")
    with pytest.raises(ValueError, match="FILE_NAME and CATEGORY"):
        load_meta_album(tmp_path, subset="BRD")


@pytest.mark.parametrize("n_classes, per_class, seen", [
    (30, 40, "30 classes of 40 to 40 images"),      # Mini: every class, 40 images each
    (20, 41, "20 classes of 41 to 41 images")])     # Extended: every image
def test_meta_album_micro_is_checked_by_its_shape(tmp_path, n_classes, per_class, seen):
    _meta_album(tmp_path, n_classes, per_class)
    with pytest.raises(ValueError, match=f"holds {seen}, not the micro version's 20 classes "
                                         "of 40 images each; download the Meta-Album BRD "
                                         "dataset, Micro version"):
        load_meta_album(tmp_path, subset="BRD")
    if per_class == 40:
        assert len(load_meta_album(tmp_path, subset="BRD", version="mini").class_names) == 30
    assert len(load_meta_album(tmp_path, subset="BRD", version="extended").images) == (
        n_classes * per_class)


def test_a_listed_image_that_is_missing_is_named(tmp_path):
    _image(tmp_path / "images" / "Pug_1.jpg")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "test.txt").write_text("Pug_1 1 2 1\nPug_2 1 2 1\n")
    with pytest.raises(FileNotFoundError, match="Pug_2.jpg"):
        load_oxford_pets(tmp_path)


@pytest.mark.parametrize("name", list(PAPER_DATASETS))
def test_each_absent_dataset_says_where_to_get_it(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="does not exist; download"):
        load_paper_task(name, tmp_path)


def test_unknown_dataset_lists_the_papers():
    with pytest.raises(ValueError, match="the paper's are"):
        load_paper_task("cifar", ".")


def test_subsample_keeps_at_most_n_per_class_and_every_class():
    labels = np.array(["a"] * 5 + ["b"] * 2, dtype=object)
    task = ZeroShotTask("t", [f"f{i}" for i in range(7)], labels, ["a", "b"])
    small = task.subsample(3, random_state=1)
    assert sorted(small.labels.tolist()) == ["a", "a", "a", "b", "b"]
    assert all(task.labels[int(p[1:])] == label for p, label in zip(small.images, small.labels))


def test_hugging_face_copies_need_the_datasets_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)   # as when it is not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'skmll\[paper\]'"):
        load_hf_task("ethz/food101", tmp_path)


def _saved_dataset(folder, splits):
    """A ``datasets`` DatasetDict with an Image column and a ClassLabel, saved to disk."""
    datasets = pytest.importorskip("datasets")
    import io

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["red_fox", "tabby"])})

    def png(value):
        buffer = io.BytesIO()
        Image.fromarray(np.full((9, 7, 3), value, np.uint8)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    dataset = datasets.DatasetDict({
        split: datasets.Dataset.from_dict(
            {"image": [png(10 * i) for i in range(len(labels))], "label": labels},
            features=features)
        for split, labels in splits.items()})
    dataset.save_to_disk(str(folder))
    return folder


def test_hf_task_from_a_saved_copy_takes_its_evaluation_split(tmp_path):
    # Food-101's layout: no "test" split, the evaluation split is "validation"
    saved = _saved_dataset(tmp_path / "food", {"train": [0, 0, 1], "validation": [1, 0]})
    task = load_hf_task(saved, tmp_path / "export")
    assert task.class_names == ["red fox", "tabby"]
    assert task.labels.tolist() == ["tabby", "red fox"]
    assert [Image.open(p).getpixel((0, 0)) for p in task.images] == [(0, 0, 0), (10, 10, 10)]
    assert len(load_hf_task(saved, tmp_path / "train", split="train").images) == 3
    with pytest.raises(ValueError, match=r"has no split 'test'; its splits are "
                                         r"\['train', 'validation'\]"):
        load_hf_task(saved, tmp_path / "x", split="test")


def test_hf_rows_labelled_minus_one_are_refused(tmp_path):
    saved = _saved_dataset(tmp_path / "withheld", {"test": [0, -1, -1, 1]})
    with pytest.raises(ValueError, match=r"2 of 4 rows are labelled \[-1\].*unlabelled"):
        load_hf_task(saved, tmp_path / "export")
    assert not (tmp_path / "export").exists()   # refused before any image is written


def test_hf_food101_defaults_to_its_validation_split():
    from skmll.paper._datasets import _HF_EVALUATION_SPLITS

    assert _HF_EVALUATION_SPLITS["ethz/food101"] == "validation"


def test_hf_dataset_unreachable_is_one_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not load the Hugging Face dataset "
                                                "'no-such-org/no-such-set' .*network"):
        load_hf_task("no-such-org/no-such-set", tmp_path / "export")


def test_imagenet_folder_errors_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="image-net.org"):
        imagenet_sdag(tmp_path / "absent")
    _image(tmp_path / "cat.n.01" / "x.png")   # a synset-name folder, not an ImageNet id
    with pytest.raises(FileNotFoundError, match="no WordNet-id folder"):
        imagenet_sdag(tmp_path)


def test_hugging_face_imagenet_labels_become_wordnet_ids():
    from types import SimpleNamespace

    from skmll.paper._imagenet import _wnids_of_labels
    from skmll.reuse import imagenet_wnids

    wnids = ["n02085620", "n02123045"]
    assert _wnids_of_labels("d", SimpleNamespace(names=wnids), "label") == wnids
    ilsvrc = SimpleNamespace(names=[f"class {i}" for i in range(1000)])   # human-readable names
    assert _wnids_of_labels("d", ilsvrc, "label") == imagenet_wnids()
    with pytest.raises(ValueError, match="not WordNet ids"):
        _wnids_of_labels("d", SimpleNamespace(names=["cat", "dog"]), "label")


def test_categories_that_read_alike_are_refused(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    _image(tmp_path / "images" / "b.jpg")
    (tmp_path / "labels.csv").write_text("FILE_NAME,CATEGORY\na.jpg,Snow_Leopard\n"
                                         "b.jpg,snow leopard\n")
    with pytest.raises(ValueError, match="one name for several classes: 'snow leopard'"):
        load_meta_album(tmp_path, subset="AWA", version="extended")
