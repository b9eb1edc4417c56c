"""Zoo scale: search 1,000 to 100,000 synthetic experts stored in a skmll.zoo.ZooStore.

The node set is the paper's SDAG size: the ImageNet-21K-P classes (timm's
``imagenet21k_miil_synsets.txt``) and their WordNet ancestors. Experts are drawn from a small
generative model whose parameters are fitted to the offline world's 59 expert labels
(:func:`measure_structure`, written to ``structure.md``): most are specialists with 2-19
heads, a few have 1,000 heads and fewer 21,843. They are generated one at a time and appended
to the zoo in segments. Per zoo size the benchmark reports build time, disk, and, for random
tasks of 10, 100 and 1,000 classes, search time and peak RSS (each search in a fresh process
that only opens the zoo), the experts read and solved, and agreement with exhaustive selection
(``select_experts`` over every expert's stored rows on the task's nodes) and with today's code
(``select_experts`` over full labels held in memory) where those fit.

Usage::

    python benchmarks/bench_zoo_scale.py [--sizes 1000 10000 100000] [--tasks 3]
        [--root /work/zoo-bench] [--out results/zoo] [--quick]
    python benchmarks/bench_zoo_scale.py --measure ZOO CLASSES SEED search --profile SECONDS
"""

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from skmll.selection import TaskMatch, select_experts
from skmll.zoo import ZooStore, build_zoo_sharded, responsiveness, search_zoo

CLASS_COUNTS = (10, 100, 1000)
SPECIALIST_MAX_HEADS = 100
"""An expert with fewer heads than this is a specialist (the world's widest has 19)."""
WIDE_HEADS = (1000, 21843)
"""Generalists' head counts: ImageNet-1K and ImageNet-21K classifiers."""
WIDE_SHARES = (0.005, 0.00005)
"""Share of each generalist width in a zoo (at least one of each); see structure.md."""
ANCESTOR_DECAY = 0.5
"""A head's lift on a node's ancestor, per edge up (Eq. 2 mixes a leaf into its ancestors)."""
SEGMENT_EXPERTS = 5000
HALF_MAX = 0.5
EXHAUSTIVE_TIMEOUT_S = 600
TODAY_MAX_BYTES = 3 * 2**30
"""Today's code (dense labels in memory) is run only when its labels take at most this."""
ROOT_DEFAULT = "/work/zoo-bench"


# -- structure of real labels ------------------------------------------------------------------

def world_labels():
    """The offline world's expert labels on its nodes with data, as (n_nodes, n_heads) rows."""
    from skmll import ModelHub, ModelLabeler, SemanticDAG
    from skmll.datasets import build_world_hub, make_world

    world = make_world(fashion_test=2000)
    sdag = SemanticDAG.from_wordnet(world.reference)
    experts = build_world_hub(world, size="large", verbose=0)
    labeler = ModelLabeler(sdag, verbose=0).fit(ModelHub(list(experts)))
    has = np.asarray(sdag.has_data_below, bool)
    return {name: np.asarray(label.probabilities, float)[has]
            for name, label in labeler.labels_.items()}


def heads_responding(rows):
    """Per head, the nodes it responds to: where its probability rises above its median by at
    least half its largest rise (the head's half-maximum width; 0 for a head flat everywhere).

    Examples
    --------
    >>> heads_responding(np.array([[0.9, 0.1], [0.2, 0.8], [0.25, 0.75], [0.5, 0.5]]))
    array([1, 2])
    """
    P = np.asarray(rows, float)
    rise = P - np.median(P, axis=0)
    peak = rise.max(axis=0)
    return ((rise >= HALF_MAX * peak) & (peak > 0)).sum(axis=0)


def expert_statistics(rows):
    """Heads, responsiveness, peakedness and response width of one expert's rows."""
    P = np.asarray(rows, float)
    P = P / P.sum(axis=1, keepdims=True)
    d, top = responsiveness(P), P.max(axis=1)
    return {"heads": P.shape[1], "d_median": np.median(d), "d_p90": np.quantile(d, 0.9),
            "d_max": d.max(), "top_median": np.median(top), "top_p90": np.quantile(top, 0.9),
            "nodes_per_head": np.median(heads_responding(P)), "n_nodes": P.shape[0]}


