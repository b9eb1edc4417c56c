"""Labelling and predict throughput of skmll against raw forward passes, on a chosen device.

Both sides run the same networks (seeded random weights, so nothing is downloaded) on the same
uint8 RGB images held in memory, on ``--device`` in ``--precision``:

- skmll: ``ModelLabeler(device=...).fit(hub)`` over an SDAG of ``--nodes`` nodes x
  ``--per-node`` images, and ``MLLZeroShotClassifier(device=...).predict_proba(images)`` with
  every expert selected (k = number of experts), so both run every network over every image.
- raw: what one writes by hand for the same outputs: per network and batch, uint8 batch ->
  pinned memory -> device (non-blocking) -> float / 255 -> antialiased bilinear resize ->
  normalise -> network (channels-last, under ``torch.autocast`` for fp16/bf16) -> float32 logits
  back on the host. On CUDA in fp32 TF32 is off on both sides, as skmll runs fp32.

The raw logits are checked against the adapters' before any timing. ``ratio = raw seconds /
skmll seconds`` (goal >= 0.9), wall time with the device synchronised, median of ``--repeats``
interleaved runs. Without a label cache each ``fit`` also counts every expert's FLOPs once
(``skmll.hub.count_gflops`` on two images, for ``costs_``); a labelling run keeps that cost,
so it is timed on its own and the row "labelling - FLOP count" leaves it out.

The full run uses timm architectures at 224 px (resnet18, mobilenetv3 small, efficientnet b0,
and a one-channel resnet18) on 64 x 64 images; ``--quick`` uses small CNNs at 28 px on 256
images and runs in well under a minute on a CPU.

Usage::

    python benchmarks/bench_gpu.py --device cuda [--precision fp32|fp16|bf16] [--quick]
                                   [--nodes 20] [--per-node 64] [--repeats 3] [--threads 0]
"""

import argparse
import contextlib
import time

import numpy as np
import torch

from skmll import MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.hub import ModelHub, TorchExpert, count_gflops
from skmll.hub._base import PRECISIONS, precision_context

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--quick", action="store_true", help="small CNNs, few images")
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--per-node", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    defaults = (8, 32, 2) if args.quick else (20, 64, 3)
    for key, value in zip(("nodes", "per_node", "repeats"), defaults):
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# -- networks --------------------------------------------------------------------------------


def small_cnn(channels, n_outputs, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, n_outputs))


def network_specs(quick):
    """[(name, factory, input size, channels)]: each factory returns a fresh seeded module."""
    if quick:
        return [(f"cnn{c}-{n}", lambda c=c, n=n, s=s: small_cnn(c, n, s), (28, 28), c)
                for s, (c, n) in enumerate([(3, 10), (3, 100), (1, 20)])]
    import timm

    def timm_net(arch, channels, seed):
        torch.manual_seed(seed)
        return timm.create_model(arch, pretrained=False, num_classes=100, in_chans=channels)

    return [(f"{arch}-{c}ch", lambda a=arch, c=c, s=s: timm_net(a, c, s), (224, 224), c)
            for s, (arch, c) in enumerate([("resnet18", 3), ("mobilenetv3_small_100", 3),
                                           ("efficientnet_b0", 3), ("resnet18", 1)])]


def gray_stats(channels):
    mean, std = IMAGENET
    return (mean, std) if channels == 3 else (float(np.mean(mean)), float(np.mean(std)))


def make_experts(specs, device, precision, batch_size):
    return [TorchExpert(factory(), name=name, input_size=size, channels=channels,
                        mean=gray_stats(channels)[0], std=gray_stats(channels)[1],
                        batch_size=batch_size, device=device, precision=precision)
            for name, factory, size, channels in specs]


# -- the raw side ------------------------------------------------------------------------------


