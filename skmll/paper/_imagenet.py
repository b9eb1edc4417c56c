"""The paper's Semantic DAG: ImageNet synsets with up to 50 images each, and their ancestors.

The DAG holds one node per synset folder, plus every WordNet hypernym of those synsets. The
paper's DAG has 11,312 nodes, close to ImageNet-21K-P (the processed ImageNet-21k of Ridnik et
al. 2021: 11,221 synsets in the fall 2011 release, 10,450 in winter 2021) with the ancestors
it lacks; the paper does not name its synset list. The full ImageNet-21k has 21,841 synsets,
so its folder gives a DAG of more than 21,841 nodes, twice the paper's; ImageNet-1k's 1,000
leaves give a smaller one. Each comes from a local training folder in the ImageNet layout
(``root/<wnid>/<image files>``), or from a Hugging Face ``datasets`` copy whose images are
first written into that layout.
"""

import re
from pathlib import Path

from ..reuse import imagenet_wnids
from ..semantic_graph import SemanticDAG
from ._datasets import _hf_split, export_image_column

_WNID = re.compile(r"n\d{8}")
_IMAGENET_SOURCE = ("give the training folder of an ImageNet copy, one folder per WordNet id "
                    "(n01440764/...): ImageNet-21K-P (11,221 synsets, the paper's ~11k nodes) "
                    "or ILSVRC2012 train (1,000), from https://image-net.org/ (free for "
                    "research after registration)")


def imagenet_sdag(root, *, per_node=50, image_size=(224, 224), random_state=0):
    """The SDAG of an ImageNet-layout training folder, ``per_node`` images per synset.

    Parameters
    ----------
    root : path
        One folder per WordNet id (``n02085620``) holding its image files.
    per_node : int, default=50
        Images kept per synset (the paper's 50), sampled with ``random_state``.
    image_size : (int, int), default=(224, 224)
        Size images are resized to when the labeler reads them.
    random_state : int, default=0

    Returns
    -------
    sdag : SemanticDAG

    Examples
    --------
    >>> imagenet_sdag("no/such/imagenet/train")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ImageNet folder 'no/such/imagenet/train' does not exist; give the ...
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet folder {str(root)!r} does not exist; {_IMAGENET_SOURCE}")
    if not any(_WNID.fullmatch(p.name) for p in root.iterdir() if p.is_dir()):
        raise FileNotFoundError(f"{str(root)!r} holds no WordNet-id folder (n01440764/...); "
                                f"{_IMAGENET_SOURCE}")
    return SemanticDAG.from_image_folder(root, per_node=per_node, image_size=image_size,
                                         random_state=random_state)


def export_hf_imagenet(dataset_name, folder, *, per_node=50, split="train",
                       image_column="image", label_column="label", **load_kwargs):
    """Write up to ``per_node`` images per class of a Hugging Face ImageNet copy to ``folder``.

    The result is the ImageNet layout :func:`imagenet_sdag` reads. A class is named by its
    label feature's name when that is a WordNet id, and otherwise, for a 1,000-class label,
    by the ILSVRC-2012 convention (label ``i`` is the ``i``-th WordNet id in sorted order,
    as in ``imagenet-1k``). ``load_kwargs`` go to :func:`datasets.load_dataset` (``token=``,
    ``streaming`` is not supported). Files already written are kept, so an export resumes.

    Returns
    -------
    folder : Path
    """
    dataset = _hf_split(dataset_name, split, **load_kwargs)
    wnids = _wnids_of_labels(dataset_name, dataset.features.get(label_column), label_column)
    labels = dataset[label_column]
    taken, rows = {}, []
    for index, label in enumerate(labels):
        if taken.get(label, 0) < per_node:
            taken[label] = taken.get(label, 0) + 1
            rows.append(index)
    chosen = dataset.select(rows)
    export_image_column(chosen, image_column, Path(folder),
                        labels=[wnids[labels[i]] for i in rows])
    return Path(folder)


def _wnids_of_labels(dataset_name, feature, label_column):
    names = list(getattr(feature, "names", None) or [])
    if names and all(_WNID.fullmatch(n) for n in names):
        return names
    if len(names) == 1000:
        return imagenet_wnids()
    raise ValueError(f"{dataset_name}: the {label_column!r} column has {len(names)} class names "
                     "that are not WordNet ids (n01440764) and is not ImageNet-1k's 1,000 "
                     "classes; export the images into wnid folders yourself")
