"""The paper's seven evaluation datasets, read from their published folder layouts.

Each loader returns a :class:`ZeroShotTask`: image file paths, the true class name of each
image, and the task's class names (what :class:`~skmll.MLLZeroShotClassifier` is given).
Nothing is downloaded: the user fetches each dataset from its publisher (the error raised
when a folder is missing says from where) or from a Hugging Face ``datasets`` copy
(:func:`load_hf_task`).
"""

import csv
import re
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from ..hub._images import is_image_path


@dataclass(frozen=True)
class ZeroShotTask:
    """A zero-shot evaluation task: images, their true class names, the task's class names.

    Attributes
    ----------
    name : str
    images : list of str
        Image file paths.
    labels : ndarray of str, shape (n_images,)
        The true class name of each image.
    class_names : list of str
        Every class of the task, in the dataset's own order.
    """

    name: str
    images: list
    labels: np.ndarray
    class_names: list = field(default_factory=list)

    def subsample(self, max_per_class, random_state=0):
        """At most ``max_per_class`` images of each class, sampled with ``random_state``.

        Examples
        --------
        >>> import numpy as np
        >>> task = ZeroShotTask("t", ["a1", "a2", "b1"], np.array(["a", "a", "b"]), ["a", "b"])
        >>> task.subsample(1).labels.tolist()
        ['a', 'b']
        """
        rng = check_random_state(random_state)
        keep = []
        for name in self.class_names:
            rows = np.flatnonzero(self.labels == name)
            keep.extend(rng.choice(rows, min(max_per_class, rows.size), replace=False))
        keep = np.sort(np.asarray(keep, dtype=int))
        return ZeroShotTask(self.name, [self.images[i] for i in keep], self.labels[keep],
                            list(self.class_names))


def _readable(identifier):
    """``"american_pit_bull_terrier"`` -> ``"american pit bull terrier"``."""
    return " ".join(identifier.replace("_", " ").split())


def _require(path, dataset, how_to_get):
    if not path.exists():
        raise FileNotFoundError(f"{dataset}: {str(path)!r} does not exist; {how_to_get}")
    return path


def _task(name, images, labels, class_names):
    if not images:
        raise ValueError(f"{name}: no image found")
    missing = [p for p in images[:1000] if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {len(missing)} listed image file(s) are missing, "
                                f"e.g. {missing[0]!r}")
    return ZeroShotTask(name, [str(p) for p in images], np.asarray(labels, dtype=object),
                        list(class_names))


_PETS_SOURCE = ("download images.tar.gz and annotations.tar.gz from "
                "https://www.robots.ox.ac.uk/~vgg/data/pets/ and extract both into this folder")


def load_oxford_pets(root, *, split="test"):
    """Oxford-IIIT Pets: ``root/images/<Name_123>.jpg`` and ``root/annotations/<split>.txt``.

    The annotation file's split is ``"test"`` or ``"trainval"``; a class name is the image
    name without its number (``"Abyssinian"``, ``"american bulldog"``).
    """
    root = Path(root)
    listing = _require(root / "annotations" / f"{split}.txt", "Oxford-IIIT Pets", _PETS_SOURCE)
    folder = _require(root / "images", "Oxford-IIIT Pets", _PETS_SOURCE)
    images, labels, names_by_id = [], [], {}
    for line in listing.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        image, class_id = line.split()[:2]
        name = _readable(image.rsplit("_", 1)[0])
        names_by_id[int(class_id)] = name
        images.append(folder / f"{image}.jpg")
        labels.append(name)
    return _task("oxford_pets", images, labels, [names_by_id[i] for i in sorted(names_by_id)])


_FOOD_SOURCE = ("download food-101.tar.gz from https://data.vision.ee.ethz.ch/cvl/"
                "datasets_extra/food-101/ and point to its food-101 folder")


