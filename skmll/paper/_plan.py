"""What a run of the paper's experiment will cost, known before it starts (``--dry-run``)."""

import os
from dataclasses import dataclass
from pathlib import Path

from ..hub import measure_cost
from ..hub._base import move_experts
from ..hub._images import is_image_path
from ..labelling._references import REFERENCE_IMAGES_PER_NODE

# Bytes a label record keeps per node and head: the sums of logits and of probabilities (float64).
_LABEL_BYTES_PER_HEAD = 16
# Bytes per node besides: the count of images (int64).
_LABEL_BYTES_PER_NODE = 8


@dataclass(frozen=True)
class LabellingPlan:
    """The forward passes and disk that labelling a hub on an ImageNet folder needs.

    Attributes
    ----------
    n_experts : int
    n_nodes : int
        Synset folders with images (nodes with labels; their WordNet ancestors add none).
    n_images : int
        Images kept, at most ``per_node`` per synset.
    forward_passes : int
        ``n_experts * n_images``: the most a labelling runs (a rerun skips what its label
        directory holds).
    label_bytes : int or None
        The labels on disk; None when some expert declares no ``n_outputs`` (it would have to
        be built, and perhaps downloaded, to know).
    reference_bytes : int
        The reference images the label directory keeps for the patch calibration.
    """

    n_experts: int
    n_nodes: int
    n_images: int
    forward_passes: int
    label_bytes: int
    reference_bytes: int


def _declared_outputs(expert):
    declared = getattr(expert, "declared", None)
    return declared("n_outputs") if declared is not None else expert.n_outputs


def plan_labelling(hub, imagenet_root, *, per_node=50, image_size=(224, 224)):
    """Count what labelling ``hub`` on the ImageNet-layout folder ``imagenet_root`` needs.

    Reads file names only: no image is decoded, no expert is built.

    Parameters
    ----------
    hub : ModelHub
    imagenet_root : path
        One folder per synset holding its image files.
    per_node : int, default=50
    image_size : (int, int), default=(224, 224)
        The SDAG's image size (that of the kept reference images).

    Returns
    -------
    LabellingPlan

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skmll.hub import LazyExpert, ModelHub
    >>> root = Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     (root / "n02085620").mkdir(exist_ok=True)
    ...     _ = (root / "n02085620" / f"{i}.jpg").write_bytes(b"")
    >>> hub = ModelHub([LazyExpert("timm:test_resnet", n_outputs=10, name="a")])
    >>> plan = plan_labelling(hub, root, per_node=2)
    >>> plan.n_nodes, plan.n_images, plan.forward_passes, plan.label_bytes
    (1, 2, 2, 168)
    """
    root = Path(imagenet_root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet folder {str(root)!r} does not exist")
    counts = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        with os.scandir(folder) as entries:
            n = sum(1 for e in entries if e.is_file() and is_image_path(e.name))
        if n:
            counts.append(min(n, per_node))
    outputs = [_declared_outputs(expert) for expert in hub]
    kept = sum(min(c, REFERENCE_IMAGES_PER_NODE) for c in counts)
    return LabellingPlan(n_experts=len(hub), n_nodes=len(counts), n_images=sum(counts),
                         forward_passes=len(hub) * sum(counts),
                         label_bytes=None if None in outputs else labels_size(len(counts), outputs),
                         reference_bytes=kept * image_size[0] * image_size[1] * 3)


def labels_size(n_nodes, n_outputs):
    """Bytes of the labels of experts with ``n_outputs`` heads each on ``n_nodes`` nodes.

    Examples
    --------
    >>> labels_size(11_221, [1000, 1001])
    359431072
    """
    return sum(n_nodes * (_LABEL_BYTES_PER_HEAD * n + _LABEL_BYTES_PER_NODE) for n in n_outputs)


def measure_experts(hub, images, *, device="cpu", repeats=3):
    """Each expert's measured cost per image on ``device``, one expert built at a time.

    An expert that cannot be built or run is reported by its error rather than stopping the
    others (a dry run says everything that is wrong at once).

    Parameters
    ----------
    hub : ModelHub
    images : array-like of images
        Images of the kind the experts will be given (a task's test images).
    device : str, default="cpu"
    repeats : int, default=3

    Returns
    -------
    dict of str to ExpertCost or str
        By expert name: its cost, or the error that stopped it.
    """
    costs = {}
    for expert in hub:
        try:
            move_experts([expert], device)
            costs[expert.name] = measure_cost(expert, images, repeats=repeats)
        except Exception as exc:   # noqa: BLE001 - any failure is this expert's, reported
            costs[expert.name] = f"{type(exc).__name__}: {exc}"
    return costs
