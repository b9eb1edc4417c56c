"""The paper's seven evaluation datasets, read from their published folder layouts.

Each loader returns a :class:`ZeroShotTask`: image file paths, the true class name of each
image, and the task's class names (what :class:`~skmll.MLLZeroShotClassifier` is given).
Nothing is downloaded: the user fetches each dataset from its publisher (the error raised
when a folder is missing says from where) or from a Hugging Face ``datasets`` copy
(:func:`load_hf_task`).
"""

import csv
import re
from collections import Counter
from collections.abc import Mapping
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


def read_class_names(source, *, dataset="dataset"):
    """Class identifiers (folder names, category codes) to the names a person would say.

    Parameters
    ----------
    source : path or mapping
        A text file of ``identifier<TAB>name`` lines (``#`` starts a comment line), or a
        mapping of identifier to name.
    dataset : str, default="dataset"
        Named in the error messages.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ValueError
        A line without a tab, an identifier given twice, an empty name, or two identifiers
        with one name (their classes could not be told apart).

    Examples
    --------
    >>> read_class_names({"Faces": "off-center face", "Faces_easy": "centered face"})
    {'Faces': 'off-center face', 'Faces_easy': 'centered face'}
    >>> read_class_names({"Faces": "face", "Faces_easy": "face"}, dataset="Caltech-101")
    Traceback (most recent call last):
    ...
    ValueError: Caltech-101: one name for several classes: 'face' (Faces, Faces_easy)
    """
    if isinstance(source, Mapping):
        pairs = [(str(k), str(v)) for k, v in source.items()]
    else:
        pairs = _name_lines(source if hasattr(source, "read_text") else Path(source), dataset)
    names, by_name = {}, {}
    for identifier, name in pairs:
        name = " ".join(name.split())
        if identifier in names:
            raise ValueError(f"{dataset}: class {identifier!r} is named twice")
        if not name:
            raise ValueError(f"{dataset}: class {identifier!r} has an empty name")
        names[identifier] = name
        by_name.setdefault(name.lower(), []).append(identifier)
    shared = {n: ids for n, ids in by_name.items() if len(ids) > 1}
    if shared:
        raise ValueError(f"{dataset}: one name for several classes: " + "; ".join(
            f"{n!r} ({', '.join(ids)})" for n, ids in shared.items()))
    return names


def _name_lines(path, dataset):
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise ValueError(f"{dataset}: line {number} of {str(path)!r} is not "
                             "'identifier<TAB>name'")
        identifier, name = line.split("\t", 1)
        pairs.append((identifier.strip(), name))
    return pairs


def _names_of(identifiers, class_names, dataset, default=None):
    """``{identifier: name}`` for every identifier: from ``class_names`` (path or mapping;
    None: ``default``), which must name them all."""
    if class_names is None and default is None:   # still refused if two names coincide
        return read_class_names({i: _readable(i) for i in identifiers}, dataset=dataset)
    names = read_class_names(default if class_names is None else class_names, dataset=dataset)
    unnamed = [i for i in identifiers if i not in names]
    if unnamed:
        raise ValueError(f"{dataset}: the class-name file names no class for {unnamed[:10]}"
                         f"{' ...' if len(unnamed) > 10 else ''}: add a line "
                         "'identifier<TAB>name' for each")
    return {i: names[i] for i in identifiers}


def _shipped(filename):
    return resources.files(__package__).joinpath(filename)


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


def load_oxford_pets(root, *, split="test", class_names=None):
    """Oxford-IIIT Pets: ``root/images/<Name_123>.jpg`` and ``root/annotations/<split>.txt``.

    The annotation file's split is ``"test"`` or ``"trainval"``; a class name is the image
    name without its number (``"Abyssinian"``, ``"american bulldog"``), unless
    ``class_names`` (a file or mapping, see :func:`read_class_names`) names each breed
    identifier (``american_bulldog``).
    """
    root = Path(root)
    listing = _require(root / "annotations" / f"{split}.txt", "Oxford-IIIT Pets", _PETS_SOURCE)
    folder = _require(root / "images", "Oxford-IIIT Pets", _PETS_SOURCE)
    images, breeds, breed_by_id = [], [], {}
    for line in listing.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        image, class_id = line.split()[:2]
        breed_by_id[int(class_id)] = image.rsplit("_", 1)[0]
        images.append(folder / f"{image}.jpg")
        breeds.append(breed_by_id[int(class_id)])
    name_of = _names_of(sorted(set(breeds)), class_names, "Oxford-IIIT Pets")
    return _task("oxford_pets", images, [name_of[b] for b in breeds],
                 [name_of[breed_by_id[i]] for i in sorted(breed_by_id)])


