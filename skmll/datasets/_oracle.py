"""The supervised upper reference of the benchmark: a classifier trained on the task's labels."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from ._world import _check_class_ids, group_labels


def pixel_features(images):
    """uint8 images ``(n, H, W)`` -> float ``(n, H * W)`` pixels scaled to [0, 1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def supervised_oracle(world, class_ids, *, max_per_class=2000, seed=0):
    """Logistic regression on pixels, trained with labels on the world's training split.

    Unlike the zero-shot methods it sees labelled task data, so it is the benchmark's upper
    reference.

    Parameters
    ----------
    world : World
    class_ids : sequence of int
        The task's global class ids; predictions are their positions 0..k-1, as in
        :meth:`World.task`.
    max_per_class : int, default 2000
        Training images per class, at most (a fixed seeded draw).
    seed : int, default 0

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; ``predict`` takes uint8 images ``(n, 28, 28)``.

    Examples
    --------
    >>> from skmll.datasets import make_world, supervised_oracle
    >>> world = make_world(fashion_test=500)
    >>> oracle = supervised_oracle(world, [5, 7, 9], max_per_class=300)
    >>> images, labels, _, _ = world.task([5, 7, 9])
    >>> oracle.score(images, labels) > 0.8
    True
    """
    class_ids = _check_class_ids(class_ids, len(world.class_names))
    mask, targets = group_labels(world.train_labels, [(c,) for c in class_ids])
    images = world.train_images[mask]
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(targets == k))[:max_per_class]
                             for k in range(len(class_ids))])
    model = make_pipeline(FunctionTransformer(pixel_features),
                          LogisticRegression(max_iter=2000, random_state=seed))
    # One BLAS thread: the fit is then the same on any machine, and on two busy cores it is
    # several times faster than a multi-threaded BLAS fighting for them.
    with threadpool_limits(limits=1):
        return model.fit(images[chosen], targets[chosen])
