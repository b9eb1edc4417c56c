"""The paper's experiments on the offline world: Table 1, Figure 3, Figure 4, Table 2, sensitivity.

Every method runs on the same cached expert outputs (skmll.hub.MemoizedExpert), so each expert
processes each test image once however many classifiers read it. Writes markdown tables, CSVs and
PNGs to --out. Usage: python benchmarks/bench_tables.py [--fashion-test 2000] [--quick]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from skmll import ConSE, MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.baselines import LEEPMLLClassifier, LogMEMLLClassifier, RandomMLLClassifier
from skmll.datasets import build_world_hub, make_world, supervised_oracle
from skmll.hub import MemoizedExpert, ModelHub, as_image_batch
from skmll.metrics import zero_shot_report

FOOTWEAR, GARMENTS = [5, 7, 9], [0, 1, 2, 3, 4, 6]
TASKS = {
    "footwear+bags": [5, 7, 9, 8],
    "fashion-10": list(range(10)),
    "digits": list(range(10, 20)),
    "garments+digits": GARMENTS + list(range(10, 20)),
    "coarse": None,  # footwear vs garment, built below
}


class Task:
    """Test images, true names and class names of one task (coarse groups several classes)."""

    def __init__(self, world, name):
        if name == "coarse":
            images, labels, _, _ = world.task(FOOTWEAR + GARMENTS)
            self.names = ["footwear", "garment"]
            self.truth = np.where(labels < len(FOOTWEAR), "footwear", "garment").astype(object)
            self.ids = [FOOTWEAR, GARMENTS]
        else:
            images, labels, self.names, _ = world.task(TASKS[name])
            self.truth = np.array(self.names, dtype=object)[labels]
            self.ids = TASKS[name]
        self.images = as_image_batch(images)
        self.raw = images
        self.name = name


def oracle_predictions(world, task):
    """Logistic regression on pixels trained with the task's labels (coarse: grouped)."""
    if task.name != "coarse":
        return np.array(task.names, dtype=object)[
            supervised_oracle(world, task.ids).predict(task.raw)]
    model = supervised_oracle(world, FOOTWEAR + GARMENTS)
    return np.where(model.predict(task.raw) < len(FOOTWEAR), "footwear", "garment").astype(object)


def evaluate(clf, task):
    predicted = clf.fit().predict(task.images)
    report = zero_shot_report(task.truth, predicted, clf.covered_classes_, classes=task.names)
    report["models"] = clf.n_models_used_
    return report


