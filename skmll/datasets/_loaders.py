"""Image sources of the offline benchmark world and its class table.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package, the digits from
scikit-learn's ``load_digits``; the class table (names and WordNet synsets) is a JSON file
shipped in this package.
"""

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {"train": "train", "test": "t10k"}
_CLASS_TABLE = Path(__file__).with_name("world_classes.json")


def _read_idx(path, header_bytes):
    """The payload of a gzipped idx file as uint8, after its fixed-size header."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


def load_fashion_mnist(split="train"):
    """Fashion-MNIST images and labels from the Debian package ``dataset-fashion-mnist``.

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), int64
        0..9 in the order of the source data set (see :func:`load_class_table`).

    Raises
    ------
    FileNotFoundError
        When the data files are not installed (``apt-get install dataset-fashion-mnist``).

    Examples
    --------
    >>> images, labels = load_fashion_mnist("test")
    >>> images.shape, images.dtype, labels[:3]
    ((10000, 28, 28), dtype('uint8'), array([9, 2, 1]))
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    prefix = FASHION_MNIST_DIR / _FASHION_FILES[split]
    image_path = Path(f"{prefix}-images-idx3-ubyte.gz")
    label_path = Path(f"{prefix}-labels-idx1-ubyte.gz")
    for path in (image_path, label_path):
        if not path.exists():
            raise FileNotFoundError(
                f"Fashion-MNIST file {path} is missing; install the Debian package "
                "'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist)")
    labels = _read_idx(label_path, header_bytes=8).astype(np.int64)
    images = _read_idx(image_path, header_bytes=16).reshape(len(labels), 28, 28).copy()
    return images, labels


def load_digit_images(size=28):
    """scikit-learn's 8x8 digits, upsampled (bilinear) to uint8 ``size`` x ``size`` images.

    The 0..16 intensities are stretched to 0..255, so the strokes look like the white-on-black
    MNIST style of the Fashion-MNIST images they are mixed with.

    Parameters
    ----------
    size : int, default 28

    Returns
    -------
    images : ndarray of shape (1797, size, size), uint8
    labels : ndarray of shape (1797,), int64
        The digit 0..9.

    Examples
    --------
    >>> images, labels = load_digit_images()
    >>> images.shape, images.dtype, int(images.max()), labels[:3]
    ((1797, 28, 28), dtype('uint8'), 255, array([0, 1, 2]))
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    large = F.interpolate(small, size=(int(size), int(size)), mode="bilinear",
                          align_corners=False)
    images = large[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return images, digits.target.astype(np.int64)


@lru_cache(maxsize=None)
def _class_rows():
    return tuple(json.loads(_CLASS_TABLE.read_text(encoding="utf-8"))["classes"])


def load_class_table():
    """The world's 20 classes: ids 0..9 Fashion-MNIST, 10..19 digits.

    Returns
    -------
    list of dict
        One dict per global class id with keys ``id``, ``dataset`` ("fashion-mnist" or
        "digits"), ``label`` (the label in that data set), ``source_name`` (the data set's own
        class name), ``name`` (the natural task name), ``synset`` (WordNet 3.0 noun synset) and
        ``definition`` (that synset's WordNet gloss).

    Examples
    --------
    >>> table = load_class_table()
    >>> [(row["name"], row["synset"]) for row in table[7:9]]
    [('sneaker', 'gym_shoe.n.01'), ('bag', 'bag.n.04')]
    """
    return [dict(row) for row in _class_rows()]