_FOOD_SOURCE = ("download food-101.tar.gz from https://data.vision.ee.ethz.ch/cvl/"
                "datasets_extra/food-101/ and point to its food-101 folder")


def load_food101(root, *, split="test", class_names=None):
    """Food-101: ``root/meta/<split>.txt`` (``class/image_id`` lines) and ``root/images``.

    Class names come from ``class_names`` (a file or mapping of class folder to name, see
    :func:`read_class_names`) when given, else from ``meta/labels.txt`` when present
    (``"Apple pie"``), else from the class folder names (``"apple pie"``).
    """
    root = Path(root)
    listing = _require(root / "meta" / f"{split}.txt", "Food-101", _FOOD_SOURCE)
    identifiers = _require(root / "meta" / "classes.txt", "Food-101", _FOOD_SOURCE)
    identifiers = identifiers.read_text().split()
    labels_file = root / "meta" / "labels.txt"
    if class_names is None and labels_file.exists():
        names = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
        if len(names) != len(identifiers):
            raise ValueError(f"Food-101: meta/labels.txt has {len(names)} names for "
                             f"{len(identifiers)} classes in meta/classes.txt")
        class_names = dict(zip(identifiers, names))
    name_of = _names_of(identifiers, class_names, "Food-101")
    names = [name_of[i] for i in identifiers]
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


