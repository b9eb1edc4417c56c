"""Random held-out tasks over the world's classes, named as the data's publishers name them."""

from math import comb

import numpy as np

from ._loaders import load_class_table

RANDOM_TASKS_SEED = 11


def published_class_names():
    """The name each world class has where its data is published.

    Fashion-MNIST's ten class names as its authors publish them ("T-shirt/top", "Trouser",
    ..., "Ankle boot"), then scikit-learn digits' ``target_names`` as strings ("0" ... "9").
    No code here chose these words, so tasks named with them test matching on names that
    were not tuned to the SDAG.

    Returns
    -------
    list of str
        Indexed by global class id.

    Examples
    --------
    >>> names = published_class_names()
    >>> names[0], names[9], names[10], len(names)
    ('T-shirt/top', 'Ankle boot', '0', 20)
    """
    return [row["source_name"] for row in load_class_table()]


def random_tasks(sizes=(3, 5, 8, 12), *, per_size=3, seed=RANDOM_TASKS_SEED):
    """Draw tasks of random world classes, each class under its published name.

    For each size, ``per_size`` distinct class subsets are drawn uniformly from the world's
    20 classes; no task is hand-picked, so none is tuned to the hub.

    Parameters
    ----------
    sizes : sequence of int, default (3, 5, 8, 12)
        Classes per task, each in 2..20.
    per_size : int, default 3
        Tasks of each size.
    seed : int, default 11
        Same seed, same tasks.

    Returns
    -------
    list of (str, list of (str, tuple of int))
        ``(task name, [(class name, (world class id,)), ...])``, tasks named ``"random-5-2"``
        (the second task of 5 classes), classes in increasing id order. ``dict()`` of it has
        the shape of the benchmark scripts' task tables.

    Examples
    --------
    >>> tasks = random_tasks(sizes=(3,), per_size=2)
    >>> [name for name, _ in tasks]
    ['random-3-1', 'random-3-2']
    >>> all(len(classes) == 3 for _, classes in tasks)
    True
    """
    names = published_class_names()
    sizes = [int(s) for s in sizes]
    if not sizes or any(not 2 <= s <= len(names) for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of task sizes in 2..{len(names)}; "
                         f"got {sizes}")
    per_size = int(per_size)
    too_many = [s for s in sizes if per_size > comb(len(names), s)]
    if per_size < 1 or too_many:
        raise ValueError(f"per_size must be at least 1 and at most the number of distinct "
                         f"tasks of each size; got {per_size} for sizes {sizes}")
    rng = np.random.default_rng(seed)
    tasks = []
    for size in sizes:
        drawn = set()
        while len(drawn) < per_size:
            subset = tuple(sorted(int(c) for c in rng.choice(len(names), size, replace=False)))
            if subset not in drawn:
                drawn.add(subset)
                tasks.append((f"random-{size}-{len(drawn)}", [(names[c], (c,)) for c in subset]))
    return tasks
