"""predict throughput against raw forward passes of the distinct selected experts.

Both sides see the same uint8 test images; "raw" runs each selected expert's ``logits`` once on
the canonical batch, as a hand-written loop would. The ratio raw_time / predict_time is the
fraction of raw throughput that ``predict_proba`` keeps (goal >= 0.9). Median of 5 interleaved
repetitions. Usage: python benchmarks/bench_predict.py [--n 2000]
"""

import argparse
import time

import numpy as np

from skmll import MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.datasets import build_world_hub, make_world
from skmll.hub import as_image_batch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    world = make_world(fashion_test=args.n)
    hub = build_world_hub(world, include_pretrained=False, verbose=0)
    labeler = ModelLabeler(SemanticDAG.from_wordnet(world.reference), verbose=0).fit(hub)
    for name, ids in (("fashion-10", list(range(10))), ("garments+digits",
                                                        [0, 1, 2, 3, 4, 6] + list(range(10, 20)))):
        images, _, names, _ = world.task(ids)
        clf = MLLZeroShotClassifier(names, labeler, k=2, batch_size=len(images)).fit()
        used = sorted({e for entries in clf.experts_.values() for e, _, _ in entries})
        experts = [labeler.hub_[e] for e in used]
        raw_times, predict_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            batch = as_image_batch(images)
            for expert in experts:
                expert.logits(batch)
            raw_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            clf.predict_proba(images)
            predict_times.append(time.perf_counter() - start)
        raw, predict = np.median(raw_times), np.median(predict_times)
        print(f"{name:16s} {len(images)} images, {len(used)} distinct experts for "
              f"{len(names)} classes: raw {raw:.3f} s, predict_proba {predict:.3f} s, "
              f"ratio {raw / predict:.3f}")


if __name__ == "__main__":
    main()
