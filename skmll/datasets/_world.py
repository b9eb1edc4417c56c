"""The offline benchmark world: three disjoint splits of Fashion-MNIST and digit images.

* **train**: the data the world's experts are trained on (Fashion-MNIST train + digits);
* **reference**: up to ``reference_per_node`` images per class, the SDAG's representative data;
* **test**: a Fashion-MNIST t10k subset + a third of the digits, where tasks are scored.

:func:`held_out_split` divides evaluation data further: development images (to choose defaults
on) and held-out test images (to report on).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from ._loaders import load_class_table, load_digit_images, load_fashion_mnist

N_FASHION_TRAIN, N_FASHION_TEST = 60_000, 10_000
# Image ids (World.*_origin) index the concatenation of the three sources, in this order.
FASHION_TRAIN_OFFSET, FASHION_TEST_OFFSET, DIGITS_OFFSET = 0, N_FASHION_TRAIN, 70_000
N_FASHION_CLASSES = 10
DIGITS_TEST_FRACTION = 1 / 3


def group_labels(labels, groups):
    """Map class ids to group indices: ``labels`` in ``groups[j]`` become ``j``.

    Parameters
    ----------
    labels : array-like of int
    groups : sequence of sequences of int
        Disjoint groups of class ids.

    Returns
    -------
    mask : ndarray of bool
        Which labels belong to some group.
    targets : ndarray of int64
        The group index of each selected label (``labels[mask]``).

    Examples
    --------
    >>> mask, targets = group_labels([5, 1, 7, 9], [(5,), (7, 9)])
    >>> mask.tolist(), targets.tolist()
    ([True, False, True, True], [0, 1, 1])
    """
    labels = np.asarray(labels, dtype=np.int64)
    lookup = np.full(max(labels.max(initial=0), max(max(g) for g in groups)) + 1, -1)
    for index, group in enumerate(groups):
        if (lookup[list(group)] >= 0).any():
            raise ValueError(f"class groups must be disjoint; got {groups}")
        lookup[list(group)] = index
    mapped = lookup[labels]
    mask = mapped >= 0
    return mask, mapped[mask]


@dataclass(eq=False)
class World:
    """The benchmark world: 20 classes and three disjoint splits of uint8 28x28 images.

    Built by :func:`make_world`. Global class ids are 0..9 for Fashion-MNIST and 10..19 for
    the digits 0..9.

    Attributes
    ----------
    class_names : list of str
        The natural task name of each global class id ("T-shirt", ..., "zero", ...).
    synsets : list of str
        The WordNet 3.0 noun synset of each class ("jersey.n.03", ...).
    train_images, train_labels : ndarray
        The experts' training split, ``(n, 28, 28)`` uint8 and global class ids.
    reference : dict of str to ndarray
        Synset -> representative images ``(m, 28, 28)`` uint8 for the SDAG.
    test_images, test_labels : ndarray
        The test split.
    train_origin, test_origin : ndarray of int64
        Where each image comes from: an index into the concatenation of Fashion-MNIST train
        (60,000), Fashion-MNIST t10k (10,000) and the digits (1,797).
    reference_origin : dict of str to ndarray
        The same for each synset's reference images.
    seed : int
        The seed the splits were drawn with.
    """

    class_names: list
    synsets: list
    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    reference: dict = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    train_origin: np.ndarray = field(repr=False)
    test_origin: np.ndarray = field(repr=False)
    reference_origin: dict = field(repr=False)
    seed: int = 0

    def task(self, class_ids):
        """A classification task over some of the world's classes, on the test split.

        Parameters
        ----------
        class_ids : sequence of int
            Distinct global class ids; their order sets the task's label order.

        Returns
        -------
        images : ndarray (n, 28, 28), uint8
            The test images of those classes.
        labels : ndarray (n,), int64
            Task labels 0..k-1 (position of the class in ``class_ids``).
        names, synsets : list of str
            The task's class names and WordNet synsets, in ``class_ids`` order.

        Examples
        --------
        >>> world = make_world(fashion_test=500)
        >>> images, labels, names, synsets = world.task([5, 7, 9])
        >>> names, images.shape[1:], sorted(set(labels.tolist()))
        (['sandal', 'sneaker', 'ankle boot'], (28, 28), [0, 1, 2])
        """
        class_ids = _check_class_ids(class_ids, len(self.class_names))
        mask, labels = group_labels(self.test_labels, [(c,) for c in class_ids])
        return (self.test_images[mask], labels, [self.class_names[c] for c in class_ids],
                [self.synsets[c] for c in class_ids])


def _check_class_ids(class_ids, n_classes):
    class_ids = [int(c) for c in class_ids]
    if not class_ids or len(set(class_ids)) != len(class_ids):
        raise ValueError(f"class_ids must be a non-empty list of distinct ids; got {class_ids}")
    if min(class_ids) < 0 or max(class_ids) >= n_classes:
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}; got {class_ids}")
    return class_ids


def _stratified_parts(labels, rng, part_sizes):
    """Shuffle each class's indices and cut them into consecutive parts.

    ``part_sizes(n, label)`` gives the sizes of all parts but the last, which takes the rest.
    Returns one index array per part, classes in increasing label order.
    """
    per_class = []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        per_class.append(np.split(indices, np.cumsum(part_sizes(len(indices), label))))
    return [np.concatenate(part) for part in zip(*per_class)]


def make_world(*, fashion_test=5000, reference_per_node=50, seed=0):
    """Draw the benchmark world's three disjoint splits.

    * Fashion-MNIST train: ``reference_per_node`` images per class go to the reference split,
      the rest to the training split.
    * Fashion-MNIST t10k: a class-balanced subset of ``fashion_test`` images is the test split.
    * Digits: per class, a third goes to the test split, ``reference_per_node`` to the reference
      split, the rest (about 70 per digit) to the training split.

    The sources hold no duplicate images, so disjoint indices mean no image is shared.

    Parameters
    ----------
    fashion_test : int, default 5000
        Fashion-MNIST test images (1..10000).
    reference_per_node : int, default 50
        Reference images per class (1..100).
    seed : int, default 0
        Same seed, same world.

    Returns
    -------
    World

    Examples
    --------
    >>> world = make_world(fashion_test=500)
    >>> world.test_images.shape, len(world.reference), world.reference["gym_shoe.n.01"].shape
    ((1096, 28, 28), 20, (50, 28, 28))
    """
    if not 1 <= int(fashion_test) <= N_FASHION_TEST:
        raise ValueError(f"fashion_test must lie in 1..{N_FASHION_TEST}; got {fashion_test}")
    if not 1 <= int(reference_per_node) <= 100:
        raise ValueError(f"reference_per_node must lie in 1..100; got {reference_per_node}")
    fashion_test, reference_per_node = int(fashion_test), int(reference_per_node)
    rng = np.random.default_rng(seed)
    fashion_x, fashion_y = load_fashion_mnist("train")
    fashion_test_x, fashion_test_y = load_fashion_mnist("test")
    digits_x, digits_y = load_digit_images()

    fashion_ref, fashion_train = _stratified_parts(
        fashion_y, rng, lambda n, label: [reference_per_node])
    base, extra = divmod(fashion_test, N_FASHION_CLASSES)
    fashion_eval, _ = _stratified_parts(
        fashion_test_y, rng, lambda n, label: [base + int(label < extra)])
    digits_eval, digits_ref, digits_train = _stratified_parts(
        digits_y, rng, lambda n, label: [int(n * DIGITS_TEST_FRACTION), reference_per_node])

    digit_ids = digits_y + N_FASHION_CLASSES
    table = load_class_table()
    synsets = [row["synset"] for row in table]
    reference_images = np.concatenate([fashion_x[fashion_ref], digits_x[digits_ref]])
    reference_labels = np.concatenate([fashion_y[fashion_ref], digit_ids[digits_ref]])
    reference_ids = np.concatenate([fashion_ref + FASHION_TRAIN_OFFSET,
                                    digits_ref + DIGITS_OFFSET])
    return World(
        class_names=[row["name"] for row in table],
        synsets=synsets,
        train_images=np.concatenate([fashion_x[fashion_train], digits_x[digits_train]]),
        train_labels=np.concatenate([fashion_y[fashion_train], digit_ids[digits_train]]),
        reference={s: reference_images[reference_labels == c] for c, s in enumerate(synsets)},
        test_images=np.concatenate([fashion_test_x[fashion_eval], digits_x[digits_eval]]),
        test_labels=np.concatenate([fashion_test_y[fashion_eval], digit_ids[digits_eval]]),
        train_origin=np.concatenate([fashion_train + FASHION_TRAIN_OFFSET,
                                     digits_train + DIGITS_OFFSET]),
        test_origin=np.concatenate([fashion_eval + FASHION_TEST_OFFSET,
                                    digits_eval + DIGITS_OFFSET]),
        reference_origin={s: reference_ids[reference_labels == c]
                          for c, s in enumerate(synsets)},
        seed=seed,
    )


def held_out_split(world, *, fashion_test=2000, digits_development=0.5, seed=0):
    """Development images to choose defaults on, and held-out test images to report on.

    Both come back as worlds with the same training and reference splits as ``world`` (so the
    same experts and the same labels), and different test splits:

    * **development**: the Fashion-MNIST images of ``world``'s test split and a stratified
      ``digits_development`` fraction of its digits;
    * **held out**: ``fashion_test`` class-balanced Fashion-MNIST t10k images that ``world``'s
      test split does not contain, and the rest of its digits.

    No expert trains on either (experts see only the training split), and the two share no
    image. Every scikit-learn digit already lies in one of ``world``'s splits, so the held-out
    digits are a part of ``world``'s test split, and only its Fashion-MNIST images are new.

    Parameters
    ----------
    world : World
        From :func:`make_world`.
    fashion_test : int, default 2000
        Held-out Fashion-MNIST images; at most the t10k images outside ``world``'s test split.
    digits_development : float, default 0.5
        Fraction of ``world``'s test digits, per digit, that go to development (0 < f < 1).
    seed : int, default 0
        Seeds the draw of held-out Fashion-MNIST images and the cut of the digits.

    Returns
    -------
    development, held_out : World

    Examples
    --------
    >>> world = make_world(fashion_test=500)
    >>> development, held_out = held_out_split(world, fashion_test=1000)
    >>> [int((w.test_labels < 10).sum()) for w in (development, held_out)]
    [500, 1000]
    >>> bool(set(development.test_origin) & set(held_out.test_origin))
    False
    """
    if not 0 < digits_development < 1:
        raise ValueError(f"digits_development must lie strictly between 0 and 1; "
                         f"got {digits_development}")
    rng = np.random.default_rng(seed)
    fresh_images, fresh_labels, fresh_origin = _unused_fashion_test(world, fashion_test, rng)
    fashion = world.test_labels < N_FASHION_CLASSES
    digits = np.flatnonzero(~fashion)
    digits_dev, digits_test = (digits[part] for part in _stratified_parts(
        world.test_labels[digits], rng, lambda n, label: [round(n * digits_development)]))
    development = np.concatenate([np.flatnonzero(fashion), digits_dev])
    return (replace(world, test_images=world.test_images[development],
                    test_labels=world.test_labels[development],
                    test_origin=world.test_origin[development]),
            replace(world,
                    test_images=np.concatenate([fresh_images, world.test_images[digits_test]]),
                    test_labels=np.concatenate([fresh_labels, world.test_labels[digits_test]]),
                    test_origin=np.concatenate([fresh_origin, world.test_origin[digits_test]])))


def _unused_fashion_test(world, n_images, rng):
    """``n_images`` class-balanced t10k images (and labels, origins) outside world's test split."""
    used = world.test_origin[world.test_labels < N_FASHION_CLASSES] - FASHION_TEST_OFFSET
    if ((used < 0) | (used >= N_FASHION_TEST)).any():
        raise ValueError("world's Fashion-MNIST test images must come from t10k (use make_world)")
    unused = np.setdiff1d(np.arange(N_FASHION_TEST), used)
    images, labels = load_fashion_mnist("test")
    base, extra = divmod(int(n_images), N_FASHION_CLASSES)
    wanted = [base + int(label < extra) for label in range(N_FASHION_CLASSES)]
    available = np.bincount(labels[unused], minlength=N_FASHION_CLASSES)
    if int(n_images) < 1 or (available < wanted).any():
        raise ValueError(f"fashion_test must lie in 1..{N_FASHION_CLASSES * available.min()} "
                         f"(class-balanced t10k images outside world's test split); "
                         f"got {n_images}")
    chosen, _ = _stratified_parts(labels[unused], rng, lambda n, label: [wanted[label]])
    chosen = unused[chosen]
    return images[chosen], labels[chosen], chosen + FASHION_TEST_OFFSET
