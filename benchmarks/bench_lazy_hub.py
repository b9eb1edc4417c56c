"""Lazy hubs: memory of labelling and of fit, and models built, for a hub file of 20 vs 200 experts.

Each expert is a file: an MLP (16 x 16 RGB input, 256 hidden units, 2-12 outputs, about 0.8 MB
of float32 weights) saved as safetensors and named in a hub file by a
``torch:bench_lazy_hub:mlp`` specification that declares ``n_outputs`` and ``fingerprint`` (the
file is written once with ``ModelHub.to_toml(declare_missing=True)``). The SDAG has ten WordNet
clothing nodes with 20 random images each, held in memory.

Each measurement runs in a fresh process per hub size, which reads the hub file and reports:

- labelling: ``ModelLabeler.fit`` into an empty label directory; the RSS peak during ``fit``
  (Linux VmHWM, reset just before) above the RSS before it, the tracemalloc peak, the number
  of models built and how many are still built afterwards (goal: the peak does not grow with
  the hub, none left built);
- fit: a labeler reading those labels, then ``MLLZeroShotClassifier.fit`` measured after a
  first fit has loaded the text encoder; its RSS and traced peaks, models built (goal 0);
- predict: models built by ``predict`` on 50 images against the experts selected (goal: the
  same set);
- for scale, the RSS growth of building every expert of the hub at once (what a hub of live
  models would hold).

Usage::

    python benchmarks/bench_lazy_hub.py [--small 20] [--large 200] [--threads 1]
"""

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.base import clone

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import LazyExpert

CLASSES = ["sandal", "sneaker", "boot", "bag", "coat", "dress", "shirt", "trousers", "pullover",
           "hat"]
SIDE, HIDDEN, PER_NODE = 16, 256, 20
FACTORY = "torch:bench_lazy_hub:mlp"   # this file, importable from its own folder

BUILT = []   # output size of every module this process built through the factory


def mlp(n_outputs, hidden=HIDDEN, pixels=3 * SIDE * SIDE):
    """The experts' architecture; the hub file names it, so it is counted when built."""
    BUILT.append(n_outputs)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(pixels, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, n_outputs))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=3, metavar=("PHASE", "HUB", "FOLDER"),
                        help=argparse.SUPPRESS)   # internal: one measurement
    return parser.parse_args()


def write_zoo(folder, n_experts):
    """Weights files and hub files for the first ``small`` and all ``large`` experts."""
    rng = np.random.default_rng(0)
    experts = []
    for i in range(n_experts):
        n_outputs = int(rng.integers(2, 13))
        torch.manual_seed(i)
        path = folder / "weights" / f"expert{i:04d}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_file({k: v.contiguous() for k, v in mlp(n_outputs).state_dict().items()}, path)
        experts.append(LazyExpert(FACTORY, weights=path, input_size=[SIDE, SIDE],
                                  factory_kwargs={"n_outputs": n_outputs}))
    return experts


def sdag():
    nodes = [f"{c}.n.01" for c in CLASSES]
    rng = np.random.default_rng(1)
    return SemanticDAG(["clothing.n.01", *nodes],
                       edges=[("clothing.n.01", n) for n in nodes],
                       texts={n: f"Name: {n.split('.')[0]}" for n in ["clothing.n.01", *nodes]},
                       data={n: rng.integers(0, 256, (PER_NODE, SIDE, SIDE, 3), dtype=np.uint8)
                             for n in nodes})


def status_mib(field):
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def measured(function):
    """Run ``function``; its result with RSS growth, traced peak (MiB) and models built."""
    factory = importlib.import_module("bench_lazy_hub")   # the module the hub file names
    built_before = len(factory.BUILT)
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS peak
    before = status_mib("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, {"rss_growth_mib": status_mib("VmHWM") - before, "traced_peak_mib": traced,
                    "built": len(factory.BUILT) - built_before, "seconds": seconds}


