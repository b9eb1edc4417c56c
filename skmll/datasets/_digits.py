"""scikit-learn's digits as a small MLL world: splits and experts trained in a second.

What the gallery examples and quick experiments need when the full offline world (Fashion-MNIST,
EfficientNet-Lite, minutes to build) is more than the point calls for.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SYNSETS = ("zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
                 "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01")


def load_digit_splits(*, n_reference=300, random_state=0):
    """The 1,797 digits as uint8 8 x 8 images, in three disjoint, stratified parts.

    Half trains experts; of the rest, ``n_reference`` images represent the SDAG's nodes and the
    remainder is the test set.

    Parameters
    ----------
    n_reference : int, default=300
        Images for the SDAG (30 per digit by default).
    random_state : int, default=0

    Returns
    -------
    Bunch
        ``train_images``, ``train_digits``, ``reference_images``, ``reference_digits``,
        ``test_images``, ``test_digits`` (digits are ints 0-9), ``reference`` (WordNet synset
        -> its reference images, ready for :meth:`~skmll.SemanticDAG.from_wordnet`), ``names``
        ("zero" ... "nine") and ``synsets`` ("zero.n.02" ...).

    Examples
    --------
    >>> splits = load_digit_splits()
    >>> splits.train_images.shape, splits.reference["seven.n.01"].shape, len(splits.test_digits)
    ((898, 8, 8), (30, 8, 8), 599)
    """
    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8)
    train_images, other_images, train_digits, other_digits = train_test_split(
        images, digits.target, train_size=0.5, stratify=digits.target, random_state=random_state)
    reference_images, test_images, reference_digits, test_digits = train_test_split(
        other_images, other_digits, train_size=n_reference, stratify=other_digits,
        random_state=random_state)
    reference = {synset: reference_images[reference_digits == d]
                 for d, synset in enumerate(DIGIT_SYNSETS)}
    return Bunch(train_images=train_images, train_digits=train_digits,
                 reference_images=reference_images, reference_digits=reference_digits,
                 test_images=test_images, test_digits=test_digits, reference=reference,
                 names=list(DIGIT_NAMES), synsets=list(DIGIT_SYNSETS))


def train_digit_expert(images, digits, name, heads, *, max_images=None, steps=200, seed=0):
    """A small network on 8 x 8 gray digits whose output ``j`` fires for the digits in ``heads[j]``.

    Only images of the digits in ``heads`` are used (the first ``max_images`` of them when
    given): the expert never sees the rest of the label space, and skmll is never told what its
    outputs mean.

    Parameters
    ----------
    images : uint8 ndarray of shape (n, 8, 8)
    digits : int ndarray of shape (n,)
    name : str
    heads : list of lists of int
        The digits each output stands for, e.g. ``[[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]``.
    max_images : int or None, default=None
    steps : int, default=200
        Full-batch Adam steps.
    seed : int, default=0

    Returns
    -------
    TorchExpert

    Examples
    --------
    >>> splits = load_digit_splits()
    >>> parity = train_digit_expert(splits.train_images, splits.train_digits, "parity",
    ...                             [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]])
    >>> parity.n_outputs
    2
    """
    import torch

    from ..hub import TorchExpert

    known = np.flatnonzero(np.isin(digits, np.concatenate(heads)))[:max_images]
    targets = np.zeros(len(digits), dtype=np.int64)
    for j, head in enumerate(heads):
        targets[np.isin(digits, head)] = j
    x = torch.tensor(images[known] / 255, dtype=torch.float32)[:, None]
    y = torch.tensor(targets[known])
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, len(heads)))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return TorchExpert(net.eval(), name=name, input_size=(8, 8), channels=1)