def measure_structure(labels):
    """Per-expert statistics of ``labels`` and their medians over specialists and generalists.

    Returns
    -------
    per_expert : dict of str to dict
    groups : dict of {"specialist", "generalist"} to dict
        ``share``, ``heads`` (every member's head count) and each statistic's median.
    """
    per_expert = {name: expert_statistics(rows) for name, rows in labels.items()}
    groups = {}
    for group, members in _by_group(per_expert).items():
        stats = [per_expert[name] for name in members]
        summary = {key: float(np.median([s[key] for s in stats]))
                   for key in stats[0] if key != "heads"}
        groups[group] = dict(summary, share=len(members) / len(per_expert), n=len(members),
                             heads=sorted(s["heads"] for s in stats))
    return per_expert, groups


def _by_group(per_expert):
    groups = {"specialist": [], "generalist": []}
    for name, stats in per_expert.items():
        wide = stats["heads"] >= SPECIALIST_MAX_HEADS
        groups["generalist" if wide else "specialist"].append(name)
    return {group: names for group, names in groups.items() if names}


# -- the generative model ----------------------------------------------------------------------

class NodeGraph:
    """Nodes and, per node, its ancestors with their distance up (compressed rows)."""

    def __init__(self, node_ids, parents, image_nodes):
        self.node_ids = list(node_ids)
        self.image_nodes = np.asarray(image_nodes, dtype=np.int64)
        pointer, ancestors, distances = [0], [], []
        for node in range(len(self.node_ids)):
            found = _ancestor_distances(node, parents)
            ancestors.extend(found)
            distances.extend(found.values())
            pointer.append(len(ancestors))
        self.pointer = np.array(pointer, dtype=np.int64)
        self.ancestors = np.array(ancestors, dtype=np.int64)
        self.distances = np.array(distances, dtype=np.int64)

    @property
    def n_nodes(self):
        return len(self.node_ids)

    def lifted(self, nodes):
        """(positions into ``nodes``, ancestor, distance) of every ancestor of every node."""
        counts = self.pointer[nodes + 1] - self.pointer[nodes]
        owner = np.repeat(np.arange(len(nodes)), counts)
        first = np.repeat(self.pointer[nodes] - np.cumsum(counts) + counts, counts)
        at = first + np.arange(counts.sum())
        return owner, self.ancestors[at], self.distances[at]


def _ancestor_distances(node, parents):
    distance, frontier, step = {}, [node], 0
    while frontier:
        step += 1
        frontier = [p for n in frontier for p in parents[n] if p not in distance and p != node]
        distance.update({p: step for p in frontier if p not in distance})
    return distance


def imagenet21k_graph():
    """ImageNet-21K-P's classes and their WordNet (instance) hypernym ancestors."""
    import timm

    from skmll.semantic_graph import load_wordnet, synset_for
    from skmll.semantic_graph._sdag import _hypernym_closure, _hypernyms

    path = Path(timm.__file__).parent / "data" / "_info" / "imagenet21k_miil_synsets.txt"
    wordnet = load_wordnet()
    classes = [synset_for(wnid, wordnet) for wnid in path.read_text().split()]
    found = _hypernym_closure(classes)
    names = sorted(found)
    index = {name: i for i, name in enumerate(names)}
    parents = [[index[p.name()] for p in _hypernyms(found[name])] for name in names]
    return NodeGraph(names, parents, sorted(index[s.name()] for s in classes))


def flat_graph(n_nodes):
    """``n_nodes`` nodes without edges, every one with images (for fitting and tests)."""
    return NodeGraph([f"node{i}" for i in range(n_nodes)], [[] for _ in range(n_nodes)],
                     np.arange(n_nodes))


