"""The nearest peer: the learnware market (Beimingwu engine, RKME specifications) against MLL.

The learnware paradigm also selects and reuses models from a hub, but by data rather than by
names: each model carries an RKME (reduced kernel mean embedding) specification of its training
images, and a user searches the market with an RKME of their own unlabelled task images. This
script runs the real ``learnware`` package (``bash scripts/setup_learnware.sh`` makes
``.venv-learnware``; run it with that venv's python) on the world's hub and the held-out tasks of
``bench_tables.py``:

1. every trained world expert becomes a learnware zip (its weights, a model class, an RKME of a
   sample of its own training images, learnware.yaml) added to a local ``easy`` market;
2. for each task, the user's RKME is built from the task's unlabelled test images (all of them,
   and a small sample), the market is searched (single and mixture results), and the found
   learnwares are reused with ``JobSelectorReuser`` and ``AveragingReuser``;
3. MLL (skmll defaults, ConSE patch, as in ``bench_tables.py``) classifies the same images from
   the class names alone.

A learnware must predict in the user's label space, so each expert is wrapped to output
probabilities over the world's 20 classes through its hidden head definitions (a head covering
several classes splits its probability evenly among them). MLL never gets that mapping: it
learns what each head means from the SDAG's images. The comparison therefore favours learnware.
Pretrained experts have no mapping to the world's classes and are left out of the market, and so
are the market's ONNX and scikit-learn experts (the learnware model class here loads PyTorch
weights).

RKME settings. The package's defaults (16 random networks of width 2 x 128, 100 optimisation
steps, 50 reduced points, up to 5,000 images) cost about 160 s per step on 200 images on the
2-core development machine, hours per specification, so the specifications here are built with
a light configuration of the same method (``--rkme-*`` flags; printed with the results). Search
distances use the package's own infinite-width NNGP kernel whatever the configuration.

Usage: .venv-learnware/bin/python benchmarks/bench_learnware.py [--hub default|large]
[--out DIR] [--max-images N]
"""

import argparse
import csv
import inspect
import json
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from skmll import MLLZeroShotClassifier
from skmll.datasets import WORLD_EXPERTS
from skmll.utils import hash_array, hash_json, resolve_cache_dir

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import HELD_OUT_TASKS, Task, load_benchmark, markdown  # noqa: E402

N_WORLD_CLASSES = 20
USER_SAMPLE = 100  # the small unlabelled sample a user might search with
SPEC_SAMPLE = 200  # training images each expert's RKME is built from

# The learnware's model, written into each zip as its __init__.py; the market loads it from there.
MODEL_SOURCE = '''"""A skmll world expert read in the world's 20-class label space."""
import json
from pathlib import Path

import numpy as np
import torch
from learnware.model import BaseModel
from safetensors.torch import load_file

from skmll.datasets import ExpertSpec, MarketSpec

HERE = Path(__file__).parent


class Model(BaseModel):
    def __init__(self, n_classes, side):
        super().__init__(input_shape=(1, side, side), output_shape=(n_classes,))
        record = json.loads((HERE / "expert.json").read_text())
        fields = {k: tuple(tuple(h) for h in v) if k == "heads" else v
                  for k, v in record["spec"].items()}
        spec = {"ExpertSpec": ExpertSpec, "MarketSpec": MarketSpec}[record["spec_class"]](**fields)
        module = spec.build_module()
        module.load_state_dict(load_file(HERE / "weights.safetensors"))
        self.expert = spec.wrap(module.eval())
        # head -> world classes: each head's probability is split evenly over its classes
        self.head_to_class = np.zeros((len(spec.heads), n_classes))
        for head, classes in enumerate(spec.heads):
            self.head_to_class[head, list(classes)] = 1.0 / len(classes)

    def fit(self, X, y):
        pass

    def finetune(self, X, y):
        pass

    def predict(self, X):
        images = np.asarray(X, dtype=np.float32)[:, 0] / 255.0  # (n, 1, H, W) pixels in 0..255
        rgb = np.repeat(images[..., None], 3, axis=-1)
        logits = torch.from_numpy(self.expert.logits(rgb))
        probabilities = torch.softmax(logits, dim=1).numpy() @ self.head_to_class
        # log-probabilities, so that the averaging reuser's softmax gives the probabilities back
        return np.log(np.maximum(probabilities, 1e-12))
'''