def markdown(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else
                                        str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fashion-test", type=int, default=2000)
    parser.add_argument("--out", default="results")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3, help="random orders / Random^MLL draws")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()

    world = make_world(fashion_test=args.fashion_test)
    hub = ModelHub([MemoizedExpert(e, cache_dir=args.cache_dir)
                    for e in build_world_hub(world, cache_dir=args.cache_dir, verbose=0)])
    sdag = SemanticDAG.from_wordnet(world.reference, cache_dir=args.cache_dir)
    labeler = ModelLabeler(sdag, cache_dir=args.cache_dir, verbose=0).fit(hub)
    conse = ConSE.from_imagenet(hub["efficientnet-lite0"])
    tasks = [Task(world, name) for name in TASKS]
    common = {"labeler": labeler, "cache_dir": args.cache_dir}
    report = [f"# Benchmarks on the offline world\n\nCommand: `python benchmarks/bench_tables.py "
              f"--fashion-test {args.fashion_test}`; test images per task: "
              + ", ".join(f"{t.name} {len(t.truth)}" for t in tasks) + ".\n"]

    # Table 1: every method at k = 2.
    methods = {
        "MLL": lambda t: MLLZeroShotClassifier(t.names, k=2, general_model=conse, **common),
        "MLL, paper's reuse (Eq. 12-13)": lambda t: MLLZeroShotClassifier(
            t.names, k=2, general_model=conse, reuse="entropy", **common),
        "MLL, paper-literal (+ plain matching, logit labels)": lambda t: MLLZeroShotClassifier(
            t.names, k=2, general_model=conse, reuse="entropy", name_bonus=0.0,
            label_statistic="logit", **common),
        "MLL, every expert (k = hub size)": lambda t: MLLZeroShotClassifier(
            t.names, k=len(hub), general_model=conse, **common),
        "HEU": lambda t: MLLZeroShotClassifier(t.names, k=2, combination="heu",
                                               general_model=conse, **common),
        "LogME^MLL": lambda t: LogMEMLLClassifier(t.names, k=2, general_model=conse,
                                                  random_state=0, **common),
        "LEEP^MLL": lambda t: LEEPMLLClassifier(t.names, k=2, general_model=conse,
                                                random_state=0, **common),
        "LogME^MLL, paper's reuse": lambda t: LogMEMLLClassifier(
            t.names, k=2, general_model=conse, reuse="entropy", random_state=0, **common),
        "LEEP^MLL, paper's reuse": lambda t: LEEPMLLClassifier(
            t.names, k=2, general_model=conse, reuse="entropy", random_state=0, **common),
    }
    rows = []
    for task in tasks:
        for method, build in methods.items():
            rows.append({"task": task.name, "method": method, **evaluate(build(task), task)})
        for reuse, suffix in (("profile", ""), ("entropy", ", paper's reuse")):
            random_runs = [evaluate(RandomMLLClassifier(task.names, k=2, general_model=conse,
                                                        reuse=reuse, random_state=s, **common),
                                    task) for s in range(args.seeds)]
            rows.append({"task": task.name,
                         "method": f"Random^MLL (mean of {args.seeds}){suffix}",
                         **{k: float(np.mean([r[k] for r in random_runs]))
                            for k in random_runs[0]}})
        conse_pred = np.array(task.names, dtype=object)[
            conse.predict_proba(task.images, task.names).argmax(axis=1)]
        oracle_pred = oracle_predictions(world, task)
        for method, predicted in (("ConSE", conse_pred), ("oracle (supervised)", oracle_pred)):
            rows.append({"task": task.name, "method": method, "acc_covered": float("nan"),
                         "coverage": float("nan"),
                         "acc_all": float(np.mean(predicted == task.truth)), "models": 1})
        print(f"table 1: {task.name} done ({time.perf_counter() - begin:.0f} s)", flush=True)
    write_table1(rows, tasks, out, report)

    # Figure 3: k = 1..5 for MLL, LogME^MLL, LEEP^MLL.
    curve = []
    for k in range(1, 6):
        for method, cls in (("MLL", MLLZeroShotClassifier), ("LogME^MLL", LogMEMLLClassifier),
                            ("LEEP^MLL", LEEPMLLClassifier)):
            extra = {} if cls is MLLZeroShotClassifier else {"random_state": 0}
            runs = [evaluate(cls(t.names, k=k, general_model=conse, **extra, **common), t)
                    for t in tasks]
            curve.append({"k": k, "method": method,
                          "acc_all": float(np.mean([r["acc_all"] for r in runs])),
                          "models": float(np.mean([r["models"] for r in runs]))})
    write_figure3(curve, out, report)
    print(f"figure 3 done ({time.perf_counter() - begin:.0f} s)", flush=True)

    # Figure 4: the hub grows from empty to complete in seeded random orders.
    growth = []
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(hub))
        for size in range(0, len(hub) + 1, 2):
            names = [hub.names[i] for i in order[:size]]
            accs = []
            for task in tasks:
                if size == 0:
                    predicted = np.array(task.names, dtype=object)[
                        conse.predict_proba(task.images, task.names).argmax(axis=1)]
                    accs.append(float(np.mean(predicted == task.truth)))
                    continue
                sub = ModelLabeler(sdag, cache_dir=args.cache_dir,
                                   verbose=0).fit(hub.subset(names))
                clf = MLLZeroShotClassifier(task.names, sub, k=2, general_model=conse,
                                            cache_dir=args.cache_dir)
                accs.append(evaluate(clf, task)["acc_all"])
            growth.append({"seed": seed, "size": size, "acc_all": float(np.mean(accs))})
    write_figure4(growth, out, report)
    print(f"figure 4 done ({time.perf_counter() - begin:.0f} s)", flush=True)

    # Table 2 and sensitivity: CHCO vs HEU, heads combined; delta and beta.
    write_table2_and_sensitivity(tasks, sdag, hub, conse, args, out, report)
    report.append(f"\nTotal time {time.perf_counter() - begin:.0f} s.")
    (out / "benchmarks.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


def write_table1(rows, tasks, out, report):
    import csv

    with open(out / "table1.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for metric, title in (("acc_all", "Acc(a)"), ("acc_covered", "Acc(c)"),
                          ("coverage", "Cvr"), ("models", "models used")):
        table = []
        for method in methods:
            row = {"method": method}
            values = []
            for task in tasks:
                value = next(r[metric] for r in rows if r["task"] == task.name
                             and r["method"] == method)
                row[task.name] = value
                values.append(value)
            row["mean"] = float(np.nanmean(values)) if not np.isnan(values).all() else np.nan
            table.append(row)
        report.append(f"\n## Table 1 analog, k = 2: {title}\n")
        report.append(markdown(table, ["method"] + [t.name for t in tasks] + ["mean"]))


def write_figure3(curve, out, report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, used) = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r["method"] for r in curve):
        points = [r for r in curve if r["method"] == method]
        acc.plot([p["k"] for p in points], [p["acc_all"] for p in points], "o-", label=method)
        used.plot([p["k"] for p in points], [p["models"] for p in points], "o-", label=method)
    acc.set(xlabel="reuse budget k", ylabel="mean Acc(a) over tasks")
    used.set(xlabel="reuse budget k", ylabel="mean models used")
    acc.legend()
    fig.tight_layout()
    fig.savefig(out / "figure3.png", dpi=110)
    report.append("\n## Figure 3 analog: reuse budget k (mean over tasks; `figure3.png`)\n")
    report.append(markdown(curve, ["k", "method", "acc_all", "models"]))


