"""A market of small experts: each trained on a few of the world's classes, most useless to a task.

Built the way the learnware market's image benchmark builds its models (many classifiers on a
few classes each): :data:`MARKET_EXPERTS` draws 2-5 of the world's 20 classes per expert with
a fixed seed (some experts merge theirs into two superclass heads), with varied architectures,
widths, input sizes (20, 28, 32 px) and frameworks: PyTorch networks, the same kind of networks
exported to ONNX and served by :class:`~skmll.hub.OnnxExpert`, and scikit-learn logistic
regressions on pixels served as protocol experts. Names are neutral ("market-07"); what each
head was trained on is in :data:`MARKET_EXPERTS`, for documentation and evaluation only.
"""

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hub import OnnxExpert, as_image_batch, preprocess
from ..utils import (
    CorruptRecordWarning,
    atomic_write_bytes,
    hash_array,
    hash_json,
    resolve_cache_dir,
)
from ._experts import (
    ExpertSpec,
    TrainedExpert,
    _training_data,
    _weights_path,
    load_or_train_each,
    load_or_train_expert,
)

MARKET_SEED = 2025
MARKET_SIZE = 40
_FRAMEWORKS = ("torch", "onnx", "sklearn")
_SIDES = (20, 28, 32)
_WIDTHS = {"cnn": (4, 8, 16), "mlp": (16, 32, 64)}
N_WORLD_CLASSES = 20


@dataclass(frozen=True)
class MarketSpec(ExpertSpec):
    """A market expert: an :class:`ExpertSpec` with its own input size and framework.

    Parameters
    ----------
    side : int, default 28
        The expert resizes images to ``side x side`` gray pixels.
    framework : {"torch", "onnx", "sklearn"}, default "torch"
        "torch": a :class:`~skmll.hub.TorchExpert`; "onnx": the same network exported to ONNX
        and run by :class:`~skmll.hub.OnnxExpert`; "sklearn": a logistic regression on pixels
        (``arch``, ``width``, ``epochs`` and ``lr`` are then unused).
    """

    side: int = 28
    framework: str = "torch"

    def __post_init__(self):
        super().__post_init__()
        if self.framework not in _FRAMEWORKS:
            raise ValueError(f"{self.name}: framework must be one of {_FRAMEWORKS}; "
                             f"got {self.framework!r}")
        if self.arch == "cnn" and self.side % 4:
            raise ValueError(f"{self.name}: a cnn's side must be a multiple of 4; got {self.side}")

    @property
    def input_size(self):
        """``(side, side)``."""
        return (self.side, self.side)


def market_specs(n_experts=MARKET_SIZE, *, seed=MARKET_SEED):
    """Draw the market's expert specifications.

    Each expert gets 2-5 distinct classes of the world's 20; an expert with 4 or 5 classes has
    one head per class or, one time in three, two superclass heads. Frameworks cycle so that
    one expert in six is ONNX and one in nine scikit-learn; architectures, widths and input
    sizes are drawn.

    Parameters
    ----------
    n_experts : int, default 40
    seed : int, default 2025
        :data:`MARKET_EXPERTS` is ``market_specs()``.

    Returns
    -------
    tuple of MarketSpec

    Examples
    --------
    >>> specs = market_specs(4)
    >>> [s.name for s in specs]
    ['market-01', 'market-02', 'market-03', 'market-04']
    >>> all(2 <= len(s.classes) <= 5 for s in specs)
    True
    """
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(1, n_experts + 1):
        classes = sorted(int(c) for c in rng.choice(N_WORLD_CLASSES, rng.integers(2, 6),
                                                    replace=False))
        superclasses = len(classes) >= 4 and rng.random() < 1 / 3
        if superclasses:
            cut = len(classes) // 2
            heads = (tuple(classes[:cut]), tuple(classes[cut:]))
        else:
            heads = tuple((c,) for c in classes)
        framework = "onnx" if index % 6 == 0 else "sklearn" if index % 9 == 4 else "torch"
        arch = "cnn" if framework == "onnx" else str(rng.choice(["cnn", "mlp"]))
        specs.append(MarketSpec(
            f"market-{index:02d}", heads,
            description=_describe(heads),
            arch=arch, width=int(rng.choice(_WIDTHS[arch])), per_class=int(rng.choice([150, 300])),
            epochs=int(rng.integers(5, 11)), mean=float(rng.choice([0.0, 0.5])),
            std=float(rng.choice([1.0, 0.5])), seed=1000 + index,
            side=int(rng.choice(_SIDES)), framework=framework))
    return tuple(specs)


