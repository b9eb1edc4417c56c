"""Random zoos unlike the benchmark's: other node names, head counts and response patterns."""

import numpy as np

from skmll.zoo import ZooStore


def random_expert(rng, n_nodes, n_heads):
    """Rows of an expert whose heads each respond to a few nodes, on a noisy background."""
    scores = rng.normal(0, rng.uniform(0.3, 1.5), (n_nodes, n_heads))
    for head in range(n_heads):
        scores[rng.choice(n_nodes, rng.integers(1, 5), replace=False), head] += \
            rng.uniform(1, 8)
    rows = np.exp(scores - scores.max(axis=1, keepdims=True))
    return rows / rows.sum(axis=1, keepdims=True)


def build_zoo(root, *, seed, n_nodes=60, segment_sizes=(40, 25, 35),
              heads=(2, 3, 4, 7, 12, 30, 90, 150)):
    """A zoo of random experts in several segments, node ids ``site-<i>``."""
    rng = np.random.default_rng(seed)
    zoo = ZooStore.create(root, [f"site-{i}" for i in range(n_nodes)])
    for s, size in enumerate(segment_sizes):
        zoo.append([(f"model-{s}-{i}", random_expert(rng, n_nodes, int(rng.choice(heads))))
                    for i in range(size)])
    return zoo