def load_caltech101(root, *, class_names=None):
    """Caltech-101: one folder of images per class (``root/<class>/image_0001.jpg``).

    The clutter folder ``BACKGROUND_Google`` is not a class and is left out. Class names are
    the names a person would say, read from the shipped file ``caltech101_classes.tsv``
    (``Faces`` is "off-center face" and ``Faces_easy``, the same faces cropped, "centered
    face"; ``Leopards`` is "leopard", ``car_side`` "side of a car", ...), or from
    ``class_names`` (a file or mapping of folder to name, see :func:`read_class_names`),
    which must name every folder.
    """
    root = _require(Path(root), "Caltech-101", _CALTECH_SOURCE)
    folders = sorted(p for p in root.iterdir()
                     if p.is_dir() and p.name != _CALTECH_BACKGROUND and not p.name.startswith("."))
    files = {folder.name: sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
             for folder in folders}
    files = {name: found for name, found in files.items() if found}
    name_of = _names_of(list(files), class_names, "Caltech-101",
                        default=_shipped("caltech101_classes.tsv"))
    images = [path for found in files.values() for path in found]
    labels = [name_of[folder] for folder, found in files.items() for _ in found]
    return _task("caltech101", images, labels, [name_of[folder] for folder in files])


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
    text = _shipped("flowers102_classes.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_flowers102(root, *, split="test", class_names=None):
    """Flowers-102: ``root/jpg/image_00001.jpg``, ``root/imagelabels.mat``, ``root/setid.mat``.

    The ``.mat`` files are read with :func:`scipy.io.loadmat` (plain arrays, no code runs).
    Class names are the shipped :func:`flowers102_class_names`, or ``class_names`` (a file or
    mapping of label number ``"1"`` .. ``"102"`` to name, see :func:`read_class_names`).
    """
    from scipy.io import loadmat

    root = Path(root)
    if split not in _FLOWERS_SPLITS:
        raise ValueError(f"split must be one of {sorted(_FLOWERS_SPLITS)}; got {split!r}")
    labels_by_image = loadmat(_require(root / "imagelabels.mat", "Flowers-102", _FLOWERS_SOURCE))
    ids = loadmat(_require(root / "setid.mat", "Flowers-102", _FLOWERS_SOURCE))
    all_labels = np.asarray(labels_by_image["labels"]).ravel().astype(int)
    names = flowers102_class_names()
    if class_names is not None:
        numbers = [str(n) for n in range(1, len(names) + 1)]
        names = list(_names_of(numbers, class_names, "Flowers-102").values())
    if all_labels.min() < 1 or all_labels.max() > len(names):
        raise ValueError(f"Flowers-102: imagelabels.mat holds labels outside 1..{len(names)}")
    image_ids = np.asarray(ids[_FLOWERS_SPLITS[split]]).ravel().astype(int)
    images = [root / "jpg" / f"image_{i:05d}.jpg" for i in image_ids]
    labels = [names[all_labels[i - 1] - 1] for i in image_ids]
    return _task("flowers102", images, labels, names)


_META_ALBUM_SOURCE = ("download the Meta-Album {subset} dataset, {version} version "
                      "(https://meta-album.github.io/), and point to the folder holding "
                      "labels.csv and images/")
# Meta-Album's versions by their shape: Micro has 20 classes of 40 images (the paper's
# setting), Mini every class with 40 images, Extended every image (no shape to check).
_META_ALBUM_VERSIONS = {"micro": (20, 40), "mini": (None, 40), "extended": (None, None)}


def _check_meta_album_version(labels, subset, version, how):
    n_classes, per_class = _META_ALBUM_VERSIONS[version]
    counts = Counter(labels)
    seen = (f"{len(counts)} classes of {min(counts.values())} to {max(counts.values())} "
            "images")
    wrong = ((n_classes is not None and len(counts) != n_classes)
             or (per_class is not None and set(counts.values()) != {per_class}))
    if wrong:
        expected = (f"{n_classes or 'any number of'} classes of {per_class} images each")
        raise ValueError(f"Meta-Album {subset}: labels.csv holds {seen}, not the {version} "
                         f"version's {expected}; {how}")


def load_meta_album(root, *, subset, version="micro", class_names=None):
    """A Meta-Album subset (DOG, AWA, BRD, ...): ``root/labels.csv`` and ``root/images/``.

    ``labels.csv`` has the columns ``FILE_NAME`` and ``CATEGORY``. ``version`` is the one the
    folder must hold, checked by its shape: ``"micro"`` (20 classes of 40 images, the paper's
    setting), ``"mini"`` (40 images per class) or ``"extended"`` (not checked). Class names
    are the categories, or ``class_names`` (a file or mapping, see :func:`read_class_names`).
    """
    if version not in _META_ALBUM_VERSIONS:
        raise ValueError(f"version must be one of {sorted(_META_ALBUM_VERSIONS)}; "
                         f"got {version!r}")
    root = Path(root)
    how = _META_ALBUM_SOURCE.format(subset=subset, version=version.capitalize())
    table = _require(root / "labels.csv", f"Meta-Album {subset}", how)
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"FILE_NAME", "CATEGORY"} <= set(rows[0]):
        raise ValueError(f"Meta-Album {subset}: {str(table)!r} needs the columns FILE_NAME "
                         "and CATEGORY")
    categories = [row["CATEGORY"] for row in rows]
    _check_meta_album_version(categories, subset, version, how)
    name_of = _names_of(sorted(set(categories)), class_names, f"Meta-Album {subset}")
    images = [root / "images" / row["FILE_NAME"] for row in rows]
    return _task(f"meta_album_{subset.lower()}", images, [name_of[c] for c in categories],
                 sorted(name_of.values()))


# name -> (loader, its folder under a data root); the order of Table 1
PAPER_DATASETS = {
    "dog": (partial(load_meta_album, subset="DOG"), "meta-album/DOG"),
    "awa": (partial(load_meta_album, subset="AWA"), "meta-album/AWA"),
    "brd": (partial(load_meta_album, subset="BRD"), "meta-album/BRD"),
    "pets": (load_oxford_pets, "oxford-iiit-pet"),
    "food": (load_food101, "food-101"),
    "caltech": (load_caltech101, "caltech-101/101_ObjectCategories"),
    "flowers": (load_flowers102, "flowers-102"),
}


