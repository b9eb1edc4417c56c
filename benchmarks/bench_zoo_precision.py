"""The zoo's stored precision, measured: what float16 rows and a wide expert's top entries plus a
floor (:func:`skmll.zoo.stored_probabilities`) change in selection and in Table 1.

1. Top-k agreement on random tasks (seeded node draws, 2/5/10/20 classes, k = 1, 2, 3): the
   experts :func:`skmll.selection.select_experts` picks from full-precision labels against those
   it picks from the same labels as a zoo stores them, for ``max_dense`` (the widest expert kept
   whole; wider ones keep that many entries per node and a floor) 16, 32, 64, 128 and every
   head (float16 alone), beside the disk a zoo of each takes per expert. Two label sets: the
   offline world's large hub (59 experts, three of 1,000 heads) and a synthetic zoo of wide
   experts (up to 2,000 heads) over 100 nodes (``--parts world synthetic``). These draws, and
   the world's development tasks on its development images (MLL defaults, Acc(a) per
   ``max_dense``), are the development data that ``max_dense`` is chosen on
   (``--parts development``).
2. Table 1's MLL rows on the offline world's held-out tasks and images, full-precision labels
   and stored ones side by side in the same run: a copy of the labeler whose labels' rows are
   the stored ones (scores, the logit statistic, are left as they are: a zoo does not store
   them, so the logit configuration is not compared), and selection on stored rows with the
   full labels' profiles at predict time (``--parts table1``).

Writes ``precision.md`` to --out (default results/zoo; ``precision-<parts>.md`` for some parts).
Selection on the world's three 1,000-head experts is the slow part (about 10 s a task of 20
classes on 2 cores): the parts run apart, in parallel processes.
Usage: python benchmarks/bench_zoo_precision.py [--quick] [--parts ...] [--out results/zoo]
"""

import argparse
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from bench_tables import (
    DEVELOPMENT_TASKS,
    Task,
    evaluate,
    load_benchmark,
    markdown,
    reported_tasks,
    table1_methods,
)
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skmll import MLLZeroShotClassifier
from skmll.selection import TaskMatch, select_experts
from skmll.zoo import ZooStore, stored_probabilities

CLASS_COUNTS = (2, 5, 10, 20)
KS = (1, 2, 3)
ALL_HEADS = None   # a max_dense that keeps every head: float16 rounding alone (the default)
COMPACT = 64       # the compact width whose re-ranking recall and agreement are reported
MAX_DENSE_CHOICES = (16, 32, 64, 128, ALL_HEADS)
SYNTHETIC_HEADS = (3, 10, 40, 100, 300, 1000, 2000)   # drawn uniformly per synthetic expert
DEVELOPMENT_CHOICES = (16, 64, ALL_HEADS)   # each a full MLL run on the development tasks
TABLE1_MLL = ("MLL", "MLL, paper's reuse (Eq. 12-13)")


def stored_rows(probabilities, max_dense):
    """``probabilities`` as a zoo keeps them; rows of nodes without data (NaN) stay NaN."""
    rows = np.array(probabilities, dtype=np.float64)
    labelled = ~np.isnan(rows[:, 0])
    width = rows.shape[1] if max_dense is ALL_HEADS else max_dense
    rows[labelled] = stored_probabilities(rows[labelled], width)
    return rows


def stored_labels(labels, max_dense):
    """What selection reads of each label (its rows), once stored."""
    return {name: SimpleNamespace(probabilities=stored_rows(label.probabilities, max_dense))
            for name, label in labels.items()}


def stored_labeler(labeler, max_dense):
    """A copy of a fitted labeler whose labels' probability rows are the stored ones."""
    copy = clone(labeler)   # keeps the fitted labels (ModelLabeler.__sklearn_clone__)
    copy.labels_ = {name: replace(label, probabilities=stored_rows(label.probabilities,
                                                                   max_dense))
                    for name, label in labeler.labels_.items()}
    return copy


def random_node_tasks(rng, node_rows, node_ids, n_classes, n_tasks):
    """``n_tasks`` tasks of ``n_classes`` distinct nodes drawn from ``node_rows``."""
    tasks = []
    for _ in range(n_tasks):
        rows = rng.choice(node_rows, size=n_classes, replace=False)
        tasks.append(TaskMatch([f"class-{r}" for r in rows], rows, np.ones(n_classes),
                               [node_ids[r] for r in rows]))
    return tasks


