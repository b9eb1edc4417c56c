"""Benchmark labelling: throughput against raw forward passes, and peak memory vs SDAG size.

1. Throughput. A few small CNN experts (seeded weights, 28x28 inputs, ImageNet
   normalisation) label an SDAG of ``--nodes`` nodes x ``--per-node`` 32x32 uint8 images held
   in memory. The raw side is what a user would write without skmll, on its own copies of the
   networks taken before any :class:`TorchExpert` wraps them (the adapter converts its module
   to channels-last in place, which must not reach the raw side): uint8 batch -> float tensor
   -> resize -> normalise -> module, under ``torch.inference_mode``, once with every network
   and input in plain NCHW and once with both converted to channels-last. The adapters run too
   (``expert.logits`` on float batches decoded beforehand). The raw outputs are checked against
   the adapters' before any timing, so both sides compute the same function.
   ``ratio = raw time / labelling time`` (1.0: labelling adds nothing; the goal is >= 0.9), in
   this process's CPU time, which is steadier than wall time on a shared machine. Each timing
   is the median of ``--repeats`` interleaved runs.
2. Peak memory. The SDAG is written as PNG files (so images stream from disk) at two sizes,
   x1 and x``--memory-scale`` nodes, and each is labelled in a fresh subprocess that reports
   its RSS before ``fit``, the RSS peak during ``fit`` (Linux VmHWM, reset before ``fit``) and
   the tracemalloc peak. Streaming means the peaks must not grow with size.

Usage::

    python benchmarks/bench_labelling.py [--nodes 40] [--per-node 50] [--repeats 5]
                                         [--memory-scale 10] [--threads 1] [--profile]
                                         [--device cpu] [--skip-memory]
"""

import argparse
import copy
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from skmll.hub import ModelHub, TorchExpert
from skmll.labelling import ModelLabeler
from skmll.semantic_graph import SemanticDAG

IMAGE_SIZE = 32          # the stored images
INPUT_SIZE = (28, 28)    # what the networks take
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH_SIZE = 64
HEADS = (10, 20, 100, 1000)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--per-node", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-scale", type=int, default=10)
    parser.add_argument("--memory-experts", type=int, default=2,
                        help="experts used in the memory runs (the first ones)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: stable timings on a shared machine)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of one labelling run")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the throughput runs (the memory runs use the CPU)")
    parser.add_argument("--skip-memory", action="store_true", help="skip part 2")
    parser.add_argument("--memory-child", metavar="FOLDER",
                        help=argparse.SUPPRESS)  # internal: one memory measurement
    return parser.parse_args()


def make_networks(heads=HEADS):
    """Small CNNs with seeded weights; the heads differ so the output sizes vary."""
    networks = []
    for seed, n_outputs in enumerate(heads):
        torch.manual_seed(seed)
        networks.append(torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, n_outputs)))
    return networks


def make_experts(networks, device="cpu"):
    """Wrap the networks; TorchExpert moves and converts each one in place."""
    return [TorchExpert(net, name=f"cnn-{net[-1].out_features}", input_size=INPUT_SIZE,
                        mean=MEAN, std=STD, batch_size=BATCH_SIZE, device=device)
            for net in networks]


def raw_networks(networks, memory_format, device):
    """Copies of the networks, untouched by skmll, in eval mode and in ``memory_format``."""
    copies = [copy.deepcopy(net).eval().to(device, memory_format=memory_format)
              for net in networks]
    for net in copies:  # the layout really is the one named
        if not all(p.is_contiguous(memory_format=memory_format) for p in net.parameters()
                   if p.dim() == 4):
            raise RuntimeError(f"raw network is not in {memory_format}")
    return copies


def tree(n_nodes):
    """Node ids and edges of a two-level tree: a root, ~sqrt(n) groups, leaves under them."""
    n_groups = max(1, int(np.sqrt(n_nodes)))
    groups = [f"group{g}" for g in range(n_groups)]
    leaves = [f"leaf{i}" for i in range(n_nodes - n_groups - 1)]
    edges = [("root", g) for g in groups] + [(groups[i % n_groups], leaf)
                                             for i, leaf in enumerate(leaves)]
    return ["root"] + groups + leaves, edges