def _describe(heads):
    """``"world classes 2 / 5 / 19"``, or ``"superclasses {1, 3} / {7, 9}"``, for people."""
    if all(len(head) == 1 for head in heads):
        return "world classes " + " / ".join(str(c) for (c,) in heads)
    return "superclasses " + " / ".join("{" + ", ".join(map(str, head)) + "}" for head in heads)


MARKET_EXPERTS = market_specs()


class PixelModelExpert:
    """A scikit-learn linear classifier on the gray pixels of images resized to its size.

    A protocol expert (see :class:`skmll.hub.Expert`) with a declared ``fingerprint``: a hash
    of its coefficients and input size, so its labels are cached; and a declared
    ``gflops_per_image`` (its decision function's multiply-adds, two FLOPs each), since no
    counter sees inside scikit-learn.

    Parameters
    ----------
    model : fitted linear classifier with ``decision_function`` and ``classes_``
        Trained on ``(n, H * W)`` pixels in [0, 1] (luma of the RGB input).
    name : str
    input_size : (int, int)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> pixels = rng.random((40, 16))
    >>> model = LogisticRegression().fit(pixels, pixels[:, 0] > 0.5)
    >>> expert = PixelModelExpert(model, name="corner", input_size=(4, 4))
    >>> expert.n_outputs, expert.logits(np.zeros((3, 8, 8, 3), dtype=np.float32)).shape
    (2, (3, 2))
    >>> expert.gflops_per_image * 1e9   # 16 multiply-adds per image
    32.0
    """

    def __init__(self, model, *, name, input_size):
        self.model, self.name = model, name
        self.input_size = tuple(input_size)
        self.n_outputs = len(model.classes_)
        self.gflops_per_image = 2 * model.coef_.size / 1e9
        self.fingerprint = "sklearn-pixels-" + hash_json(
            [type(model).__name__, self.input_size, hash_array(model.coef_),
             hash_array(model.intercept_), hash_array(np.asarray(model.classes_))])

    def logits(self, images):
        """Decision values ``(n, n_outputs)``; two classes give ``[0, z]`` (z the log-odds)."""
        pixels = preprocess(images, input_size=self.input_size, channels=1)
        scores = self.model.decision_function(pixels.reshape(len(images), -1).numpy())
        if scores.ndim == 1:
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        return scores.astype(np.float32)


def _fit_pixel_model(spec, images, targets, training_scale):
    """A logistic regression on a seeded ``training_scale`` share of the spec's images."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(spec.seed)
    n_used = min(len(images), max(10 * len(spec.heads), round(training_scale * len(images))))
    used = np.sort(rng.permutation(len(images))[:n_used])
    pixels = preprocess(as_image_batch(images[used]), input_size=spec.input_size, channels=1)
    return LogisticRegression(max_iter=500).fit(pixels.reshape(n_used, -1).numpy(),
                                                targets[used])


def _load_pixel_model(path):
    """A logistic regression rebuilt from stored arrays (safetensors: no code runs), or None."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    from sklearn.linear_model import LogisticRegression

    if path is None or not path.exists():
        return None
    try:
        arrays = load_file(path)
        model = LogisticRegression()
        model.coef_, model.intercept_, model.classes_ = (arrays[k] for k in
                                                         ("coef", "intercept", "classes"))
    except (SafetensorError, OSError, KeyError) as exc:
        warnings.warn(f"cached pixel model {path} is unreadable ({exc}); refitting",
                      CorruptRecordWarning, stacklevel=3)
        return None
    return model


def _load_or_fit_pixel_expert(spec, world, cache_dir, training_scale):
    """``(PixelModelExpert, trained)``: the cached model, else one fitted now (and cached)."""
    from safetensors.numpy import save

    images, targets = _training_data(spec, world)
    path = _weights_path(spec, images, targets, training_scale, cache_dir)
    model = _load_pixel_model(path)
    trained = model is None
    if trained:
        model = _fit_pixel_model(spec, images, targets, training_scale)
        if path is not None:
            # safetensors writes an array's buffer as it lies in memory, and lbfgs leaves coef_
            # in Fortran order: without the copy the stored coefficients come back scrambled
            arrays = {"coef": model.coef_, "intercept": model.intercept_,
                      "classes": model.classes_}
            atomic_write_bytes(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
    return PixelModelExpert(model, name=spec.name, input_size=spec.input_size), trained


def _export_onnx(module, spec, path):
    """Write the network as ONNX (batch dimension dynamic) to ``path``."""
    with warnings.catch_warnings():
        # torch 2.14 deprecates the TorchScript exporter; its replacement needs onnxscript,
        # which is not installed offline. The legacy exporter's graph is what we serve.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        torch.onnx.export(module.to(memory_format=torch.contiguous_format),
                          torch.zeros(1, 1, *spec.input_size), str(path), dynamo=False,
                          input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}})