def expert_rows(rng, n_heads, model, graph):
    """One synthetic expert's (n_nodes, n_heads) float32 probability rows.

    Logits are a per-head bias (``model["bias"]``: the head an expert favours on everything)
    plus per-node noise (``model["noise"]``); each head responds, with strength
    ``model["strength"]``, to ``1 + Poisson(model["extra_nodes"])`` nodes with images, and
    lifts their ancestors by ``ANCESTOR_DECAY`` per edge up; rows are the softmax.

    Examples
    --------
    >>> model = {"bias": 1.0, "noise": 0.5, "strength": 6.0, "extra_nodes": 1.0}
    >>> rows = expert_rows(np.random.default_rng(0), 3, model, flat_graph(20))
    >>> rows.shape, bool(np.allclose(rows.sum(axis=1), 1, atol=1e-5))
    ((20, 3), True)
    """
    logits = rng.standard_normal((graph.n_nodes, n_heads), dtype=np.float32)
    logits *= np.float32(model["noise"])
    logits += (model["bias"] * rng.standard_normal(n_heads)).astype(np.float32)
    per_head = 1 + rng.poisson(model["extra_nodes"], n_heads)
    heads = np.repeat(np.arange(n_heads), per_head)
    nodes = rng.choice(graph.image_nodes, heads.size)
    strength = model["strength"] * rng.uniform(0.75, 1.25, heads.size)
    owner, ancestors, distance = graph.lifted(nodes)
    np.add.at(logits, (np.concatenate([nodes, ancestors]), np.concatenate([heads, heads[owner]])),
              np.concatenate([strength, strength[owner] * ANCESTOR_DECAY ** distance]))
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def fit_model(group, seed=0):
    """Noise, bias and strength that give a group's measured medians (a grid search).

    The bias and noise are chosen on nodes no head responds to, to match the median top-1
    mass and the median ``d``; the strength then matches the median of each expert's largest
    ``d`` (its most responsive node). Heads respond to ``max(0, nodes_per_head - 1)`` extra
    nodes on average (the measured median half-maximum width).
    """
    heads = int(np.median(group["heads"]))
    quiet = flat_graph(int(group["n_nodes"]))     # as many nodes as were measured
    best = None
    for bias in np.arange(0.0, 4.01, 0.25):
        for noise in np.arange(0.1, 3.01, 0.1):
            model = {"bias": bias, "noise": noise, "strength": 0.0, "extra_nodes": 0.0}
            stats = expert_statistics(expert_rows(np.random.default_rng(seed), heads, model,
                                                  quiet))
            error = (stats["top_median"] - group["top_median"]) ** 2 + \
                (stats["d_median"] - group["d_median"]) ** 2
            if best is None or error < best[0]:
                best = (error, bias, noise)
    model = {"bias": best[1], "noise": best[2], "extra_nodes": max(0.0, group["nodes_per_head"]
                                                                   - 1)}
    errors = []
    for strength in np.arange(0.0, 12.01, 0.25):
        rows = expert_rows(np.random.default_rng(seed), heads, dict(model, strength=strength),
                           quiet)
        errors.append((abs(expert_statistics(rows)["d_max"] - group["d_max"]), strength))
    model["strength"] = min(errors)[1]
    return model


def zoo_plan(n_experts, groups, seed):
    """Every expert's head count, in zoo order (generalists spread through the zoo)."""
    rng = np.random.default_rng(seed)
    heads = rng.choice(groups["specialist"]["heads"], n_experts)
    start = 0
    for width, share in zip(WIDE_HEADS, WIDE_SHARES):
        count = max(1, round(share * n_experts))
        heads[start:start + count] = width
        start += count
    return rng.permutation(heads)


def generate_experts(plan, indices, models, graph, seed):
    """(name, rows) of the experts at ``indices`` of ``plan``: one at a time, seeded each."""
    for i in indices:
        rng = np.random.default_rng([seed, i])
        group = "specialist" if plan[i] < SPECIALIST_MAX_HEADS else "generalist"
        yield f"synthetic-{i:06d}", expert_rows(rng, int(plan[i]), models[group], graph)