def write_figure4(growth, out, report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({g["size"] for g in growth})
    mean = [float(np.mean([g["acc_all"] for g in growth if g["size"] == s])) for s in sizes]
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed in sorted({g["seed"] for g in growth}):
        points = [g for g in growth if g["seed"] == seed]
        ax.plot([p["size"] for p in points], [p["acc_all"] for p in points], color="#bbb")
    ax.plot(sizes, mean, "o-", color="k", label="MLL + ConSE patch (mean)")
    ax.axhline(mean[0], ls="--", color="grey", label="ConSE alone")
    ax.set(xlabel="experts in the hub", ylabel="mean Acc(a) over tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "figure4.png", dpi=110)
    report.append("\n## Figure 4 analog: hub growth (mean over tasks and orders; `figure4.png`)\n")
    report.append(markdown([{"size": s, "acc_all": m} for s, m in zip(sizes, mean)],
                           ["size", "acc_all"]))


def write_table2_and_sensitivity(tasks, sdag, hub, conse, args, out, report):
    rows = []
    labeler = ModelLabeler(sdag, cache_dir=args.cache_dir, verbose=0).fit(hub)
    for task in tasks:
        row = {"task": task.name}
        for reuse in ("entropy", "profile"):
            for combination in ("heu", "chco"):
                clf = MLLZeroShotClassifier(task.names, labeler, k=2, combination=combination,
                                            reuse=reuse, general_model=conse,
                                            cache_dir=args.cache_dir)
                row[f"{combination.upper()} ({reuse})"] = evaluate(clf, task)["acc_all"]
                row[f"heads {combination.upper()}"] = int(sum(
                    (w > 1e-3).sum() for entries in clf.experts_.values() for _, _, w in entries))
        rows.append(row)
    report.append("\n## Table 2 analog: CHCO vs HEU (Acc(a), k = 2, with the paper's entropy "
                  "reuse and with profile reuse; heads = heads with weight > 0.001 summed over "
                  "the selected predictors)\n")
    report.append(markdown(rows, ["task", "HEU (entropy)", "CHCO (entropy)", "HEU (profile)",
                                  "CHCO (profile)", "heads HEU", "heads CHCO"]))

    sensitivity = []
    for delta in (0.0, 0.5, 1.0):
        lab = ModelLabeler(sdag, delta=delta, cache_dir=args.cache_dir, verbose=0).fit(hub)
        for beta in (None, 1.0, 0.5):
            for statistic in ("logit", "probability"):
                accs = [evaluate(MLLZeroShotClassifier(
                    t.names, lab, k=2, beta=beta, label_statistic=statistic, general_model=conse,
                    cache_dir=args.cache_dir), t)["acc_all"] for t in tasks]
                sensitivity.append({"delta": delta, "beta": "none" if beta is None else beta,
                                    "label_statistic": statistic,
                                    **{t.name: a for t, a in zip(tasks, accs)},
                                    "mean": float(np.mean(accs))})
    report.append("\n## Sensitivity: delta, beta and the label statistic (Acc(a), k = 2)\n")
    report.append(markdown(sensitivity, ["delta", "beta", "label_statistic"]
                           + [t.name for t in tasks] + ["mean"]))


if __name__ == "__main__":
    main()