def random_images(n_nodes, per_node, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (per_node, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            for _ in range(n_nodes)]


def array_sdag(n_nodes, per_node):
    """Every node but the root carries ``per_node`` images, held in memory.

    Returns the SDAG and all its images, uint8 ``(n, H, W, 3)``, in node (= labelling) order.
    """
    nodes, edges = tree(n_nodes)
    arrays = random_images(len(nodes) - 1, per_node)
    sdag = SemanticDAG(nodes, edges=edges, data=dict(zip(nodes[1:], arrays)))
    return sdag, np.concatenate(arrays)


def write_png_nodes(folder, n_nodes, per_node):
    """Write the images of an ``n_nodes`` tree as PNG files; return the file lists per node."""
    from PIL import Image

    nodes, edges = tree(n_nodes)
    data = {}
    for i, node in enumerate(nodes[1:]):
        images = random_images(1, per_node, seed=i)[0]
        paths = [folder / f"{node}-{j}.png" for j in range(per_node)]
        for image, path in zip(images, paths):
            Image.fromarray(image).save(path)
        data[node] = [str(p) for p in paths]
    (folder / "sdag.json").write_text(json.dumps({"nodes": nodes, "edges": edges, "data": data}))


# -- throughput -------------------------------------------------------------------------------


def raw_forward(networks, batches, memory_format, device):
    """What one would write by hand: uint8 batch -> float tensor -> resize -> normalise -> module.

    ``permute(...).float()`` keeps the NHWC bytes, i.e. a channels-last tensor; ``.contiguous()``
    puts it in ``memory_format``, the layout of ``networks``. Returns the last batch's outputs.
    """
    mean = torch.tensor(MEAN, device=device).reshape(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).reshape(1, 3, 1, 1)
    with torch.inference_mode():
        for net in networks:
            for batch in batches:
                tensor = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255)
                tensor = torch.nn.functional.interpolate(tensor, size=INPUT_SIZE, mode="bilinear",
                                                         antialias=True, align_corners=False)
                out = net(((tensor - mean) / std).contiguous(memory_format=memory_format))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return out


def adapter_logits(experts, batches):
    for expert in experts:
        for batch in batches:
            expert.logits(batch)


def labelling(experts, sdag):
    ModelLabeler(sdag, batch_size=BATCH_SIZE, cache_dir=False, verbose=0).fit(ModelHub(experts))


def timed(function, *args):
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def check_same_function(raw, experts, batch, memory_format, device):
    """Raise unless the raw networks give the adapters' logits on ``batch`` (uint8)."""
    for net, expert in zip(raw, experts):
        mine = raw_forward([net], [batch], memory_format, device).float().cpu().numpy()
        np.testing.assert_allclose(mine, expert.logits(batch / np.float32(255)), rtol=1e-4,
                                   atol=1e-4, err_msg=f"raw {expert.name} != adapter")