class ExpertBatch:
    """The experts of one segment, generated when iterated (a picklable task for a worker)."""

    def __init__(self, plan, indices, models, graph, seed):
        self.plan, self.indices, self.models, self.graph, self.seed = \
            plan, indices, models, graph, seed

    def __iter__(self):
        return generate_experts(self.plan, self.indices, self.models, self.graph, self.seed)


# -- build -------------------------------------------------------------------------------------

def build_zoo(folder, n_experts, models, groups, graph, seed, n_jobs):
    """Write the zoo (replacing an older one) and return its build record.

    Segments are encoded by ``n_jobs`` worker processes (``build_zoo_sharded``); the
    21,843-head experts are appended last, by this process, one at a time, as each takes
    gigabytes to encode.
    """
    shutil.rmtree(folder, ignore_errors=True)
    plan = zoo_plan(n_experts, groups, seed)
    widest = plan >= WIDE_HEADS[-1]
    rest = np.flatnonzero(~widest)
    start = time.perf_counter()
    zoo = ZooStore.create(folder, graph.node_ids)
    build_zoo_sharded(zoo, [ExpertBatch(plan, rest[first:first + SEGMENT_EXPERTS], models,
                                        graph, seed)
                            for first in range(0, len(rest), SEGMENT_EXPERTS)], n_jobs=n_jobs)
    print(f"  {zoo.n_experts} experts in {time.perf_counter() - start:.0f} s", flush=True)
    zoo.append(ExpertBatch(plan, np.flatnonzero(widest), models, graph, seed))
    seconds = time.perf_counter() - start
    disk = int(subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    return {"n_experts": n_experts, "build_s": seconds, "disk_bytes": disk, "jobs": n_jobs,
            "heads": np.bincount(np.searchsorted([SPECIALIST_MAX_HEADS, *WIDE_HEADS], plan,
                                                 side="right")).tolist(),
            "image_nodes": graph.image_nodes.tolist(), "seed": seed}


# -- one measurement, in its own process -------------------------------------------------------

def random_task(node_ids, image_nodes, n_classes, seed):
    """A task of ``n_classes`` distinct image nodes (TaskMatch over the zoo's node rows)."""
    rng = np.random.default_rng([n_classes, seed])
    nodes = np.sort(rng.choice(image_nodes, n_classes, replace=False))
    return TaskMatch([f"class-{n}" for n in nodes], nodes, np.ones(n_classes),
                     [node_ids[n] for n in nodes])


def measure(folder, n_classes, seed, mode, k):
    """Open the zoo, select for one task by ``mode``; time, peak RSS and the selection."""
    record = json.loads(Path(f"{folder}.json").read_text())
    zoo = ZooStore(folder)
    task = random_task(zoo.node_ids, record["image_nodes"], n_classes, seed)
    opened = _peak_mib()
    start = time.perf_counter()
    result = {"search": _search, "exhaustive": _exhaustive, "today": _today}[mode](zoo, task, k)
    selection = result.pop("selection")
    return dict(result, seconds=time.perf_counter() - start - result.pop("load_s", 0.0),
                rss_open_mib=opened, peak_mib=_peak_mib(),
                solved=int(np.isfinite(selection.losses).any(axis=1).sum()),
                picks={c: [name for name, _, _ in selection.experts[c]] for c in task.classes})


def profile_search(folder, n_classes, seed, k, seconds):
    """cProfile of one search, stopped after ``seconds`` if it runs that long: where time
    goes (printed, 25 lines by cumulative time)."""
    import cProfile
    import pstats
    import signal

    record = json.loads(Path(f"{folder}.json").read_text())
    zoo = ZooStore(folder)
    task = random_task(zoo.node_ids, record["image_nodes"], n_classes, seed)

    def stop(signum, frame):
        raise TimeoutError
    signal.signal(signal.SIGALRM, stop)
    profile = cProfile.Profile()
    start = time.perf_counter()
    signal.alarm(seconds)
    try:
        profile.runcall(search_zoo, zoo, task, k=k)
        outcome = "finished"
    except TimeoutError:
        outcome = "stopped"
    signal.alarm(0)
    print(f"{outcome} after {time.perf_counter() - start:.1f} s; peak {_peak_mib():.0f} MiB")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


def _peak_mib():
    """This process's peak resident memory (VmHWM). Not getrusage's maxrss: Linux keeps that
    across fork and exec, so a child of the builder would report the builder's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _search(zoo, task, k):
    selection = search_zoo(zoo, task, k=k)
    return {"selection": selection, "read": selection.n_read}


def _exhaustive(zoo, task, k):
    rows = np.array([zoo.node_index[n] for n in task.node_ids])
    problems = zoo.problems(rows, np.arange(zoo.n_experts))
    labels = {name: SimpleNamespace(probabilities=P.T) for name, P in zip(zoo.names, problems)}
    C = len(task.classes)
    local = TaskMatch(task.classes, np.arange(C), np.ones(C), task.node_ids)
    return {"selection": select_experts(local, labels, k=k), "read": zoo.n_experts}


def _today(zoo, task, k):
    """Today's code: every expert's full label held in memory (float32, as ModelLabel)."""
    start = time.perf_counter()
    labels = dense_labels(zoo)
    load = time.perf_counter() - start
    return {"selection": select_experts(task, labels, k=k), "read": zoo.n_experts,
            "load_s": load}


def dense_labels(zoo, block=1024):
    """{name: (n_nodes, n_heads) float32 rows}: the stored labels, decoded a node block at a
    time."""
    everyone = np.arange(zoo.n_experts)
    rows = [np.empty((len(zoo.node_ids), h), np.float32) for h in zoo.n_heads]
    for first in range(0, len(zoo.node_ids), block):
        part = np.arange(first, min(first + block, len(zoo.node_ids)))
        for full, P in zip(rows, zoo.problems(part, everyone)):
            full[part] = P.T
    return {name: SimpleNamespace(probabilities=P) for name, P in zip(zoo.names, rows)}


def run_measurement(folder, n_classes, seed, mode, k, timeout):
    """:func:`measure` in a fresh process; None when it ran past ``timeout`` or failed."""
    command = [sys.executable, __file__, "--measure", str(folder), str(n_classes), str(seed),
               mode, "--k", str(k)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"over {timeout} s"}
    if done.returncode:
        return {"status": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), status="ok")


# -- per zoo size ------------------------------------------------------------------------------

def fits(zoo, mode, n_classes):
    """Why ``mode`` is not run on this zoo (its estimated memory), or None when it fits."""
    columns = int(zoo.n_heads.sum())
    if mode == "today":
        need, limit = 4 * columns * len(zoo.node_ids), TODAY_MAX_BYTES
    elif mode == "exhaustive":
        # decoded float64 columns, and about as much again for CHCO's batched work
        need, limit = 2 * 8 * columns * n_classes, 2 * TODAY_MAX_BYTES
    else:
        return None
    return None if need <= limit else f"needs ~{need / 2**30:.1f} GiB"


def benchmark_size(folder, class_counts, n_tasks, k, timeout, modes):
    """Every task's measurements on one zoo: list of dicts (one per task and mode)."""
    zoo = ZooStore(folder)
    rows, too_slow = [], {}
    for n_classes in class_counts:
        for seed in range(n_tasks):
            found = {}
            for mode in modes:
                slow = too_slow.get(mode)
                reason = fits(zoo, mode, n_classes) or (slow[1] if slow and slow[0] <= n_classes
                                                        else None)
                result = {"status": f"skipped: {reason}"} if reason else run_measurement(
                    folder, n_classes, seed, mode, k, timeout)
                if result["status"].startswith("over"):
                    # another task as large, or larger, would take as long
                    too_slow[mode] = (n_classes, f"{result['status']} at {n_classes} classes")
                found[mode] = result
                agree = ""
                if mode != "search" and "picks" in result and "picks" in found["search"]:
                    agree = result["picks"] == found["search"]["picks"]
                rows.append({"experts": zoo.n_experts, "classes": n_classes, "task": seed,
                             "mode": mode, "status": result["status"],
                             "seconds": result.get("seconds"), "peak_mib": result.get("peak_mib"),
                             "rss_open_mib": result.get("rss_open_mib"),
                             "read": result.get("read"), "solved": result.get("solved"),
                             "same_as_search": agree})
                print(_row_text(rows[-1]), flush=True)
    return rows


def _row_text(row):
    seconds = "" if row["seconds"] is None else f"{row['seconds']:.2f} s"
    peak = "" if row["peak_mib"] is None else f"peak {row['peak_mib']:.0f} MiB"
    return (f"  {row['experts']:>6} experts {row['classes']:>4} classes task {row['task']} "
            f"{row['mode']:<10} {row['status']:<8} {seconds:>10} {peak:>16} "
            f"read {row['read']} solved {row['solved']} same {row['same_as_search']}")


def _fmt(value, digits=2):
    if value is None or value == "":
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_results(out):
    """results/zoo/scale.md and scale.csv from every size's stored record."""
    records = sorted((json.loads(p.read_text()) for p in out.glob("scale-*.json")),
                     key=lambda r: r["build"]["n_experts"])
    rows = [row for record in records for row in record["rows"]]
    if rows:
        with open(out / "scale.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    lines = ["# Zoo scale: search over synthetic zoos on the ImageNet-21K-P node set", "",
             "Written by `benchmarks/bench_zoo_scale.py`; every row of scale.csv. The experts' "
             "structure is in structure.md. Searches (k=2) run in a fresh process that only "
             "opens the zoo and searches; 'peak' is that process's peak RSS (VmHWM), 'open' "
             "its peak once the zoo is opened (Python, numpy, h5py and skmll imported). "
             "'exhaustive' is "
             "select_experts on every expert's stored rows on the task's nodes; 'today' is "
             "select_experts on full labels held in memory (float32, every node), whose load "
             "time is left out of its seconds. 'same' compares each class's picked experts "
             "with search's.", ""]
    for record in records:
        build = record["build"]
        n = build["n_experts"]
        lines += [f"## {n:,} experts", "", f"Command: `{record['command']}`", "",
                  f"{record['n_nodes']:,} nodes; experts by heads (<{SPECIALIST_MAX_HEADS}, "
                  f"{SPECIALIST_MAX_HEADS}-999, 1,000-21,842, 21,843 and more): {build['heads']};"
                  f" build (generate + encode + index + write, {build.get('jobs', 1)} process(es))"
                  f" {build['build_s']:.0f} s ({1000 * build['build_s'] / n:.1f} ms per expert); "
                  f"disk {build['disk_bytes'] / 2**30:.2f} GiB "
                  f"({build['disk_bytes'] / n / 2**10:.0f} KiB per expert, "
                  f"{build['disk_bytes'] / n * 100_000 / 2**30:.1f} GiB for 100,000 such).", "",
                  *summary_lines(record["rows"]), "",
                  "| classes | task | mode | status | seconds | peak MiB | open MiB | experts read"
                  " | solved | same |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['classes']} | {r['task']} | {r['mode']} | {r['status']} | "
                  f"{_fmt(r['seconds'])} | {_fmt(r['peak_mib'], 0)} | {_fmt(r['rss_open_mib'], 0)}"
                  f" | {_fmt(r['read'])} | {_fmt(r['solved'])} | {_fmt(r['same_as_search'])} |"
                  for r in record["rows"]]
        lines.append("")
    (out / "scale.md").write_text("\n".join(lines))


def summary_lines(rows):
    """Per task size: median seconds and largest peak of each mode, search's share of experts
    read and solved, and how many tasks gave the same picks as search (also printed)."""
    lines = ["| classes | mode | tasks done | median s | / search's | max peak MiB | median read "
             "| median solved | same as search |", "|---|---|---|---|---|---|---|---|---|"]
    for n_classes in sorted({r["classes"] for r in rows}):
        for mode in ("search", "exhaustive", "today"):
            mine = [r for r in rows if r["classes"] == n_classes and r["mode"] == mode]
            done = [r for r in mine if r["status"] == "ok"]
            if not mine:
                continue
            if mode == "search":
                search_s = [r["seconds"] for r in done]
            ratio = f"{np.median([r['seconds'] for r in done]) / np.median(search_s):.2f}" \
                if done and search_s else ""
            same = [r["same_as_search"] for r in done if r["same_as_search"] != ""]
            lines.append(
                f"| {n_classes} | {mode} | {len(done)}/{len(mine)} | "
                f"{_median(done, 'seconds')} | {ratio} | {_median(done, 'peak_mib', max)} | "
                f"{_median(done, 'read')} | {_median(done, 'solved')} | "
                f"{f'{sum(same)}/{len(same)}' if same else ''} |")
            print(lines[-1])
    return lines


def _median(rows, key, how=np.median):
    values = [r[key] for r in rows if r[key] is not None]
    return f"{how(values):.1f}" if values else ""


def write_structure(out, per_expert, groups, models, graph):
    lines = ["# Structure of real labels and the synthetic zoo's model", "",
             "Measured on the offline world's expert labels (`make_world(fashion_test=2000)`, "
             "`build_world_hub(size='large')`), on its nodes with data below. Per expert: heads; "
             "d = responsiveness per node (skmll.zoo.responsiveness); top-1 = largest head "
             "probability of a node's row; nodes/head = median over heads of the nodes where a "
             "head rises above its median by at least half its largest rise (half-maximum "
             f"width). Specialist: fewer than {SPECIALIST_MAX_HEADS} heads.", "",
             "| expert | heads | d median | d p90 | d max | top-1 median | top-1 p90 | "
             "nodes/head |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s['heads']} | {s['d_median']:.3f} | {s['d_p90']:.3f} | "
              f"{s['d_max']:.3f} | {s['top_median']:.2f} | {s['top_p90']:.2f} | "
              f"{s['nodes_per_head']:.1f} |" for name, s in per_expert.items()]
    lines += ["", "Medians per group (the fitted model's targets):", "",
              "| group | experts | share | heads | d median | d p90 | d max | top-1 median | "
              "nodes/head |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {g} | {s['n']} | {s['share']:.3f} | {min(s['heads'])}-{max(s['heads'])} | "
              f"{s['d_median']:.3f} | {s['d_p90']:.3f} | {s['d_max']:.3f} | "
              f"{s['top_median']:.2f} | {s['nodes_per_head']:.1f} |" for g, s in groups.items()]
    lines += ["", "Fitted model (see `expert_rows`: logits = bias per head + noise per node + "
              "strength at each head's nodes, ancestors lifted by "
              f"{ANCESTOR_DECAY} per edge up; softmax):", ""]
    lines += [f"- {group}: bias {m['bias']:.2f} and noise {m['noise']:.2f} match the median "
              f"top-1 and the median d; strength {m['strength']:.2f} matches the median of "
              f"each expert's largest d; extra nodes per head Poisson({m['extra_nodes']:.1f}) "
              "from the median nodes/head minus one (the world's count includes ancestors, "
              "which the model lifts as well: it errs towards more responsive nodes)."
              for group, m in models.items()]
    lines += ["", "The model's experts on the zoo's node set (medians over a few drawn):", "",
              "| group | heads | d median | d p90 | d max | top-1 median | nodes/head |",
              "|---|---|---|---|---|---|---|"]
    for group, model in models.items():
        heads = int(np.median(groups[group]["heads"]))
        drawn = [expert_statistics(expert_rows(np.random.default_rng(i), heads, model, graph))
                 for i in range(5)]
        lines.append(f"| {group} | {heads} | " + " | ".join(
            f"{np.median([d[key] for d in drawn]):.3f}" for key in
            ("d_median", "d_p90", "d_max", "top_median", "nodes_per_head")) + " |")
    lines += [f"- Specialists' heads: drawn from the world's specialists' head counts "
              f"{groups['specialist']['heads']}.",
              f"- Generalists: {WIDE_HEADS[0]:,}-head experts are {WIDE_SHARES[0]:.2%} of a zoo "
              f"and {WIDE_HEADS[1]:,}-head ones {WIDE_SHARES[1]:.3%} (at least one of each), both "
              "drawn with the generalist model. The world has "
              f"{groups.get('generalist', {}).get('share', 0):.1%} generalists; the zoos use "
              "fewer because storing one costs ~1.2 s (1,000 heads) and ~30 s and ~10 GB "
              "(21,843 heads) in ZooStore.append on this machine, which would put a "
              "100,000-expert build at several hours.",
              f"- Node set: {graph.n_nodes:,} nodes = {len(graph.image_nodes):,} ImageNet-21K-P "
              "classes (timm's imagenet21k_miil_synsets.txt) and their WordNet ancestors; "
              "heads respond to classes, tasks draw their classes from them.", ""]
    (out / "structure.md").write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000],
                        help="zoo sizes (none: write structure.md only)")
    parser.add_argument("--tasks", type=int, default=3, help="random tasks per class count")
    parser.add_argument("--root", default=ROOT_DEFAULT, help="where the zoo folders are kept")
    parser.add_argument("--out", default="results/zoo")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes encoding segments")
    parser.add_argument("--reuse", action="store_true", help="keep a zoo built before")
    parser.add_argument("--modes", nargs="+", default=["search", "exhaustive", "today"])
    parser.add_argument("--classes", type=int, nargs="+", default=list(CLASS_COUNTS),
                        help="task sizes")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true",
                        help="tiny zoos on a flat node set (a smoke test)")
    parser.add_argument("--profile", type=int, metavar="SECONDS",
                        help="with --measure ZOO CLASSES SEED search: profile that search")
    parser.add_argument("--measure", nargs=4, metavar=("ZOO", "CLASSES", "SEED", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure and args.profile:
        folder, n_classes, seed, _ = args.measure
        profile_search(folder, int(n_classes), int(seed), args.k, args.profile)
        return None
    if args.measure:
        folder, n_classes, seed, mode = args.measure
        print(json.dumps(measure(folder, int(n_classes), int(seed), mode, args.k)))
        return None
    if "search" not in args.modes:
        parser.error("--modes must include search (the others are compared with it)")
    if args.quick:
        args.sizes, args.classes, args.tasks = [30, 90], [4, 12], 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_expert, groups = measure_structure(quick_labels() if args.quick else world_labels())
    models = {group: fit_model(stats, args.seed) for group, stats in groups.items()}
    graph = flat_graph(300) if args.quick else imagenet21k_graph()
    print(f"nodes {graph.n_nodes} ({len(graph.image_nodes)} with images); models {models}")
    write_structure(out, per_expert, groups, models, graph)
    command = "python benchmarks/bench_zoo_scale.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    summary = {}
    for size in args.sizes:
        folder = Path(args.root) / f"zoo-{size}"
        record_path = Path(f"{folder}.json")
        if not (args.reuse and record_path.is_file()):
            print(f"building {size} experts in {folder}", flush=True)
            build = build_zoo(folder, size, models, groups, graph, args.seed, args.jobs)
            record_path.write_text(json.dumps(build))
        build = json.loads(record_path.read_text())
        print(f"{size} experts: build {build['build_s']:.0f} s, disk "
              f"{build['disk_bytes'] / size / 2**10:.0f} KiB per expert", flush=True)
        rows = benchmark_size(folder, args.classes, args.tasks, args.k, args.timeout, args.modes)
        (out / f"scale-{size}.json").write_text(json.dumps(
            {"build": {key: v for key, v in build.items() if key != "image_nodes"},
             "rows": rows, "command": command, "n_nodes": graph.n_nodes}))
        write_results(out)
        summary[size] = rows
    return summary


def quick_labels():
    """Stand-in labels for --quick: three small experts and one wide one on 12 nodes."""
    rng = np.random.default_rng(0)
    return {f"e{h}": rng.dirichlet(np.full(h, 0.3), size=12) for h in (2, 3, 5, 120)}


if __name__ == "__main__":
    main()
