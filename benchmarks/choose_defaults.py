"""Choose skmll's defaults on development data only: the sweep the defaults are read from.

Runs every combination of delta (ModelLabeler), beta, label_statistic, reuse and name_bonus
(MLLZeroShotClassifier) at k = 2 on the development tasks (bench_tables.DEVELOPMENT_TASKS) and
the development images of skmll.datasets.held_out_split; the held-out tasks and images that
bench_tables.py reports are never read. Prints and writes (to --out) the full table ranked by mean
Acc(a), each parameter varied alone around today's defaults, and the combination the sweep picks
next to today's defaults. Usage: python benchmarks/choose_defaults.py [--out results]
"""

import argparse
import csv
import inspect
import itertools
import time
from pathlib import Path

import numpy as np
from bench_tables import DEVELOPMENT_TASKS, Task, evaluate, load_benchmark, markdown

from skmll import MLLZeroShotClassifier, ModelLabeler

GRID = {"delta": (0.0, 0.5, 1.0), "beta": (None, 1.0, 0.5),
        "label_statistic": ("probability", "logit"), "reuse": ("profile", "entropy"),
        "name_bonus": (0.0, 0.25)}


def current_defaults():
    """Today's default of each swept parameter, read from the estimators' signatures."""
    defaults = {}
    for estimator in (ModelLabeler, MLLZeroShotClassifier):
        parameters = inspect.signature(estimator).parameters
        defaults.update({name: parameters[name].default for name in GRID if name in parameters})
    return defaults


def sweep(bench, tasks, cache_dir):
    """Acc(a) of every grid combination on every development task."""
    rows = []
    for delta in GRID["delta"]:
        labeler = ModelLabeler(bench.sdag, delta=delta, cache_dir=cache_dir, verbose=0).fit(
            bench.hub)
        for beta, statistic, reuse, bonus in itertools.product(
                GRID["beta"], GRID["label_statistic"], GRID["reuse"], GRID["name_bonus"]):
            accs = [evaluate(MLLZeroShotClassifier(
                t.names, labeler, k=2, beta=beta, label_statistic=statistic, reuse=reuse,
                name_bonus=bonus, general_model=bench.conse, cache_dir=cache_dir), t)["acc_all"]
                for t in tasks]
            rows.append({"delta": delta, "beta": beta, "label_statistic": statistic,
                         "reuse": reuse, "name_bonus": bonus,
                         **{t.name: a for t, a in zip(tasks, accs)}, "mean": float(np.mean(accs))})
        print(f"delta = {delta} done", flush=True)
    return rows


def same_setting(row, setting):
    return all(row[name] == value for name, value in setting.items())


def one_at_a_time(rows, defaults):
    """Mean Acc(a) of each grid value with every other parameter at today's default."""
    table = []
    for name, values in GRID.items():
        for value in values:
            row = next(r for r in rows if same_setting(r, {**defaults, name: value}))
            table.append({"parameter": name, "value": shown(value), "mean": row["mean"],
                          "default": "yes" if value == defaults[name] else ""})
    return table


def shown(value):
    return "none" if value is None else value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-fashion", type=int, default=2000,
                        help="Fashion-MNIST development images (as for bench_tables.py)")
    parser.add_argument("--out", default="results")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    begin = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The held-out size does not change the development images; it is fixed to build the split.
    bench = load_benchmark(dev_fashion=args.dev_fashion, fashion_test=2000,
                           cache_dir=args.cache_dir)
    tasks = [Task(bench.development, name, classes)
             for name, classes in DEVELOPMENT_TASKS.items()]
    defaults = current_defaults()
    rows = sorted(sweep(bench, tasks, args.cache_dir), key=lambda r: -r["mean"])
    best = rows[0]
    at_defaults = next(r for r in rows if same_setting(r, defaults))
    picked = {name: best[name] for name in GRID}
    columns = list(GRID) + [t.name for t in tasks] + ["mean"]
    with open(out / "development.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({**r, "beta": shown(r["beta"])} for r in rows)
    report = [
        "# Choosing the defaults on development data\n",
        f"Command: `python benchmarks/choose_defaults.py --dev-fashion {args.dev_fashion}`. "
        "Development images per task: " + ", ".join(f"{t.name} {len(t.truth)}" for t in tasks)
        + "; k = 2, ConSE patch. Held-out tasks and images are never read.\n",
        f"Picked (best mean Acc(a)): {picked}, mean {best['mean']:.3f}.",
        f"Today's defaults: {defaults}, mean {at_defaults['mean']:.3f} "
        f"(rank {rows.index(at_defaults) + 1} of {len(rows)}).",
        "\n## Each parameter alone, the others at today's defaults (mean Acc(a))\n",
        markdown(one_at_a_time(rows, defaults), ["parameter", "value", "mean", "default"]),
        "\n## Every combination, best first (Acc(a))\n",
        markdown([{**r, "beta": shown(r["beta"])} for r in rows], columns),
        f"\nTotal time {time.perf_counter() - begin:.0f} s."]
    (out / "development.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