def child(phase, hub_path, folder):
    hub = ModelHub.from_toml(hub_path)
    graph = sdag()
    labels = Path(folder) / f"labels-{len(hub)}"
    report = {"experts": len(hub)}
    if phase == "label":
        _, report["label"] = measured(
            lambda: ModelLabeler(graph, cache_dir=labels, verbose=0).fit(hub))
        report["label"]["left_built"] = sum(e.is_loaded for e in hub)
    elif phase == "fit":
        labeler = ModelLabeler(graph, cache_dir=labels, verbose=0).fit(hub)
        warm = MLLZeroShotClassifier(CLASSES, labeler, k=2, cache_dir=Path(folder) / "text").fit()
        clf, report["fit"] = measured(lambda: clone(warm).fit())
        report["fit"]["labelling_forward_images"] = labeler.n_forward_images_
        images = np.random.default_rng(2).integers(0, 256, (50, SIDE, SIDE, 3), dtype=np.uint8)
        _, report["predict"] = measured(lambda: clf.predict(images))
        selected = {name for served in clf.experts_.values() for name, _, _ in served}
        report["predict"]["selected"] = len(selected)
        report["predict"]["built_are_selected"] = {e.name for e in hub if e.is_loaded} == selected
    else:   # "eager": every model built at once, as a hub of live models holds them
        _, report["eager"] = measured(lambda: [e.load() for e in hub])
    print(json.dumps(report))


def run_child(phase, hub_path, folder, threads):
    out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--child", phase,
                          str(hub_path), str(folder)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(*args.child)
        return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        experts = write_zoo(folder, args.large)
        hubs = {}
        for size in (args.small, args.large):
            hubs[size] = folder / f"hub{size}.toml"
            ModelHub(experts[:size]).to_toml(hubs[size], declare_missing=True)
        weights_mib = sum(p.stat().st_size for p in (folder / "weights").iterdir()) / 2**20
        print(f"{args.large} experts, {weights_mib:.0f} MiB of weights files; "
              f"setup {time.perf_counter() - start:.0f} s\n")
        rows = {size: {**run_child("label", hubs[size], folder, args.threads),
                       **run_child("fit", hubs[size], folder, args.threads),
                       **run_child("eager", hubs[size], folder, args.threads)}
                for size in (args.small, args.large)}
    print_table(rows, args.small, args.large)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


def print_table(rows, small, large):
    print(f"{'experts':>7} | {'label: RSS+':>11} {'traced':>7} {'built':>5} {'left':>4} "
          f"{'s':>5} | {'fit: RSS+':>9} {'traced':>7} {'built':>5} | {'predict built':>13} "
          f"{'selected':>8} {'same':>5} | {'all built: RSS+':>15}")
    for size in (small, large):
        r = rows[size]
        lab, fit, pred = r["label"], r["fit"], r["predict"]
        print(f"{size:>7} | {lab['rss_growth_mib']:>7.1f} MiB {lab['traced_peak_mib']:>7.2f} "
              f"{lab['built']:>5} {lab['left_built']:>4} {lab['seconds']:>5.1f} | "
              f"{fit['rss_growth_mib']:>5.1f} MiB {fit['traced_peak_mib']:>7.2f} "
              f"{fit['built']:>5} | {pred['built']:>13} {pred['selected']:>8} "
              f"{str(pred['built_are_selected']):>5} | {r['eager']['rss_growth_mib']:>11.1f} MiB")
    s, l = rows[small], rows[large]
    print(f"\nratios {large} / {small}: labelling peak RSS growth "
          f"{l['label']['rss_growth_mib'] / s['label']['rss_growth_mib']:.2f}, traced "
          f"{l['label']['traced_peak_mib'] / s['label']['traced_peak_mib']:.2f}; fit peak RSS "
          f"growth {l['fit']['rss_growth_mib'] / max(s['fit']['rss_growth_mib'], 0.1):.2f}, "
          f"traced {l['fit']['traced_peak_mib'] / s['fit']['traced_peak_mib']:.2f}; "
          f"all models built at once {l['eager']['rss_growth_mib'] / s['eager']['rss_growth_mib']:.2f}")


if __name__ == "__main__":
    main()