def _serve_onnx(spec, path):
    return OnnxExpert(path, name=spec.name, mean=spec.mean, std=spec.std, output="logits")


def _load_onnx(spec, path):
    """The cached export as an expert, or None when it is missing or unreadable."""
    if path is None or not path.exists():
        return None
    try:
        return _serve_onnx(spec, path)
    except Exception as exc:  # onnxruntime's load errors share no public base class
        warnings.warn(f"cached ONNX export {path} is unreadable ({exc}); exporting again",
                      CorruptRecordWarning, stacklevel=3)
        return None


def _onnx_expert(spec, torch_expert, cache_dir):
    """The trained network as an :class:`OnnxExpert`, its export cached by the weights' hash."""
    folder = resolve_cache_dir(cache_dir)
    key = hash_json([torch.__version__, torch_expert.fingerprint])
    cached = None if folder is None else Path(folder) / "world" / "onnx" / f"{spec.name}-{key}.onnx"
    expert = _load_onnx(spec, cached)
    if expert is not None:
        return expert
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{spec.name}.onnx"
        _export_onnx(torch_expert.module, spec, path)
        if cached is not None:
            atomic_write_bytes(cached, path.read_bytes())
        return _serve_onnx(spec, path)


def load_or_train_market_expert(spec, world, *, cache_dir=None, training_scale=1.0):
    """One market expert in its framework: cached when present, else trained now (and cached).

    Torch and ONNX experts train through :func:`load_or_train_expert` (same seeded draw, same
    weights cache); the ONNX export is cached under ``world/onnx`` by the weights' hash.
    scikit-learn experts fit on a seeded ``training_scale`` share of the same draw and are
    stored as safetensors arrays.

    Parameters
    ----------
    spec : MarketSpec
    world : World
    cache_dir, training_scale
        See :func:`load_or_train_expert`.

    Returns
    -------
    TrainedExpert
        ``expert`` is a TorchExpert, an OnnxExpert or a :class:`PixelModelExpert`.

    Examples
    --------
    >>> from skmll.datasets import MARKET_EXPERTS, load_or_train_market_expert, make_world
    >>> world = make_world(fashion_test=500)
    >>> onnx_spec = next(s for s in MARKET_EXPERTS if s.framework == "onnx")
    >>> result = load_or_train_market_expert(onnx_spec, world, cache_dir=False,
    ...                                      training_scale=0.1)
    >>> type(result.expert).__name__, result.expert.n_outputs == len(onnx_spec.heads)
    ('OnnxExpert', True)
    """
    start = time.perf_counter()
    if spec.framework == "sklearn":
        expert, trained = _load_or_fit_pixel_expert(spec, world, cache_dir, training_scale)
    else:
        result = load_or_train_expert(spec, world, cache_dir=cache_dir,
                                      training_scale=training_scale)
        expert, trained = result.expert, result.trained
        if spec.framework == "onnx":
            expert = _onnx_expert(spec, expert, cache_dir)
    return TrainedExpert(spec, expert, trained, time.perf_counter() - start)


def train_market(world, *, cache_dir=None, training_scale=1.0, verbose=1):
    """All :data:`MARKET_EXPERTS`, each loaded from the cache or trained.

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
        In :data:`MARKET_EXPERTS` order.

    Examples
    --------
    >>> from skmll.datasets import make_world, train_market
    >>> results = train_market(make_world(fashion_test=500), verbose=0)  # ~1 min the first time
    >>> len(results), results[0].spec.name
    (40, 'market-01')
    """
    return load_or_train_each(MARKET_EXPERTS, load_or_train_market_expert, world,
                              cache_dir=cache_dir, training_scale=training_scale,
                              verbose=verbose, desc="market experts")
