"""Shared fixtures: real tiny experts trained in seconds on scikit-learn digits.

The experts see disjoint parts of the label space (digits 0-4, digits 5-9, parity, all ten with
little data); skmll is never told which. Images are 8x8 uint8 (digit values scaled to 0-255).
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skmll.hub import TorchExpert

# Tiny models run fastest on one thread, and pytest-xdist runs one worker per core.
torch.set_num_threads(1)

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_SYNSETS = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
                 "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01"]


class DigitSplits:
    """Disjoint expert-training, SDAG-reference and test splits of the digits."""

    def __init__(self, seed=0, reference_per_class=30):
        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
        labels = digits.target
        order = np.random.default_rng(seed).permutation(len(labels))
        reference_idx = np.concatenate(
            [order[labels[order] == d][:reference_per_class] for d in range(10)])
        rest = np.setdiff1d(order, reference_idx)
        rest = rest[np.random.default_rng(seed + 1).permutation(len(rest))]
        train_idx, test_idx = rest[:900], rest[900:]
        self.train = images[train_idx], labels[train_idx]
        self.test = images[test_idx], labels[test_idx]
        self.reference = {DIGIT_SYNSETS[d]: images[reference_idx][labels[reference_idx] == d]
                          for d in range(10)}


def train_mlp(images, targets, n_outputs, *, seed, steps=300, hidden=32):
    """A small MLP on 8x8 grayscale in [0, 1], trained full-batch with Adam (deterministic)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, n_outputs))
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return net.eval()


def digit_expert(splits, name, digits, target_of=None, *, seed, n_train=None, steps=300):
    """An expert trained on the given digits; ``target_of`` maps a digit to its output index."""
    images, labels = splits.train
    keep = np.isin(labels, digits)
    images, labels = images[keep][:n_train], labels[keep][:n_train]
    target_of = target_of or {d: i for i, d in enumerate(digits)}
    targets = np.array([target_of[d] for d in labels])
    n_outputs = len(set(target_of.values()))
    net = train_mlp(images, targets, n_outputs, seed=seed, steps=steps)
    return TorchExpert(net, name=name, input_size=(8, 8), channels=1)


class CountingExpert:
    """Delegates to a real expert and counts the images it is asked to classify."""

    def __init__(self, expert):
        self.expert = expert
        self.name = expert.name
        self.n_outputs = expert.n_outputs
        self.fingerprint = expert.fingerprint
        self.n_images = 0
        self.n_calls = 0

    def logits(self, images):
        self.n_calls += 1
        self.n_images += len(images)
        return self.expert.logits(images)


@pytest.fixture(scope="session")
def digit_splits():
    return DigitSplits()


@pytest.fixture(scope="session")
def digit_experts(digit_splits):
    """Four experts with hidden, overlapping label spaces."""
    return [
        digit_expert(digit_splits, "expert-a", [0, 1, 2, 3, 4], seed=1),
        digit_expert(digit_splits, "expert-b", [5, 6, 7, 8, 9], seed=2),
        digit_expert(digit_splits, "expert-c", list(range(10)), {d: d % 2 for d in range(10)},
                     seed=3),
        digit_expert(digit_splits, "expert-d", list(range(10)), seed=4, n_train=120, steps=60),
    ]


@pytest.fixture(scope="session")
def wordnet():
    from skmll.semantic_graph import load_wordnet

    return load_wordnet()


@pytest.fixture(scope="session")
def digit_sdag(digit_splits, wordnet):
    from skmll.semantic_graph import SemanticDAG

    return SemanticDAG.from_wordnet(digit_splits.reference, wordnet=wordnet)


@pytest.fixture(scope="module")
def client():
    """A local Dask cluster of two single-threaded worker processes (tests of distribution)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client
