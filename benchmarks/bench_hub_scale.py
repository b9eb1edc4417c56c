"""Hub scale: MLLZeroShotClassifier.fit (matching + CHCO + selection) for 100 to 10,000 experts.

Synthetic hubs stand in for Hugging Face: each expert has 10-1,000 heads and a label whose
structure mimics real ones (a few heads respond to a few task nodes, the rest is noise). The
labels are set on the labeler directly (labelling cost is measured by bench_labelling.py); fit
is then the real code path: text matching against the SDAG, CHCO over every expert as batched
tensor problems, top-k selection. Prints time and peak memory per hub size.
Usage: python benchmarks/bench_hub_scale.py [--sizes 100 1000 10000]
"""

import argparse
import time
import tracemalloc

import numpy as np

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.labelling import ModelLabel, sdag_key

CLASSES = ["sandal", "sneaker", "boot", "bag", "coat", "dress", "shirt", "trousers", "pullover",
           "hat"]


class SyntheticExpert:
    """An expert known only through its label (never run in this benchmark)."""

    def __init__(self, name, n_outputs):
        self.name, self.n_outputs, self.fingerprint = name, n_outputs, name

    def logits(self, images):  # pragma: no cover - fit never runs experts
        raise RuntimeError("fit must not run experts")


def synthetic_label(rng, name, sdag, n_heads):
    n_nodes = sdag.n_nodes
    scores = rng.normal(0, 1, (n_nodes, n_heads))
    informative = rng.choice(n_heads, size=min(n_heads, 3), replace=False)
    for head in informative:
        scores[rng.choice(n_nodes, size=2, replace=False), head] += rng.uniform(2, 6)
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return ModelLabel(name, tuple(sdag.node_ids), scores.astype(np.float32),
                      probabilities.astype(np.float32), sdag_key=sdag_key(sdag), delta=1.0)


def build_labeler(n_experts, seed=0):
    rng = np.random.default_rng(seed)
    nodes = [f"{c}.n.01" for c in CLASSES]
    sdag = SemanticDAG(nodes, texts={n: f"Name: {n.split('.')[0]}" for n in nodes},
                       data={n: np.zeros((1, 4, 4), np.uint8) for n in nodes})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0)
    experts = [SyntheticExpert(f"m{i}", int(rng.integers(10, 1001))) for i in range(n_experts)]
    labeler.hub_ = ModelHub(experts)
    labeler.labels_ = {e.name: synthetic_label(rng, e.name, sdag, e.n_outputs)
                       for e in experts}
    labeler.delta_ = labeler.delta
    labeler.node_statistics_ = {}
    labeler.sdag_key_, labeler.fingerprints_ = sdag_key(sdag), {}
    return labeler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args()
    encoder = None
    print(f"{'experts':>8} {'fit s':>8} {'per expert ms':>14} {'peak MiB':>9}")
    for size in args.sizes:
        labeler = build_labeler(size)
        clf = MLLZeroShotClassifier(CLASSES, labeler, k=2, text_encoder=encoder, cache_dir=False)
        clf.fit()  # warm the text encoder (loaded once per process)
        encoder = clf.text_encoder
        tracemalloc.start()
        start = time.perf_counter()
        clf.fit()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{size:>8} {seconds:>8.2f} {1000 * seconds / size:>14.2f} {peak:>9.1f}",
              flush=True)


if __name__ == "__main__":
    main()