def import_learnware():
    """The learnware package's market, specification and reuse parts, or a clear error."""
    try:
        import lightgbm  # noqa: F401  (JobSelectorReuser's selector)
        import torch_optimizer  # noqa: F401  (the image RKME's optimiser)
        from learnware.market import BaseUserInfo, instantiate_learnware_market
        from learnware.reuse import AveragingReuser, JobSelectorReuser
        from learnware.specification import RKMEImageSpecification
    except ImportError as exc:
        raise SystemExit(f"the learnware market cannot run in this Python ({exc}); make its venv "
                         "with `bash scripts/setup_learnware.sh` and run this script with "
                         "`.venv-learnware/bin/python`") from exc
    return argparse.Namespace(BaseUserInfo=BaseUserInfo, market=instantiate_learnware_market,
                              AveragingReuser=AveragingReuser, JobSelectorReuser=JobSelectorReuser,
                              RKME=RKMEImageSpecification)


def expert_specs():
    """Hub name -> ExpertSpec of every trained expert whose head definitions are known."""
    specs = {spec.name: spec for spec in WORLD_EXPERTS}
    try:
        from skmll.datasets import MARKET_EXPERTS
    except ImportError:
        return specs
    return {**specs, **{spec.name: spec for spec in MARKET_EXPERTS}}


def as_nchw(images):
    """(n, H, W) uint8 gray images as learnware's (n, 1, H, W) float array in 0..255."""
    return np.asarray(images, dtype=np.float32)[:, None]


def rkme(lw, images, args, cache):
    """The RKME image specification of ``images`` (light configuration), cached as JSON."""
    config = {"n_models": args.rkme_models, "model_config": {
        "k": 2, "mu": 0, "sigma": None, "net_width": args.rkme_width, "net_depth": 3}}
    build = {"K": args.rkme_reduced, "steps": args.rkme_steps, "sample_size": args.rkme_sample}
    path = cache / f"{hash_json([hash_array(images), config, build])}.json"
    spec = lw.RKME(cuda_idx=-1, **config)
    if path.exists():
        spec.load(str(path))
        return spec, path
    spec.generate_stat_spec_from_data(as_nchw(images), verbose=False, **build)
    spec.save(str(path))
    return spec, path


def learnware_zip(lw, spec, expert, world, args, cache, folder):
    """Write ``spec``'s expert as a learnware zip; returns its path and the expert's note."""
    from safetensors.torch import save_file

    work = folder / spec.name
    work.mkdir()
    mask, _ = spec.targets(world.train_labels)
    own = world.train_images[mask]
    sample = np.random.default_rng(0).permutation(len(own))[:SPEC_SAMPLE]
    _, spec_path = rkme(lw, own[sample], args, cache)
    shutil.copy(spec_path, work / "stat_spec.json")
    save_file({k: v.contiguous() for k, v in expert.module.state_dict().items()},
              work / "weights.safetensors")
    (work / "expert.json").write_text(json.dumps(
        {"spec_class": type(spec).__name__, "spec": dict(vars(spec))}))
    (work / "__init__.py").write_text(MODEL_SOURCE)
    (work / "requirements.txt").write_text("")
    side = world.train_images.shape[1]
    (work / "learnware.yaml").write_text(json.dumps({
        "model": {"class_name": "Model", "kwargs": {"n_classes": N_WORLD_CLASSES, "side": side}},
        "stat_specifications": [{"module_path": "learnware.specification",
                                 "class_name": "RKMEImageSpecification",
                                 "file_name": "stat_spec.json",
                                 "kwargs": {"cuda_idx": -1}}]}))
    path = folder / f"{spec.name}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in work.iterdir():
            archive.write(file, file.name)
    return path


def semantic_spec(name=None):
    """A learnware semantic specification: image classification into the world's 20 classes.

    Names and descriptions are neutral, as the hub's are: the market learns nothing from them.
    """
    spec = {"Data": {"Values": ["Image"], "Type": "Class"},
            "Task": {"Values": ["Classification"], "Type": "Class"}}
    if name is not None:
        spec.update({
            "Model": {"Values": ["Others"], "Type": "Optional"},
            "Library": {"Values": ["PyTorch"], "Type": "Class"},
            "Scenario": {"Values": ["Others"], "Type": "Tag"},
            "License": {"Values": ["MIT"], "Type": "Class"},
            "Description": {"Values": f"an image classifier ({name})", "Type": "String"},
            "Name": {"Values": name, "Type": "String"},
            "Output": {"Dimension": N_WORLD_CLASSES,
                       "Description": {str(c): f"class {c}" for c in range(N_WORLD_CLASSES)}}})
    return spec