def throughput(args):
    device = torch.device(args.device)
    networks = make_networks()
    layouts = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}
    raw = {name: raw_networks(networks, layout, device) for name, layout in layouts.items()}
    experts = make_experts(networks, device)
    sdag, images = array_sdag(args.nodes, args.per_node)
    canonical = [batch for batch, _ in sdag.iter_batches(BATCH_SIZE)]  # float32 in [0, 1]
    n_images = int(sdag.n_images.sum())
    print(f"throughput: {len(experts)} CNN experts (heads {', '.join(map(str, HEADS))}), "
          f"{sdag.n_nodes} nodes, {n_images} images {IMAGE_SIZE}x{IMAGE_SIZE} uint8 resized to "
          f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]}, batch {BATCH_SIZE}, device {device}, torch threads "
          f"{torch.get_num_threads()}; adapters chose "
          f"{'channels-last' if all(e.channels_last for e in experts) else 'mixed/NCHW'}")
    uint8 = [images[start:start + BATCH_SIZE] for start in range(0, len(images), BATCH_SIZE)]
    for name, layout in layouts.items():
        check_same_function(raw[name], experts, uint8[0], layout, device)
    runs = {f"raw, {name}": (raw_forward, raw[name], uint8, layout, device)
            for name, layout in layouts.items()}
    runs |= {"adapter logits": (adapter_logits, experts, canonical),
             "labelling (fit)": (labelling, experts, sdag)}
    labelling(experts, sdag)  # warm-up: first-call costs of torch
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so load changes hit all alike
        for name, (function, *call_args) in runs.items():
            times[name].append(timed(function, *call_args))
    median = {name: np.median(values, axis=0) for name, values in times.items()}
    forwards = n_images * len(experts)
    print(f"median of {args.repeats} runs; ratios are raw CPU time / this CPU time")
    print(f"{'':<19} {'wall s':>7} {'cpu s':>7} {'images/cpu s':>13} {'vs NCHW raw':>12} "
          f"{'vs channels-last raw':>21}")
    raw_nchw, raw_channels_last = median["raw, NCHW"][1], median["raw, channels-last"][1]
    for name, (wall, cpu) in median.items():
        print(f"{name:<19} {wall:>7.3f} {cpu:>7.3f} {forwards / cpu:>13,.0f} "
              f"{raw_nchw / cpu:>12.3f} {raw_channels_last / cpu:>21.3f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(labelling, experts, sdag)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


# -- memory -----------------------------------------------------------------------------------


def status_mib(field):
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def memory_child(folder, n_experts):
    """Label a PNG-backed SDAG; print RSS before ``fit`` and peaks during it as JSON.

    The RSS peak (VmHWM) is reset just before ``fit`` (``/proc/self/clear_refs``), so it is the
    peak of labelling alone; tracemalloc gives the peak of Python and numpy allocations.
    """
    spec = json.loads((Path(folder) / "sdag.json").read_text())
    sdag = SemanticDAG(spec["nodes"], edges=[tuple(e) for e in spec["edges"]], data=spec["data"])
    experts = make_experts(make_networks()[:n_experts])
    warm = next(sdag.iter_batches(BATCH_SIZE))[0]
    for expert in experts:  # first forward passes allocate torch's working buffers
        expert.logits(warm)
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS peak
    before = status_mib("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    ModelLabeler(sdag, batch_size=BATCH_SIZE, cache_dir=False, verbose=0).fit(ModelHub(experts))
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps({"nodes": sdag.n_nodes, "images": int(sdag.n_images.sum()),
                      "before_mib": before, "peak_mib": status_mib("VmHWM"),
                      "traced_peak_mib": traced_peak, "seconds": seconds}))


def memory(args):
    sizes = [args.nodes, args.nodes * args.memory_scale]
    print(f"\npeak memory: PNG-backed SDAGs, {args.per_node} images per node, "
          f"{args.memory_experts} experts, each size in a fresh process")
    print(f"{'nodes':>6} {'images':>7} {'write s':>8} {'label s':>8} {'RSS before fit':>15} "
          f"{'peak RSS in fit':>16} {'peak traced':>12}")
    results = []
    for n_nodes in sizes:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_png_nodes(Path(folder), n_nodes, args.per_node)
            write_seconds = time.perf_counter() - start
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", folder,
                 "--memory-experts", str(args.memory_experts), "--threads", str(args.threads)],
                check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        results.append(result)
        print(f"{result['nodes']:>6} {result['images']:>7} {write_seconds:>8.1f} "
              f"{result['seconds']:>8.1f} {result['before_mib']:>11.0f} MiB "
              f"{result['peak_mib']:>12.0f} MiB {result['traced_peak_mib']:>8.1f} MiB")
    large, small = results[1], results[0]
    print(f"x{args.memory_scale} / x1: peak RSS {large['peak_mib'] / small['peak_mib']:.3f}, "
          f"RSS growth during fit {large['peak_mib'] - large['before_mib']:.0f} MiB vs "
          f"{small['peak_mib'] - small['before_mib']:.0f} MiB, "
          f"peak traced {large['traced_peak_mib'] / small['traced_peak_mib']:.3f}")


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_experts)
        return
    start = time.perf_counter()
    throughput(args)
    if not args.skip_memory:
        memory(args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