class Raw:
    """One untouched network and the preprocessing written out by hand."""

    def __init__(self, factory, size, channels, device, precision):
        self.net = factory().eval().to(device, memory_format=torch.channels_last)
        self.size, self.channels, self.device = size, channels, device
        mean, std = gray_stats(channels)
        self.mean = torch.tensor(mean, device=device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).reshape(1, -1, 1, 1)
        self.autocast = (torch.autocast(device.type, dtype=PRECISIONS[precision])
                         if precision != "fp32" else contextlib.nullcontext())

    def __call__(self, batch):
        pixels = torch.from_numpy(batch)
        if self.device.type == "cuda":
            pixels = pixels.pin_memory()
        pixels = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        pixels = torch.nn.functional.interpolate(pixels, size=self.size, mode="bilinear",
                                                 antialias=True, align_corners=False)
        if self.channels == 1:   # BT.601 luma, as skmll's gray experts see it
            red, green, blue = pixels.split(1, dim=1)
            pixels = green + 0.299 * (red - green) + 0.114 * (blue - green)
        pixels = ((pixels - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with self.autocast:
            return self.net(pixels).float().cpu().numpy()


def raw_pass(raws, batches, device):
    """Every raw network on every batch; fp32 as skmll runs it (TF32 off on CUDA)."""
    with torch.inference_mode(), precision_context(device, "fp32"):
        return [np.concatenate([raw(batch) for batch in batches]) for raw in raws]


# -- timing ------------------------------------------------------------------------------------


def timed(function, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def world(n_nodes, per_node, image_size=64, seed=0):
    """An SDAG of ``n_nodes`` leaves under a root, each with ``per_node`` uint8 RGB images."""
    rng = np.random.default_rng(seed)
    leaves = [f"kind{i}" for i in range(n_nodes)]
    images = {leaf: rng.integers(0, 256, (per_node, image_size, image_size, 3), dtype=np.uint8)
              for leaf in leaves}
    sdag = SemanticDAG(["root", *leaves], edges=[("root", leaf) for leaf in leaves],
                       data=images)
    return sdag, leaves, np.concatenate(list(images.values()))


def check_same_function(raws, experts, images, precision, device):
    tolerance = 1e-3 if precision == "fp32" else 0.1
    for mine, expert in zip(raw_pass(raws, [images], device), experts):
        np.testing.assert_allclose(mine, expert.logits(images / np.float32(255)),
                                   rtol=tolerance, atol=tolerance,
                                   err_msg=f"raw {expert.name} != adapter")


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    specs = network_specs(args.quick)
    experts = make_experts(specs, device, args.precision, args.batch_size)
    raws = [Raw(factory, size, channels, device, args.precision)
            for _, factory, size, channels in specs]
    sdag, leaves, images = world(args.nodes, args.per_node)
    check_same_function(raws, experts, images[:8], args.precision, device)
    batches = [images[i:i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    hub = ModelHub(experts)

    def label():
        ModelLabeler(sdag, batch_size=args.batch_size, cache_dir=False, verbose=0,
                     device=device).fit(hub)

    labeler = ModelLabeler(sdag, batch_size=args.batch_size, cache_dir=False, verbose=0,
                           device=device).fit(hub)
    clf = MLLZeroShotClassifier(leaves, labeler, k=len(experts), nodes=leaves, cache_dir=False,
                                batch_size=args.batch_size, device=device).fit()
    served = {name for entries in clf.experts_.values() for name, _, _ in entries}
    served_raws = [raw for raw, expert in zip(raws, experts) if expert.name in served]
    two = images[:2] / np.float32(255)
    runs = {"labelling": (label, lambda: raw_pass(raws, batches, device)),
            "FLOP count": (lambda: [count_gflops(e, two) for e in experts], lambda: None),
            "predict": (lambda: clf.predict_proba(images),
                        lambda: raw_pass(served_raws, batches, device))}
    for mine, raw in runs.values():   # warm-up: cuDNN plans, allocator, first-call costs
        mine(), raw()
    times = {(name, side): [] for name in runs for side in ("skmll", "raw")}
    for _ in range(args.repeats):
        for name, (mine, raw) in runs.items():
            times[name, "skmll"].append(timed(mine, device))
            times[name, "raw"].append(timed(raw, device))
    median = {key: float(np.median(values)) for key, values in times.items()}
    median["labelling - FLOP count", "skmll"] = (median["labelling", "skmll"]
                                                 - median["FLOP count", "skmll"])
    median["labelling - FLOP count", "raw"] = median["labelling", "raw"]
    n_images = len(images)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({where}), precision {args.precision}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; {n_images} images 64x64 uint8, "
          f"batch {args.batch_size}; "
          f"experts: {', '.join(e.name for e in experts)} ({len(served)} serve predict); "
          f"median of {args.repeats} interleaved runs, wall seconds")
    print(f"{'':<23} {'skmll s':>8} {'raw s':>8} {'skmll img/s':>12} {'raw img/s':>10} "
          f"{'ratio':>6}")
    print(f"{'FLOP count (once/fit)':<23} {median['FLOP count', 'skmll']:>8.3f}")
    ratios = {}
    for name in ("labelling", "labelling - FLOP count", "predict"):
        forwards = n_images * (len(served) if name == "predict" else len(experts))
        mine, raw = median[name, "skmll"], median[name, "raw"]
        ratios[name] = raw / mine
        print(f"{name:<23} {mine:>8.3f} {raw:>8.3f} {forwards / mine:>12,.0f} "
              f"{forwards / raw:>10,.0f} {ratios[name]:>6.3f}")
    return ratios


def main(argv=None):
    start = time.perf_counter()
    ratios = run(parse_args(argv))
    print(f"total {time.perf_counter() - start:.0f} s")
    return ratios


if __name__ == "__main__":
    main()
