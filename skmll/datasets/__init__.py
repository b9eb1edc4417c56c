"""The offline benchmark world: a reproducible stand-in for ImageNet + a model hub.

Fashion-MNIST and scikit-learn digits (20 classes with WordNet synsets) are split into expert
training, SDAG reference and test data (:func:`make_world`), and evaluation data further into
development and held-out test images (:func:`held_out_split`); :func:`build_world_hub` trains
(and caches) small experts with heterogeneous label spaces on the training split and adds the
shipped pretrained models (``size="large"``: a hub of the paper's size, with the small experts
of :data:`MARKET_EXPERTS`); :func:`random_tasks` draws held-out tasks named as the data's
publishers name the classes; :func:`supervised_oracle` is the labelled upper reference.
:func:`load_digit_splits` and :func:`train_digit_expert` make a world of scikit-learn's digits
alone, built in seconds (the gallery's examples).
"""

from ._digits import DIGIT_NAMES, DIGIT_SYNSETS, load_digit_splits, train_digit_expert
from ._experts import (
    WORLD_EXPERTS,
    ExpertSpec,
    MnistCNN,
    TrainedExpert,
    efficientnet_lite_experts,
    load_or_train_expert,
    mnist_cnn_experts,
    train_world_experts,
)
from ._hub import build_world_hub
from ._market import (
    MARKET_EXPERTS,
    MarketSpec,
    PixelModelExpert,
    load_or_train_market_expert,
    market_specs,
    train_market,
)
from ._tasks import published_class_names, random_tasks
from ._loaders import load_class_table, load_digit_images, load_fashion_mnist
from ._oracle import supervised_oracle
from ._world import World, group_labels, held_out_split, make_world

__all__ = [
    "DIGIT_NAMES",
    "DIGIT_SYNSETS",
    "MARKET_EXPERTS",
    "WORLD_EXPERTS",
    "ExpertSpec",
    "MarketSpec",
    "MnistCNN",
    "PixelModelExpert",
    "TrainedExpert",
    "World",
    "build_world_hub",
    "efficientnet_lite_experts",
    "group_labels",
    "held_out_split",
    "load_class_table",
    "load_digit_images",
    "load_digit_splits",
    "load_fashion_mnist",
    "load_or_train_expert",
    "load_or_train_market_expert",
    "make_world",
    "market_specs",
    "mnist_cnn_experts",
    "published_class_names",
    "random_tasks",
    "supervised_oracle",
    "train_digit_expert",
    "train_market",
    "train_world_experts",
]
