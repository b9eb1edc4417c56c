"""The general-model patch: what classes that no expert or node can serve cost the covered ones.

Each task is a set of the offline world's classes plus 1-3 names that nothing in the world's
SDAG or hub can serve ("volcano", "banjo", ...); the general model is the documented offline
default, ConSE over EfficientNet-Lite0. For every task the script reports the accuracy on the
covered classes' test images

* without the unservable names (the experts alone),
* with them, under the paper's patch (``patch_calibration=None``),
* with them, under the calibrated patch (the package default),

and, for the unservable names that have photos, the share of those photos that reaches its
class, and the accuracy on the whole task (covered images and photos together). The world has
no image of any unservable class: three names get photos that ship with scikit-learn and
matplotlib ("pagoda": china.jpg, "dahlia": flower.jpg, "military uniform": grace_hopper.jpg),
as square crops resized to 96 x 96; the other names have no images, so only their cost to the
covered classes is measured.

The world's classes are given their nodes (``nodes=``), so the figures measure the patch and
not the name matching; the unservable names are matched by text with ``min_similarity=0.6``,
above the cosine similarity of any of them to any SDAG node (at most 0.49, "military uniform"
to boot.n.01), so no node serves them, and the script checks that none is served.

Evaluation discipline: ``patch_calibration``'s default is chosen with ``--choose`` on the
development tasks (``DEVELOPMENT``: other class sets, other unservable names, the development
images of :func:`skmll.datasets.held_out_split` and crops from the *left* half of each photo);
the reported tasks (``REPORTED``) run on the held-out images and crops from the *right* half.
The rule: the largest value on the grid whose mean covered-accuracy loss on the development
tasks is at most one point (trust the general model as far as that budget allows).

Usage: python benchmarks/bench_patch.py [--choose] [--crops 12] [--cache-dir DIR]
"""

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skmll import ConSE, MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.datasets import build_world_hub, held_out_split, make_world
from skmll.hub import MemoizedExpert, ModelHub, as_image_batch

# (world class ids, unservable names)
DEVELOPMENT = {
    "trousers/dress/bag": ([1, 3, 8], ["volcano", "dahlia"]),
    "two/five/eight/nine": ([12, 15, 18, 19], ["accordion", "pagoda"]),
    "sandal/coat/seven": ([5, 4, 17], ["military uniform", "kayak"]),
    "T-shirt/sneaker/one/four": ([0, 7, 11, 14], ["telescope"]),
}
REPORTED = {
    "footwear+bag": ([5, 7, 9, 8], ["lighthouse"]),
    "garments": ([0, 1, 2, 3, 4, 6], ["pagoda", "banjo"]),
    "digits": (list(range(10, 20)), ["dahlia", "giraffe", "harp"]),
    "sneaker/coat/three/six": ([7, 4, 13, 16], ["military uniform", "violin"]),
    "bag/dress/zero": ([8, 3, 10], ["dahlia", "pagoda", "volcano"]),
}
PHOTO_FILES = {"pagoda": ("sklearn", "china.jpg"), "dahlia": ("sklearn", "flower.jpg"),
               "military uniform": ("matplotlib", "grace_hopper.jpg")}
UNSERVABLE_FLOOR = 0.6
GRID = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
MAX_COVERED_LOSS = 0.01   # the development budget the default is chosen under
PHOTO_SIZE = 96


def _photo(source, filename):
    if source == "sklearn":
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
    else:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
    return np.asarray(Image.open(folder / filename).convert("RGB"))


