"""The evaluation-dataset loaders on tiny copies of each published layout, and their errors."""

import sys

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
    assert task.class_names == ["Faces easy", "soccer ball"]
    assert len(task.images) == 2


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


def test_meta_album_reads_labels_csv(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    _image(tmp_path / "images" / "b.jpg")
    (tmp_path / "labels.csv").write_text(
        "FILE_NAME,CATEGORY,SUPER_CATEGORY\na.jpg,Golden_Retriever,dog\nb.jpg,Pug,dog\n")
    task = load_meta_album(tmp_path, subset="DOG")
    assert task.name == "meta_album_dog"
    assert task.labels.tolist() == ["Golden Retriever", "Pug"]
    (tmp_path / "labels.csv").write_text("FILE,LABEL\na.jpg,x\n")
    with pytest.raises(ValueError, match="FILE_NAME and CATEGORY"):
        load_meta_album(tmp_path, subset="DOG")


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
    with pytest.raises(ModuleNotFoundError, match="pip install datasets"):
        load_hf_task("ethz/food101", tmp_path)


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
