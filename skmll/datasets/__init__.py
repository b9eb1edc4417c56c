"""The offline benchmark world: a reproducible stand-in for ImageNet + a model hub.

Fashion-MNIST and scikit-learn digits (20 classes with WordNet synsets) are split into expert
training, SDAG reference and test data (:func:`make_world`), and evaluation data further into
development and held-out test images (:func:`held_out_split`); :func:`build_world_hub` trains
(and caches) small experts with heterogeneous label spaces on the training split and adds the
shipped pretrained models; :func:`supervised_oracle` is the labelled upper reference.
:func:`load_digit_splits` and :func:`train_digit_expert` make a world of scikit-learn's digits
alone, built in seconds (the gallery's examples).
"""

from ._digits import DIGIT_NAMES, DIGIT_SYNSETS, load_digit_splits, train_digit_expert
from ._experts import (
    WORLD_EXPERTS,
    ExpertSpec,
    TrainedExpert,
    build_world_hub,
    efficientnet_lite_experts,
    load_or_train_expert,
    train_world_experts,
)
from ._loaders import load_class_table, load_digit_images, load_fashion_mnist
from ._oracle import supervised_oracle
from ._world import World, group_labels, held_out_split, make_world

__all__ = [
    "DIGIT_NAMES",
    "DIGIT_SYNSETS",
    "WORLD_EXPERTS",
    "ExpertSpec",
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
    "make_world",
    "supervised_oracle",
    "train_digit_expert",
    "train_world_experts",
]