def photo_crops(name, half, n_crops, seed=0):
    """``n_crops`` square crops from one half ("left"/"right") of a class's photo, 96 x 96."""
    photo = _photo(*PHOTO_FILES[name])
    height, width = photo.shape[:2]
    x0 = 0 if half == "left" else width // 2
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n_crops):
        side = int(rng.uniform(0.6, 1.0) * min(width // 2, height))
        left = x0 + rng.integers(0, width // 2 - side + 1)
        top = rng.integers(0, height - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side])
        crops.append(np.asarray(crop.resize((PHOTO_SIZE, PHOTO_SIZE), Image.BILINEAR)))
    return np.stack(crops)


class PatchTask:
    """A task's covered test images and truths, and the photos of its unservable names."""

    def __init__(self, world, name, class_ids, unservable, half, n_crops):
        images, labels, names, synsets = world.task(class_ids)
        self.name, self.covered_names, self.unservable = name, names, unservable
        self.synsets = synsets
        self.images = as_image_batch(images)
        self.truth = np.array(names, dtype=object)[labels]
        with_photos = [u for u in unservable if u in PHOTO_FILES]
        self.photos = (as_image_batch(np.concatenate([photo_crops(u, half, n_crops)
                                                      for u in with_photos]))
                       if with_photos else None)
        self.photo_truth = np.repeat(np.array(with_photos, dtype=object), n_crops)

    def evaluate(self, classifier):
        """Covered accuracy, photo recall and whole-task accuracy of a fitted classifier."""
        if classifier.covered_classes_ != self.covered_names:
            raise RuntimeError(f"{self.name}: some unservable name was served, or a world class "
                               f"was not: uncovered {classifier.uncovered_classes_}")
        covered_hits = classifier.predict(self.images) == self.truth
        row = {"covered": float(covered_hits.mean())}
        if self.photos is not None and set(self.unservable) <= set(classifier.classes_):
            photo_hits = classifier.predict(self.photos) == self.photo_truth
            row["photos"] = float(photo_hits.mean())
            row["whole task"] = float(np.concatenate([covered_hits, photo_hits]).mean())
        return row


def run_task(task, common, calibrations):
    """One row per setting: the covered classes alone, then each patch calibration."""
    alone = MLLZeroShotClassifier(task.covered_names, nodes=task.synsets, **common).fit()
    rows = {"alone": task.evaluate(alone)}
    for calibration in calibrations:
        classifier = MLLZeroShotClassifier(
            task.covered_names + task.unservable, nodes=task.synsets + [None] * len(
                task.unservable), min_similarity=UNSERVABLE_FLOOR,
            patch_calibration=calibration, **common).fit()
        rows[calibration] = {**task.evaluate(classifier), "bias": classifier.patch_bias_}
    return rows


def choose_default(tasks, common):
    """The largest grid value whose mean covered loss on the development tasks is <= 1 point."""
    results = {task.name: run_task(task, common, [None] + GRID) for task in tasks}
    print("\nDevelopment tasks: mean over tasks (covered loss vs. the classes alone; photos "
          "reaching their class)")
    print("| patch_calibration | covered loss | photos |\n|---|---|---|")
    chosen = None
    for calibration in [None] + GRID:
        loss = np.mean([r["alone"]["covered"] - r[calibration]["covered"]
                        for r in results.values()])
        photos = np.mean([r[calibration]["photos"] for r in results.values()
                          if "photos" in r[calibration]])
        print(f"| {calibration} | {loss:.3f} | {photos:.3f} |")
        if calibration is not None and loss <= MAX_COVERED_LOSS:
            chosen = calibration
    print(f"\nchosen: patch_calibration={chosen} (largest with mean covered loss <= "
          f"{MAX_COVERED_LOSS})")
    return chosen


def report(tasks, common):
    default = MLLZeroShotClassifier.__init__.__kwdefaults__["patch_calibration"]
    print(f"\nReported tasks (held-out images, right-half photo crops); calibrated = the "
          f"default patch_calibration={default}")
    print("| task | unservable | covered alone | covered, paper's patch | covered, calibrated "
          "| photos, paper / calibrated | whole task, paper / calibrated | bias |")
    print("|---|---|---|---|---|---|---|---|")
    means = []
    for task in tasks:
        rows = run_task(task, common, [None, default])
        paper, calibrated = rows[None], rows[default]
        means.append([rows["alone"]["covered"], paper["covered"], calibrated["covered"]])
        pair = (lambda key: f"{paper[key]:.3f} / {calibrated[key]:.3f}" if key in paper
                else "no images")
        print(f"| {task.name} | {', '.join(task.unservable)} | {rows['alone']['covered']:.3f} "
              f"| {paper['covered']:.3f} | {calibrated['covered']:.3f} | {pair('photos')} "
              f"| {pair('whole task')} | {calibrated['bias']:.2f} |", flush=True)
    alone, paper, calibrated = np.mean(means, axis=0)
    print(f"| mean | | {alone:.3f} | {paper:.3f} | {calibrated:.3f} | | | |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--choose", action="store_true",
                        help="choose the default on the development tasks first")
    parser.add_argument("--crops", type=int, default=12, help="crops per photo")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    begin = time.perf_counter()
    world = make_world(fashion_test=2000)
    development, held_out = held_out_split(world, fashion_test=2000)
    hub = ModelHub([MemoizedExpert(e, cache_dir=args.cache_dir)
                    for e in build_world_hub(world, cache_dir=args.cache_dir, verbose=0)])
    sdag = SemanticDAG.from_wordnet(world.reference, cache_dir=args.cache_dir)
    labeler = ModelLabeler(sdag, cache_dir=args.cache_dir, verbose=0).fit(hub)
    common = {"labeler": labeler, "general_model": ConSE.from_imagenet(hub["efficientnet-lite0"]),
              "cache_dir": args.cache_dir}
    if args.choose:
        choose_default([PatchTask(development, name, ids, names, "left", args.crops)
                        for name, (ids, names) in DEVELOPMENT.items()], common)
    report([PatchTask(held_out, name, ids, names, "right", args.crops)
            for name, (ids, names) in REPORTED.items()], common)
    print(f"\n{time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
