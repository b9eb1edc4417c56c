"""The offline demo: zero-shot classification from a hub of expert classifiers.

Builds the benchmark world (Fashion-MNIST + scikit-learn digits, three disjoint splits), the
Semantic DAG from WordNet, and a hub of 16 experts (10 small ones trained here on hidden label
spaces, EfficientNet-Lite 0/1/2 and three shipped Keras models); labels the hub; then classifies a
task given only as class names. Accuracy is compared with ConSE (a general zero-shot model) and
a supervised oracle trained with labels. Every expensive step is cached, so a second run only
loads. Run it with ``bash scripts/demo.sh`` (``--help`` for options).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from skmll import ConSE, MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.datasets import build_world_hub, make_world, supervised_oracle
from skmll.hub import MemoizedExpert, ModelHub, as_image_batch
from skmll.metrics import zero_shot_report

TASKS = {  # world class ids: 0-9 Fashion-MNIST, 10-19 the digits
    "fashion": list(range(10)),
    "footwear-and-bags": [5, 7, 9, 8],
    "digits": list(range(10, 20)),
    "garments-and-digits": [0, 1, 2, 3, 4, 6] + list(range(10, 20)),
}


def timed(label, start):
    print(f"  {label}: {time.perf_counter() - start:.1f} s")
    return time.perf_counter()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="garments-and-digits")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--fashion-test", type=int, default=2000,
                        help="Fashion-MNIST test images (the digits add 596)")
    parser.add_argument("--cache-dir", default=None, help="default: ~/.cache/skmll")
    parser.add_argument("--out", default="results/local", help="where the plot goes")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    begin = start = time.perf_counter()

    print("1. The world: data splits, Semantic DAG, expert hub")
    world = make_world(fashion_test=args.fashion_test)
    sdag = SemanticDAG.from_wordnet(world.reference, cache_dir=args.cache_dir)
    # Experts remember their outputs by image content (on disk too), so the classifier and the
    # ConSE baseline share forward passes and a second run of the demo makes none.
    hub = ModelHub([MemoizedExpert(e, cache_dir=args.cache_dir)
                    for e in build_world_hub(world, cache_dir=args.cache_dir,
                                             verbose=args.verbose)])
    print(f"  {sdag!r}\n  {len(hub)} experts: {', '.join(hub.names)}")
    start = timed("world ready", start)

    print("2. Labelling: every expert pre-tested on the SDAG (cached by content)")
    labeler = ModelLabeler(sdag, cache_dir=args.cache_dir, verbose=args.verbose).fit(hub)
    print(f"  forward passes this run: {labeler.n_forward_images_} images")
    start = timed("labels ready", start)

    images, labels, names, _ = world.task(TASKS[args.task])
    truth = np.array(names, dtype=object)[labels]
    print(f"3. The task '{args.task}', given only as names: {names}")
    general = ConSE.from_imagenet(hub["efficientnet-lite0"])
    clf = MLLZeroShotClassifier(names, labeler, k=args.k, general_model=general,
                                cache_dir=args.cache_dir, verbose=args.verbose).fit()
    start = timed("selection (matching + CHCO + top-k)", start)
    predicted = clf.predict(images)
    start = timed(f"prediction on {len(images)} test images", start)

    print("4. What the classifier decided")
    print("  " + clf.explain().replace("\n", "\n  "))

    print("5. Accuracy against a general zero-shot model and a supervised oracle")
    oracle = supervised_oracle(world, TASKS[args.task])
    results = {
        "MLL (zero-shot, experts)": predicted,
        "ConSE (zero-shot, general)": np.array(names, dtype=object)[
            general.predict_proba(as_image_batch(images), names).argmax(axis=1)],
        "logistic regression (trained with labels)": np.array(names, dtype=object)[
            oracle.predict(images)],
    }
    report = zero_shot_report(truth, results["MLL (zero-shot, experts)"],
                              covered=clf.covered_classes_)
    for method, prediction in results.items():
        print(f"  {method:44s} accuracy {np.mean(prediction == truth):.3f}")
    print(f"  MLL coverage {report['coverage']:.2f}, Acc(c) {report['acc_covered']:.3f}, "
          f"Acc(a) {report['acc_all']:.3f}, {clf.n_models_used_} expert(s) used")
    plot(results, truth, names, Path(args.out) / f"demo-{args.task}.png")
    timed("total", begin)


def plot(results, truth, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (bars, matrix) = plt.subplots(1, 2, figsize=(13, 5.5),
                                       gridspec_kw={"width_ratios": [1, 1.4]})
    methods = list(results)
    accuracies = [np.mean(results[m] == truth) for m in methods]
    bars.barh(range(len(methods)), accuracies, color=["#2a7", "#999", "#47c"])
    bars.set_yticks(range(len(methods)), [m.replace(" (", "\n(") for m in methods])
    bars.set_xlim(0, 1)
    bars.set_xlabel("accuracy")
    for i, a in enumerate(accuracies):
        bars.text(a + 0.01, i, f"{a:.3f}", va="center")
    cm = confusion_matrix(truth, results[methods[0]], labels=names, normalize="true")
    matrix.imshow(cm, cmap="Greens", vmin=0, vmax=1)
    matrix.set_xticks(range(len(names)), names, rotation=60, ha="right")
    matrix.set_yticks(range(len(names)), names)
    matrix.set_title("MLL confusion (rows: truth)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"  plot written to {path}")


if __name__ == "__main__":
    main()
