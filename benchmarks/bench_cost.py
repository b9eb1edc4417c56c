"""Cost per image of every expert of a hub, beside a CLIP ViT-B/32 image tower.

Every row is measured in this one run, on the same batch of world test images (28 x 28
grayscale, each model resizing them to its own input size), with the same torch threads:
GFLOPs per image counted by :func:`skmll.hub.count_gflops` (FlopCounterMode for torch-based
experts, the graph for ONNX; a multiply-add is two FLOPs; preprocessing not counted), and ms
per image by :func:`skmll.hub.measure_cost` (the whole batch in one call, median of
``--repeats`` timed calls after one warm-up call, preprocessing included). "every expert" sums
the rows (what running the whole hub on an image costs). The CLIP row is open_clip's
``ViT-B-32`` image tower with random weights (no weights exist offline: cost only), its
``encode_image`` at 224 x 224 px, measured the same way.

Usage: python benchmarks/bench_cost.py [--large] [--n 32] [--repeats 5] [--threads 1]
                                        [--out results/local/cost.csv]
"""

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from skmll.datasets import build_world_hub, make_world
from skmll.hub import ExpertCost, as_image_batch, measure_cost, preprocess, using_expert
from skmll.hub._cost import _mha_fastpath_off

CLIP_SIZE = (224, 224)
# open_clip's OpenAI image normalisation
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_tower_cost(images, *, repeats=5):
    """:class:`~skmll.hub.ExpertCost` of CLIP ViT-B/32's image tower on ``images``.

    open_clip's ``ViT-B-32`` with random weights, ``encode_image`` at 224 x 224 (resizing and
    normalisation timed, not counted; attention counted on torch's unfused path, whose
    operations FlopCounterMode knows), timed as :func:`skmll.hub.measure_cost` times an expert:
    the batch in one call, median of ``repeats`` calls after one warm-up call.
    """
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    batch = as_image_batch(images)

    def encode(rows):
        tensor = preprocess(rows, input_size=CLIP_SIZE, mean=CLIP_MEAN, std=CLIP_STD)
        return model.encode_image(tensor)

    with torch.inference_mode():
        encode(batch)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            encode(batch)
            seconds.append(time.perf_counter() - start)
        tensor = preprocess(batch[:2], input_size=CLIP_SIZE, mean=CLIP_MEAN, std=CLIP_STD)
        with _mha_fastpath_off(), FlopCounterMode(display=False) as counter:
            model.encode_image(tensor)
    return ExpertCost(counter.get_total_flops() / len(tensor) / 1e9,
                      statistics.median(seconds) * 1000 / len(batch))


def hub_costs(hub, images, *, repeats=5):
    """``{expert name: ExpertCost}`` for every expert of ``hub``, one at a time, in order."""
    costs = {}
    for expert in hub:
        with using_expert(expert):
            costs[expert.name] = measure_cost(expert, images, repeats=repeats)
    return costs


def cost_rows(costs, clip):
    """Table rows ``(name, gflops or None, ms)``: each expert, every expert, CLIP."""
    flops = [c.gflops for c in costs.values()]
    every = (None if None in flops else sum(flops), sum(c.ms_per_image for c in costs.values()))
    return ([(name, c.gflops, c.ms_per_image) for name, c in costs.items()]
            + [(f"every expert ({len(costs)})", *every),
               ("CLIP ViT-B/32 image tower (random weights)", clip.gflops, clip.ms_per_image)])


def _ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.3g}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="the hub of the paper's size")
    parser.add_argument("--n", type=int, default=32, help="images in the timed batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the table as CSV here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    world = make_world()
    hub = build_world_hub(world, size="large" if args.large else "default")
    images = world.test_images[np.random.default_rng(0).permutation(len(world.test_images))
                               [:args.n]]
    costs = hub_costs(hub, images, repeats=args.repeats)
    clip = clip_tower_cost(images, repeats=args.repeats)
    rows = cost_rows(costs, clip)

    print(f"{len(hub)} experts, {args.n} images of 28x28 in one call, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"{'model':<44} {'GFLOPs/image':>13} {'ms/image':>10}")
    for name, gflops, ms in rows:
        shown = "unknown" if gflops is None else f"{gflops:.4g}"
        print(f"{name:<44} {shown:>13} {ms:>10.3g}")
    every, clip_row = rows[-2], rows[-1]
    print(f"every expert / CLIP: GFLOPs {_ratio(every[1], clip_row[1])}, "
          f"ms {_ratio(every[2], clip_row[2])}")
    known = [c.gflops for c in costs.values() if c.gflops is not None]
    if known:
        median_ms = statistics.median(c.ms_per_image for c in costs.values())
        print(f"median expert / CLIP: GFLOPs {_ratio(statistics.median(known), clip.gflops)}, "
              f"ms {_ratio(median_ms, clip.ms_per_image)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "gflops_per_image", "ms_per_image"])
            writer.writerows(rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