def picks(selection, task):
    """Per class of ``task``: its selected expert names and their losses, best first."""
    return [([name for name, _, _ in selection.experts[c]],
             np.array([loss for _, loss, _ in selection.experts[c]])) for c in task.classes]


def agreement(full_picks, stored_picks):
    """Per (task, class) pair: identical lists, same sets, and |loss difference| rank by rank
    (inf where one list is longer)."""
    identical, same_set, loss_gap = [], [], []
    for (names, losses), (stored_names, stored_losses) in zip(full_picks, stored_picks):
        identical.append(names == stored_names)
        same_set.append(set(names) == set(stored_names))
        loss_gap.append(np.abs(losses - stored_losses).max(initial=0.0)
                        if len(losses) == len(stored_losses) else np.inf)
    return np.array(identical), np.array(same_set), np.array(loss_gap)


def measure_agreement(labels, node_ids, n_pairs, seed):
    """Agreement rows per max_dense choice, pooled and per (classes, k); same draws for all.

    Each class count gets about ``n_pairs`` (task, class) pairs. Selection runs once at the
    largest k: the top j <= k of its ranking by loss are the top j a selection at k = j keeps
    (up to the solver's tolerance on near-ties), so smaller k read its prefixes.
    """
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(~np.isnan(next(iter(labels.values())).probabilities[:, 0]))
    draws = {C: random_node_tasks(rng, labelled, node_ids, C, -(-n_pairs // C))
             for C in CLASS_COUNTS}
    full = {C: [picks(select_experts(t, labels, k=max(KS)), t) for t in tasks]
            for C, tasks in draws.items()}
    pooled, detail = [], []
    for max_dense in MAX_DENSE_CHOICES:
        stored = stored_labels(labels, max_dense)
        parts = {}
        for C, tasks in draws.items():
            stored_picks = [picks(select_experts(t, stored, k=max(KS)), t) for t in tasks]
            for k in KS:
                parts[C, k] = [np.concatenate(v) for v in zip(*(
                    agreement(top(f, k), top(s, k)) for f, s in zip(full[C], stored_picks)))]
        pooled.append(agreement_row({"max_dense": _width(max_dense)},
                                    [np.concatenate(v) for v in zip(*parts.values())]))
        detail += [agreement_row({"max_dense": _width(max_dense), "classes": C, "k": k}, part)
                   for (C, k), part in parts.items()]
    return pooled, detail


def rerank_recall(labels, node_ids, n_pairs, seed, depth=4):
    """How often each class's full-precision top k lies within its top ``depth * k`` on stored
    rows (max_dense = COMPACT): then re-ranking that many contenders per class on
    full-precision labels gives the full-precision selection exactly. Same draws as
    :func:`measure_agreement`."""
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(~np.isnan(next(iter(labels.values())).probabilities[:, 0]))
    stored = stored_labels(labels, COMPACT)
    rows = []
    for C in CLASS_COUNTS:
        tasks = random_node_tasks(rng, labelled, node_ids, C, -(-n_pairs // C))
        full = [picks(select_experts(t, labels, k=max(KS)), t) for t in tasks]
        wide = [picks(select_experts(t, stored, k=depth * max(KS)), t) for t in tasks]
        for k in KS:
            within = [set(names[:k]) <= set(contenders[:depth * k])
                      for f, w in zip(full, wide) for (names, _), (contenders, _) in zip(f, w)]
            rows.append({"classes": C, "k": k, "pairs": len(within),
                         f"full top k within stored top {depth}k": float(np.mean(within))})
    return rows


def top(task_picks, k):
    """The first ``k`` picks of every class."""
    return [(names[:k], losses[:k]) for names, losses in task_picks]


def agreement_row(key, part):
    identical, same_set, loss_gap = part
    return {**key, "pairs": len(identical), "identical": float(identical.mean()),
            "same set": float(same_set.mean()), "max abs dL": f"{loss_gap.max():.1e}"}


def _width(max_dense):
    return "every head" if max_dense is ALL_HEADS else max_dense


def disk_per_expert(rows, node_ids, max_dense, wide_from):
    """Bytes per expert of a zoo of ``rows`` (name -> (n_nodes, n_heads)): the narrow experts'
    segment and the wide ones' (> ``wide_from`` heads), each written by ZooStore.append."""
    widest = max(r.shape[1] for r in rows.values())
    with tempfile.TemporaryDirectory() as root:
        zoo = ZooStore.create(root, node_ids,
                              max_dense=widest if max_dense is ALL_HEADS else max_dense)
        for wide in (False, True):
            zoo.append([(name, r) for name, r in rows.items() if (r.shape[1] > wide_from) == wide])
        sizes = [s.path.stat().st_size / s.n_experts for s in zoo.segments]
        zoo.close()
    return sizes


def synthetic_rows(rng, n_nodes, n_heads):
    """Rows like a labelled expert's: every head stands out on a few nodes, over noise, so a
    wide expert has many informative heads per node and its tail carries real mass."""
    logits = rng.normal(0, 1, (n_nodes, n_heads))
    for head in range(n_heads):
        nodes = rng.choice(n_nodes, size=rng.integers(1, 6), replace=False)
        logits[nodes, head] += rng.uniform(1, 6, size=len(nodes))
    rows = np.exp(logits - logits.max(axis=1, keepdims=True))
    return rows / rows.sum(axis=1, keepdims=True)


def world_rows(labeler):
    labelled = ~np.isnan(next(iter(labeler.labels_.values())).probabilities[:, 0])
    return {n: label.probabilities[labelled] for n, label in labeler.labels_.items()}, labelled


def world_agreement(bench, args, report):
    """Top-k agreement and disk per expert on the offline world's labels."""
    rows, labelled = world_rows(bench.labeler)
    agreement_report({"offline world, large hub": (
        bench.labeler.labels_, list(bench.sdag.node_ids), rows,
        list(np.array(bench.sdag.node_ids)[labelled]))}, args, report)


def rerank(bench, args, report):
    """Re-ranking recall (:func:`rerank_recall`) on the world's labels and the synthetic zoo."""
    rng = np.random.default_rng(args.seed)
    node_ids = [f"synthetic-{i}.n.01" for i in range(args.synthetic_nodes)]
    heads = rng.choice(SYNTHETIC_HEADS, size=args.synthetic_experts)
    synthetic = {f"wide-{i}": SimpleNamespace(probabilities=synthetic_rows(
        rng, len(node_ids), int(h))) for i, h in enumerate(heads)}
    for source, labels, ids in (("offline world", bench.labeler.labels_,
                                 list(bench.sdag.node_ids)),
                                ("synthetic", synthetic, node_ids)):
        rows = rerank_recall(labels, ids, args.pairs, args.seed)
        report.append(f"\n## Re-ranking recall, {source}, max_dense = {COMPACT}\n")
        report.append(markdown(rows, list(rows[0])))


def synthetic_agreement(bench, args, report):
    """Top-k agreement and disk per expert on a synthetic zoo of wide experts."""
    rng = np.random.default_rng(args.seed)
    node_ids = [f"synthetic-{i}.n.01" for i in range(args.synthetic_nodes)]
    heads = rng.choice(SYNTHETIC_HEADS, size=args.synthetic_experts)
    rows = {f"wide-{i}": synthetic_rows(rng, len(node_ids), int(h)) for i, h in enumerate(heads)}
    agreement_report({f"synthetic, {len(rows)} experts, {len(node_ids)} nodes": (
        {n: SimpleNamespace(probabilities=r) for n, r in rows.items()}, node_ids, rows,
        node_ids)}, args, report)


def agreement_report(sources, args, report):
    """Per source (name -> (labels, node ids, labelled rows, their node ids)): agreement."""
    wide_from = max(c for c in MAX_DENSE_CHOICES if c is not ALL_HEADS)
    for source, (labels, ids, rows, zoo_ids) in sources.items():
        widths = sorted(r.shape[1] for r in rows.values())
        pooled, detail = measure_agreement(labels, ids, args.pairs, args.seed)
        for row, max_dense in zip(pooled, MAX_DENSE_CHOICES):
            narrow, wide = disk_per_expert(rows, zoo_ids, max_dense, wide_from)
            row.update({"bytes/expert, <= 128 heads": round(narrow),
                        "bytes/expert, > 128 heads": round(wide)})
        report.append(f"\n## Top-k agreement, {source}\n\n{len(rows)} experts (heads: min "
                      f"{widths[0]}, median {widths[len(widths) // 2]}, max {widths[-1]}; "
                      f"{sum(w > COMPACT for w in widths)} with more than "
                      f"{COMPACT}) on {len(zoo_ids)} nodes; random tasks of "
                      f"{CLASS_COUNTS} classes, about {args.pairs} (task, class) pairs per "
                      f"class count, each at k = {KS} (k < {max(KS)}: the top k of the "
                      f"k = {max(KS)} selection); pairs counts every k. Identical: the same "
                      "experts in the same order; max abs dL: the largest difference of the "
                      "selected losses rank by rank. Disk: a ZooStore "
                      "segment (gzip) per expert, narrow and wide experts apart.\n")
        report.append(markdown(pooled, list(pooled[0])))
        chosen = [r for r in detail if r["max_dense"] == COMPACT]
        report.append(f"\nmax_dense = {COMPACT} by class count and k:\n")
        report.append(markdown(chosen, list(chosen[0])))
        print(f"agreement on {source} done ({time.perf_counter() - args.begin:.0f} s)",
              flush=True)


def development_accuracy(bench, args, report):
    """Mean Acc(a) of the MLL defaults on the development tasks and images per max_dense."""
    tasks = [Task(bench.development, name, classes)
             for name, classes in DEVELOPMENT_TASKS.items()]
    rows = []
    for max_dense in ("full",) + DEVELOPMENT_CHOICES:
        labeler = bench.labeler if max_dense == "full" else stored_labeler(bench.labeler,
                                                                           max_dense)
        methods = table1_methods(argparse.Namespace(**{**vars(bench), "labeler": labeler}),
                                 args.cache_dir)
        accs = [evaluate(methods["MLL"](t), t)["acc_all"] for t in tasks]
        rows.append({"labels": "full precision" if max_dense == "full" else
                     f"stored, max_dense {_width(max_dense)}",
                     **{t.name: a for t, a in zip(tasks, accs)}, "mean": float(np.mean(accs))})
    report.append("\n## Development tasks on development images (MLL defaults, Acc(a))\n")
    report.append(markdown(rows, list(rows[0])))
    print(f"development tasks done ({time.perf_counter() - args.begin:.0f} s)", flush=True)


class StoredSearchMLL(MLLZeroShotClassifier):
    """MLL whose experts are selected on stored rows (``search_labels``), as search over a zoo
    selects them, while predict reads the full-precision labels of the labeler (a label
    directory keeps them) for the few experts selected."""

    def _select(self, task, labels):
        return super()._select(task, {name: self.search_labels[name] for name in labels})


def same_experts(clf, other):
    """Whether two fitted classifiers serve every class with the same experts, in order."""
    def names(fitted, c):
        return [name for name, _, _ in fitted.experts_[c]]

    return all(names(clf, c) == names(other, c) for c in clf.experts_)


def part2(bench, args, report):
    """Table 1's MLL rows on the held-out tasks, full and stored labels side by side."""
    tasks = [Task(bench.held_out, name, classes)
             for name, classes in reported_tasks(quick=args.quick).items()
             if not args.table1_tasks or name in args.table1_tasks]
    stored = argparse.Namespace(**{**vars(bench), "labeler": stored_labeler(bench.labeler,
                                                                            args.max_dense)})
    full_methods = table1_methods(bench, args.cache_dir)
    stored_methods = table1_methods(stored, args.cache_dir)
    for method in TABLE1_MLL[:2 if args.paper_reuse else 1]:
        rows = []
        for task in tasks:
            full, mine = full_methods[method](task), stored_methods[method](task)
            scores = [evaluate(full, task), evaluate(mine, task)]
            row = {"task": task.name, "images": len(task.truth),
                   "Acc(a) full": scores[0]["acc_all"], "Acc(a) stored": scores[1]["acc_all"],
                   "abs dAcc(a)": abs(scores[0]["acc_all"] - scores[1]["acc_all"]),
                   "same experts": "yes" if same_experts(full, mine) else "no"}
            if mine.reuse == "profile":   # profiles are read from the labels at predict time
                search_only = StoredSearchMLL(task.names, bench.labeler, k=2,
                                              general_model=bench.conse,
                                              cache_dir=args.cache_dir, reuse=mine.reuse)
                search_only.search_labels = stored.labeler.labels_
                accuracy = evaluate(search_only, task)["acc_all"]
                row.update({"Acc(a) stored search, full profiles": accuracy,
                            "abs dAcc(a) search only": abs(scores[0]["acc_all"] - accuracy)})
            rows.append(row)
            print(row, flush=True)
        means = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]
                 if key not in ("task", "images", "same experts")}
        same = sum(r["same experts"] == "yes" for r in rows)
        rows.append({"task": "mean", "images": "", **means, "same experts": f"{same}/{len(rows)}"})
        largest = max(r["abs dAcc(a)"] for r in rows[:-1])
        report.append(f"\n## Table 1, {method}: held-out tasks and images, k = 2, stored labels "
                      f"at max_dense = {_width(args.max_dense)} beside full precision\n")
        report.append(markdown(rows, list(rows[0])))
        report.append(f"\nmax abs dAcc(a) over tasks: {largest:.4f}; abs d mean Acc(a): "
                      f"{abs(means['Acc(a) full'] - means['Acc(a) stored']):.4f}.")
        print(f"table 1, {method} done ({time.perf_counter() - args.begin:.0f} s)", flush=True)


PARTS = {"world": world_agreement, "synthetic": synthetic_agreement, "rerank": rerank,
         "development": development_accuracy, "table1": part2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="default: results/zoo (--quick: a temp "
                                                    "folder)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="what to measure (each writes precision-<part>.md when not all)")
    parser.add_argument("--pairs", type=int, default=40,
                        help="(task, class) pairs per class count in the agreement draws")
    parser.add_argument("--synthetic-experts", type=int, default=30)
    parser.add_argument("--synthetic-nodes", type=int, default=100)
    parser.add_argument("--paper-reuse", action="store_true",
                        help="Table 1 also for the paper's reuse (Eq. 12-13)")
    parser.add_argument("--table1-tasks", nargs="+", default=None,
                        help="Table 1 on these held-out tasks only (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-dense", type=int, default=ALL_HEADS,
                        help="Table 1's stored labels: widest expert kept whole (default: every "
                             "head, as a zoo stores them)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 pairs per class "
                        "count, 20 synthetic experts, 200 held-out Fashion images, the quick "
                        "task list")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.synthetic_experts = 10, 20
    out = Path(args.out or (Path(tempfile.gettempdir()) / "skmll-zoo-precision-quick"
                            if args.quick else "results/zoo"))
    out.mkdir(parents=True, exist_ok=True)
    args.begin = time.perf_counter()
    bench = load_benchmark(dev_fashion=2000, fashion_test=200 if args.quick else 2000,
                           cache_dir=args.cache_dir, hub_size="large")
    command = ("python benchmarks/bench_zoo_precision.py" + (" --quick" if args.quick else
               f" --pairs {args.pairs} --synthetic-experts {args.synthetic_experts} "
               f"--synthetic-nodes {args.synthetic_nodes} --seed {args.seed}")
               + (" --paper-reuse" if args.paper_reuse else "")
               + (" --table1-tasks " + " ".join(args.table1_tasks) if args.table1_tasks else "")
               + ("" if args.max_dense is ALL_HEADS else f" --max-dense {args.max_dense}")
               + ("" if args.parts == list(PARTS) else " --parts " + " ".join(args.parts)))
    report = [f"Command: `{command}`.\n"]
    with warnings.catch_warnings():
        # The 1,000-head experts' tight CHCO solves sometimes stop early (ConvergenceWarning):
        # their losses are then within about 1e-4 of the optimum, at full and stored precision.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for part in args.parts:
            PARTS[part](bench, args, report)
    report.append(f"\nTotal time {time.perf_counter() - args.begin:.0f} s.")
    name = "precision" + ("" if args.parts == list(PARTS) else "-" + "-".join(args.parts)) \
        + ("" if args.max_dense is ALL_HEADS else f"-max-dense-{args.max_dense}")
    (out / f"{name}.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