def build_market(lw, bench, args, cache):
    """A fresh local easy market holding every hub expert that can be put in the label space."""
    specs = expert_specs()
    market = lw.market(market_id=f"skmll-{args.hub}", name="easy", rebuild=True)
    added, left_out = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in bench.hub.names:
            expert = getattr(bench.hub[name], "expert", bench.hub[name])
            if name not in specs or not hasattr(expert, "module"):
                left_out.append(name)
                continue
            path = learnware_zip(lw, specs[name], expert, bench.world, args, cache, Path(folder))
            learnware_id, status = market.add_learnware(str(path), semantic_spec(name))
            if status <= 0:  # BaseChecker.INVALID_LEARNWARE
                raise RuntimeError(f"the market refused {name}'s learnware (status {status})")
            added.append((name, learnware_id))
            print(f"  learnware {name}: added (check status {status})", flush=True)
    return market, dict(added), left_out


def restricted_accuracy(scores, task):
    """Accuracy of world-class scores (softmax: probabilities) read on the task's classes only."""
    probabilities = torch.softmax(torch.from_numpy(scores), dim=1).numpy()
    class_of = {c: i for i, (_, ids) in enumerate(HELD_OUT_TASKS[task.name]) for c in ids}
    per_class = np.zeros((len(probabilities), len(task.names)))
    for c, i in class_of.items():
        per_class[:, i] += probabilities[:, c]
    predicted = np.array(task.names, dtype=object)[per_class.argmax(axis=1)]
    return float(np.mean(predicted == task.truth))


def search_and_reuse(lw, market, names, task, user_images, args, cache):
    """One search with the RKME of ``user_images``; both reusers on the task's images."""
    begin = time.perf_counter()
    user_spec, _ = rkme(lw, user_images, args, cache)
    spec_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    user = lw.BaseUserInfo(semantic_spec=semantic_spec(),
                           stat_info={"RKMEImageSpecification": user_spec})
    results = market.search_learnware(user, max_search_num=args.max_search)
    search_seconds = time.perf_counter() - begin
    multiple = results.get_multiple_results()
    single = results.get_single_results()
    chosen = multiple[0].learnwares if multiple else [single[0].learnware]
    by_id = {v: k for k, v in names.items()}
    images = as_nchw(task.raw)
    row = {"learnwares": " ".join(by_id[lw_.id] for lw_ in chosen),
           "top single": by_id[single[0].learnware.id],
           "run per image": 1, "spec s": spec_seconds, "search s": search_seconds}
    # The job selector is trained on the learnwares' reduced sets, which live where RKME puts
    # data (32 x 32, standardised by the data's own mean and deviation), so the user's images
    # reach it that way; use_herding=True would build a table RKME of raw images and fail.
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(images), size=(32, 32), mode="bilinear", antialias=True).numpy()
    selector_input = (resized - resized.mean()) / resized.std()
    selector = lw.JobSelectorReuser(chosen, use_herding=False)
    assignment = selector.job_selector(selector_input)
    scores = np.zeros((len(images), N_WORLD_CLASSES))
    for i, learnware in enumerate(chosen):
        rows = assignment == i
        if rows.any():
            scores[rows] = learnware.predict(images[rows])
    row["job selector"] = restricted_accuracy(scores, task)
    # "vote_by_prob" is the package's averaging for classifiers: the mean of softmaxed outputs
    averaged = lw.AveragingReuser(chosen, mode="vote_by_prob").predict(images)
    row["averaging"] = restricted_accuracy(np.log(np.maximum(averaged, 1e-12)), task)
    row["averaging runs"] = len(chosen)
    return row


def mll_accuracy(bench, task, cache_dir):
    clf = MLLZeroShotClassifier(task.names, bench.labeler, general_model=bench.conse,
                                cache_dir=cache_dir).fit()
    return float(np.mean(clf.predict(task.images) == task.truth)), clf.n_models_used_


