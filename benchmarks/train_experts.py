"""Build the offline benchmark world and its expert hub; report each trained expert.

Trains (or loads from the cache) every expert of ``skmll.datasets.WORLD_EXPERTS`` on the
world's training split, then builds the full hub (trained experts from the cache + the shipped
pretrained models) and prints, per trained expert, its accuracy on the test images of its own
classes against its own heads, with timings.

Usage::

    python benchmarks/train_experts.py [--cache-dir DIR] [--fashion-test 5000] [--seed 0]
"""

import argparse
import time

from skmll.datasets import build_world_hub, make_world, train_world_experts


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $SKMLL_CACHE_DIR or ~/.cache/skmll)")
    parser.add_argument("--fashion-test", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--training-scale", type=float, default=1.0)
    parser.add_argument("--no-pretrained", action="store_true",
                        help="leave the pretrained models out of the hub")
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.perf_counter()
    world = make_world(fashion_test=args.fashion_test, seed=args.seed)
    print(f"world: {len(world.train_labels)} train / "
          f"{sum(len(v) for v in world.reference.values())} reference / "
          f"{len(world.test_labels)} test images ({time.perf_counter() - start:.1f} s)")

    start = time.perf_counter()
    results = train_world_experts(world, cache_dir=args.cache_dir,
                                  training_scale=args.training_scale)
    training_seconds = time.perf_counter() - start

    print(f"\n{'expert':<10} {'heads':>5} {'source':>7} {'seconds':>8} {'test acc':>9} "
          f"{'chance':>7}  trained on")
    for result in results:
        spec = result.spec
        accuracy = spec.accuracy(result.expert, world.test_images, world.test_labels)
        print(f"{spec.name:<10} {len(spec.heads):>5} "
              f"{'trained' if result.trained else 'cache':>7} {result.seconds:>8.1f} "
              f"{accuracy:>9.3f} {1 / len(spec.heads):>7.3f}  {spec.description}")
    print(f"all trained experts: {training_seconds:.1f} s")

    start = time.perf_counter()
    hub = build_world_hub(world, cache_dir=args.cache_dir, training_scale=args.training_scale,
                          include_pretrained=not args.no_pretrained)
    print(f"\nhub of {len(hub)} experts built in {time.perf_counter() - start:.1f} s "
          f"(trained experts from the cache):")
    for expert in hub:
        print(f"  {expert.name:<22} {expert.n_outputs:>5} outputs")


if __name__ == "__main__":
    main()