def load_paper_task(name, data_root, *, class_names=None):
    """The dataset ``name`` of :data:`PAPER_DATASETS` from its folder under ``data_root``.

    ``class_names`` (a file or mapping, see :func:`read_class_names`) replaces the dataset's
    class names.

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
    return loader(Path(data_root) / folder, class_names=class_names)


# The split a dataset is evaluated on where it has no "test" split.
_HF_EVALUATION_SPLITS = {"ethz/food101": "validation", "food101": "validation"}


def load_hf_task(dataset_name, export_dir, *, split=None, image_column="image",
                 label_column="label", **load_kwargs):
    """A task from a Hugging Face ``datasets`` copy, its images written to ``export_dir``.

    The images are written once as files (their original encoded bytes, not decoded), so a
    large test split is never held in memory; class names are the label feature's names.

    Parameters
    ----------
    dataset_name : str or path
        A Hub id (read with :func:`datasets.load_dataset`) or a folder written by
        ``save_to_disk`` (read with :func:`datasets.load_from_disk`).
    export_dir : path
    split : str or None, default=None
        None is the dataset's evaluation split: "test", or "validation" for datasets without
        one (Food-101; a saved folder: the first of the two it has).
    image_column, label_column : str
    **load_kwargs
        To :func:`datasets.load_dataset` (``name=``, ``token=``, ...).

    Raises
    ------
    ValueError
        A split the dataset lacks, a label column without class names, or rows labelled -1
        (unlabelled) or out of range: they cannot be scored.
    FileNotFoundError
        The dataset cannot be loaded (offline, no network, gated): one line saying why.
    """
    dataset = _hf_split(dataset_name, split, **load_kwargs)
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(f"{dataset_name}: column {label_column!r} is not a ClassLabel with "
                         "names; give label_column= the class column")
    label_ids = np.asarray(dataset[label_column], dtype=np.int64)
    _refuse_unlabelled(dataset_name, label_ids, len(names))
    paths = export_image_column(dataset, image_column, Path(export_dir))
    labels = [_readable(names[i]) for i in label_ids]
    return _task(_safe_name(Path(dataset_name).name if Path(dataset_name).is_dir()
                            else dataset_name), paths, labels, [_readable(n) for n in names])


def _refuse_unlabelled(dataset_name, label_ids, n_classes):
    bad = (label_ids < 0) | (label_ids >= n_classes)
    if bad.any():
        raise ValueError(f"{dataset_name}: {int(bad.sum())} of {len(label_ids)} rows are "
                         f"labelled {sorted(set(label_ids[bad].tolist()))[:5]}, outside the "
                         f"{n_classes} classes (-1 marks an unlabelled row, as in a test "
                         "split whose labels are withheld): evaluate on a labelled split")


def _safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))


def _datasets_module(dataset_name):
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"loading {str(dataset_name)!r} from Hugging Face needs the "
                                  "'datasets' package: pip install 'skmll[paper]'") from None
    return datasets


def _saved_split(datasets, folder, split):
    saved = datasets.load_from_disk(folder)
    if not isinstance(saved, datasets.DatasetDict):
        return saved
    if split is None:
        split = next((s for s in ("test", "validation") if s in saved), None)
    if split not in saved:
        raise ValueError(f"{str(folder)!r} has no split {split!r}; its splits are "
                         f"{list(saved)}: pass split=")
    return saved[split]


def _hf_split(dataset_name, split, **load_kwargs):
    datasets = _datasets_module(dataset_name)
    if Path(dataset_name).is_dir():
        return _saved_split(datasets, dataset_name, split)
    split = split or _HF_EVALUATION_SPLITS.get(dataset_name, "test")
    try:
        return datasets.load_dataset(dataset_name, split=split, **load_kwargs)
    except ValueError as exc:
        if "split" not in str(exc).lower():
            raise
        raise ValueError(f"{dataset_name}: no split {split!r} ({exc}): pass split=") from None
    except Exception as exc:   # offline mode, no network, gated: each library's own error kind
        raise FileNotFoundError(
            f"could not load the Hugging Face dataset {dataset_name!r} (split {split!r}): "
            f"{type(exc).__name__}: {exc}. It needs the network (HF_HUB_OFFLINE unset) or a "
            "local copy (save_to_disk), and for gated datasets an accepted licence and "
            "'hf auth login'") from None


def export_image_column(dataset, image_column, folder, *, labels=None):
    """Write a ``datasets`` image column to ``folder`` as files; the paths, in row order.

    With ``labels`` (one folder name per row) the files go to ``folder/<label>/``, the
    ImageNet training layout. Files already written are kept, so an interrupted export resumes.
    """
    datasets = _datasets_module("an image column")

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