def subset(task, max_images):
    """The task restricted to a seeded class-stratified draw of at most ``max_images`` images."""
    if len(task.truth) <= max_images:
        return task
    keep = np.sort(np.random.default_rng(0).permutation(len(task.truth))[:max_images])
    task.truth, task.images, task.raw = task.truth[keep], task.images[keep], task.raw[keep]
    return task


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", choices=("default", "large"), default="large")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "skmll-learnware"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--fashion-test", type=int, default=2000,
                        help="held-out Fashion-MNIST images (as bench_tables.py)")
    parser.add_argument("--max-images", type=int, default=200,
                        help="images per task (a seeded draw when a task has more)")
    parser.add_argument("--max-search", type=int, default=3,
                        help="learnware's max_search_num: the largest mixture it returns")
    parser.add_argument("--rkme-models", type=int, default=4, help="package default 16")
    parser.add_argument("--rkme-width", type=int, default=32, help="package default 128")
    parser.add_argument("--rkme-reduced", type=int, default=20, help="package default 50")
    parser.add_argument("--rkme-steps", type=int, default=1, help="package default 100")
    parser.add_argument("--rkme-sample", type=int, default=50,
                        help="images an RKME is fitted on at most (package default 5000)")
    args = parser.parse_args()
    begin = time.perf_counter()
    lw = import_learnware()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = resolve_cache_dir(args.cache_dir) / "learnware-rkme"
    cache.mkdir(parents=True, exist_ok=True)

    hub_size = ({"hub_size": args.hub}
                if "hub_size" in inspect.signature(load_benchmark).parameters else {})
    if args.hub == "large" and not hub_size:
        raise SystemExit("this checkout's bench_tables.load_benchmark has no large hub")
    bench = load_benchmark(dev_fashion=2000, fashion_test=args.fashion_test,
                           cache_dir=args.cache_dir, **hub_size)
    print(f"hub loaded and labelled ({time.perf_counter() - begin:.0f} s)", flush=True)
    market, names, left_out = build_market(lw, bench, args, cache)
    print(f"market: {len(names)} learnwares ({time.perf_counter() - begin:.0f} s)", flush=True)

    rows = []
    for name, classes in HELD_OUT_TASKS.items():
        task = subset(Task(bench.held_out, name, classes), args.max_images)
        accuracy, used = mll_accuracy(bench, task, args.cache_dir)
        sample = np.random.default_rng(1).permutation(len(task.raw))[:USER_SAMPLE]
        for user, images in (("all test images", task.raw), (f"{USER_SAMPLE} images",
                                                               task.raw[sample])):
            row = {"task": name, "images": len(task.truth), "user RKME from": user,
                   **search_and_reuse(lw, market, names, task, images, args, cache),
                   "MLL": accuracy, "MLL experts": used}
            rows.append(row)
            print(row, flush=True)

    columns = ["task", "images", "user RKME from", "job selector", "averaging", "MLL",
               "learnwares", "averaging runs", "run per image", "MLL experts", "top single",
               "spec s", "search s"]
    config = (f"RKME: {args.rkme_models} random networks of width 2 x {args.rkme_width}, "
              f"{args.rkme_steps} steps, {args.rkme_reduced} reduced points, at most "
              f"{args.rkme_sample} images; learnware RKMEs from {SPEC_SAMPLE} of each expert's "
              f"own training images; max_search_num {args.max_search}")
    report = [
        f"# Learnware market vs MLL ({args.hub} hub, held-out tasks)\n",
        f"Command: `.venv-learnware/bin/python benchmarks/bench_learnware.py --hub {args.hub} "
        f"--max-images {args.max_images} --rkme-steps {args.rkme_steps} --rkme-sample "
        f"{args.rkme_sample}`. {config}.\n",
        f"Market: {len(names)} learnwares ({', '.join(names)}); left out (pretrained models "
        "have no mapping to the world's classes; the ONNX and scikit-learn market experts have "
        "no PyTorch module for this script's learnware model class to load): "
        f"{', '.join(left_out) or 'none'}.\n",
        "Each learnware outputs probabilities over the world's 20 classes through its expert's "
        "hidden head definitions (a head of several classes splits its probability evenly): "
        "information MLL never gets, so the comparison favours learnware. Learnware also sees "
        "the task's unlabelled test images (its RKME search needs them); MLL sees the class "
        "names alone. Accuracies are read on the task's classes only. 'job selector' runs one "
        "learnware per image; 'averaging' runs all the found learnwares on every image. MLL: "
        "skmll defaults with the ConSE patch, as in bench_tables.py.\n",
        markdown(rows, columns),
        f"\nTotal time {time.perf_counter() - begin:.0f} s."]
    (out / "learnware.md").write_text("\n".join(report) + "\n")
    with open(out / "learnware.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(report))


if __name__ == "__main__":
    main()