def load_food101(root, *, split="test"):
    """Food-101: ``root/meta/<split>.txt`` (``class/image_id`` lines) and ``root/images``.

    Class names come from ``meta/labels.txt`` when present (``"Apple pie"``), else from the
    class folder names (``"apple pie"``).
    """
    root = Path(root)
    listing = _require(root / "meta" / f"{split}.txt", "Food-101", _FOOD_SOURCE)
    identifiers = _require(root / "meta" / "classes.txt", "Food-101", _FOOD_SOURCE)
    identifiers = identifiers.read_text().split()
    labels_file = root / "meta" / "labels.txt"
    names = ([line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
             if labels_file.exists() else [_readable(i) for i in identifiers])
    if len(names) != len(identifiers):
        raise ValueError(f"Food-101: meta/labels.txt has {len(names)} names for "
                         f"{len(identifiers)} classes in meta/classes.txt")
    name_of = dict(zip(identifiers, names))
    images, labels = [], []
    for entry in listing.read_text().split():
        identifier = entry.split("/")[0]
        if identifier not in name_of:
            raise ValueError(f"Food-101: class {identifier!r} of meta/{split}.txt is not in "
                             "meta/classes.txt")
        images.append(root / "images" / f"{entry}.jpg")
        labels.append(name_of[identifier])
    return _task("food101", images, labels, names)


_CALTECH_SOURCE = ("download caltech-101.zip from https://data.caltech.edu/records/mzrjq-6wc02 "
                   "and point to its 101_ObjectCategories folder")
_CALTECH_BACKGROUND = "BACKGROUND_Google"


def load_caltech101(root):
    """Caltech-101: one folder of images per class (``root/<class>/image_0001.jpg``).

    The clutter folder ``BACKGROUND_Google`` is not a class and is left out.
    """
    root = _require(Path(root), "Caltech-101", _CALTECH_SOURCE)
    folders = sorted(p for p in root.iterdir()
                     if p.is_dir() and p.name != _CALTECH_BACKGROUND and not p.name.startswith("."))
    images, labels, names = [], [], []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
        if files:
            names.append(_readable(folder.name))
            images.extend(files)
            labels.extend([names[-1]] * len(files))
    return _task("caltech101", images, labels, names)


_FLOWERS_SOURCE = ("download 102flowers.tgz, imagelabels.mat and setid.mat from "
                   "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into this folder")
_FLOWERS_SPLITS = {"train": "trnid", "val": "valid", "test": "tstid"}


def flowers102_class_names():
    """The 102 Oxford flower names, in the order of ``imagelabels.mat`` labels 1..102.

    Examples
    --------
    >>> names = flowers102_class_names()
    >>> len(names), names[0], names[-1]
    (102, 'pink primrose', 'blackberry lily')
    """
    text = resources.files(__package__).joinpath("flowers102_classes.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_flowers102(root, *, split="test"):
    """Flowers-102: ``root/jpg/image_00001.jpg``, ``root/imagelabels.mat``, ``root/setid.mat``.

    The ``.mat`` files are read with :func:`scipy.io.loadmat` (plain arrays, no code runs).
    """
    from scipy.io import loadmat

    root = Path(root)
    if split not in _FLOWERS_SPLITS:
        raise ValueError(f"split must be one of {sorted(_FLOWERS_SPLITS)}; got {split!r}")
    labels_by_image = loadmat(_require(root / "imagelabels.mat", "Flowers-102", _FLOWERS_SOURCE))
    ids = loadmat(_require(root / "setid.mat", "Flowers-102", _FLOWERS_SOURCE))
    all_labels = np.asarray(labels_by_image["labels"]).ravel().astype(int)
    names = flowers102_class_names()
    if all_labels.min() < 1 or all_labels.max() > len(names):
        raise ValueError(f"Flowers-102: imagelabels.mat holds labels outside 1..{len(names)}")
    image_ids = np.asarray(ids[_FLOWERS_SPLITS[split]]).ravel().astype(int)
    images = [root / "jpg" / f"image_{i:05d}.jpg" for i in image_ids]
    labels = [names[all_labels[i - 1] - 1] for i in image_ids]
    return _task("flowers102", images, labels, names)


_META_ALBUM_SOURCE = ("download the Meta-Album {subset} dataset (https://meta-album.github.io/) "
                      "and point to the folder holding labels.csv and images/")


def load_meta_album(root, *, subset):
    """A Meta-Album subset (DOG, AWA, BRD, ...): ``root/labels.csv`` and ``root/images/``.

    ``labels.csv`` has the columns ``FILE_NAME`` and ``CATEGORY``.
    """
    root = Path(root)
    how = _META_ALBUM_SOURCE.format(subset=subset)
    table = _require(root / "labels.csv", f"Meta-Album {subset}", how)
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"FILE_NAME", "CATEGORY"} <= set(rows[0]):
        raise ValueError(f"Meta-Album {subset}: {str(table)!r} needs the columns FILE_NAME "
                         "and CATEGORY")
    labels = [_readable(row["CATEGORY"]) for row in rows]
    images = [root / "images" / row["FILE_NAME"] for row in rows]
    return _task(f"meta_album_{subset.lower()}", images, labels, sorted(set(labels)))


# name -> (loader, its folder under a data root); the order of Table 1
PAPER_DATASETS = {
    "pets": (load_oxford_pets, "oxford-iiit-pet"),
    "food": (load_food101, "food-101"),
    "caltech": (load_caltech101, "caltech-101/101_ObjectCategories"),
    "flowers": (load_flowers102, "flowers-102"),
    "dog": (partial(load_meta_album, subset="DOG"), "meta-album/DOG"),
    "awa": (partial(load_meta_album, subset="AWA"), "meta-album/AWA"),
    "brd": (partial(load_meta_album, subset="BRD"), "meta-album/BRD"),
}


def load_paper_task(name, data_root):
    """The dataset ``name`` of :data:`PAPER_DATASETS` from its folder under ``data_root``.

    Examples
    --------
    >>> load_paper_task("pets", "no/such/root")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Oxford-IIIT Pets: 'no/such/root/oxford-iiit-pet/annotations/test.txt' ...
    """
    if name not in PAPER_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; the paper's are {list(PAPER_DATASETS)}")
    loader, folder = PAPER_DATASETS[name]
    return loader(Path(data_root) / folder)


def load_hf_task(dataset_name, export_dir, *, split="test", image_column="image",
                 label_column="label", **load_kwargs):
    """A task from a Hugging Face ``datasets`` copy, its images written to ``export_dir``.

    The images are written once as files (their original encoded bytes, not decoded), so a
    large test split is never held in memory; class names are the label feature's names.
    ``load_kwargs`` go to :func:`datasets.load_dataset` (``name=``, ``token=``, ...).
    """
    dataset = _hf_split(dataset_name, split, **load_kwargs)
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(f"{dataset_name}: column {label_column!r} is not a ClassLabel with "
                         "names; give label_column= the class column")
    paths = export_image_column(dataset, image_column, Path(export_dir))
    labels = [_readable(names[i]) for i in dataset[label_column]]
    return _task(_safe_name(dataset_name), paths, labels, [_readable(n) for n in names])


def _safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _hf_split(dataset_name, split, **load_kwargs):
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"loading {dataset_name!r} from Hugging Face needs the "
                                  "'datasets' package: pip install datasets") from None
    try:
        return datasets.load_dataset(dataset_name, split=split, **load_kwargs)
    except (ConnectionError, FileNotFoundError, OSError) as exc:
        raise FileNotFoundError(
            f"could not load the Hugging Face dataset {dataset_name!r} (split {split!r}): {exc}. "
            "It needs the network (HF_HUB_OFFLINE unset) or a local copy, and for gated "
            "datasets an accepted licence and 'huggingface-cli login'") from exc


def export_image_column(dataset, image_column, folder, *, labels=None):
    """Write a ``datasets`` image column to ``folder`` as files; the paths, in row order.

    With ``labels`` (one folder name per row) the files go to ``folder/<label>/``, the
    ImageNet training layout. Files already written are kept, so an interrupted export resumes.
    """
    import datasets

    rows = dataset.cast_column(image_column, datasets.Image(decode=False))
    paths = []
    for index, row in enumerate(rows):
        encoded = row[image_column]
        suffix = Path(encoded.get("path") or "").suffix.lower() or ".jpg"
        target = folder / (labels[index] if labels is not None else "") / f"{index:08d}{suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            data = encoded["bytes"] if encoded.get("bytes") else Path(encoded["path"]).read_bytes()
            partial = target.with_suffix(target.suffix + ".partial")
            partial.write_bytes(data)
            partial.replace(target)
        paths.append(target)
    return paths
