"""The nearest peer: the learnware market (Beimingwu engine, RKME specifications) against MLL,
run the way the ``learnware`` package's own image example runs it.

The learnware paradigm also selects and reuses models from a hub, but by data rather than by
names: each model carries an RKME (reduced kernel mean embedding) specification of its training
images, and a user searches the market with an RKME of their own unlabelled task images. This
script runs the real ``learnware`` package (``bash scripts/setup_learnware.sh`` makes
``.venv-learnware``; run it with that venv's python) on the world's hub and the held-out tasks
of ``bench_tables.py``:

1. every trained expert of the hub (world and market experts: PyTorch, ONNX and scikit-learn)
   becomes a learnware zip: the expert's own files, a model class that serves them through
   skmll's readers, an RKME of the expert's own training images (all of them, up to the
   package's default ``sample_size`` of 5,000) and learnware.yaml, added to a local ``easy``
   market;
2. for each seed and task, a seeded draw of the task's held-out images is the user's data; the
   user's RKME is built from all of it; the market is searched with the package's default
   ``max_search_num`` (5); the found mixture is reused by averaging (``vote_by_prob``, as the
   package's CIFAR-10 example does) and by the job selector (``use_herding=False``, as in that
   example; the package's docs say it is "only effective for tabular data"); the top single
   result is reused alone (Top-1); and every learnware is run alone (best and mean single);
3. MLL (skmll defaults, ConSE patch, as in ``bench_tables.py``) classifies the same images with
   the full hub and with a hub of the market's experts alone.

What each side sees. A learnware must predict in the user's label space, so each expert is
wrapped to output probabilities over the world's 20 classes through its hidden head definitions
(a head covering several classes splits its probability evenly); learnware also sees the
experts' training images (through their RKMEs) and the user's unlabelled images. MLL sees the
class names and the labels it made by running the experts on the SDAG's reference images
(50 labelled images per class, drawn from the same sources as the tasks); its defaults were
chosen on this world's development tasks.

RKME. In the package the reduced set ``z`` of an image RKME is seeded noise created without
``requires_grad`` (``RKMEImageSpecification.generate_stat_spec_from_data``), so ``_update_z``
never moves it: every specification is a weighting ``beta`` of the same noise images, and each
step only redraws the random networks that fit ``beta``. The script checks this on the package
itself (``frozen_z_check``) and builds specifications with 0 steps by default. The package's
default random networks (16 of width 2 x 128) cost about 0.2 s per image on the 2-core machine;
the run's width is a flag; ``--width-check`` rebuilds the first users' RKMEs at the default
width and searches the run's market with them, and ``--width-markets`` (alone) builds a market
and its users at each width from 100 images each and compares what they find. Search distances
use the package's own infinite-width NNGP kernel, which does not depend on the width.

Usage: .venv-learnware/bin/python benchmarks/bench_learnware.py [--seeds 3] [--out DIR]
[--width-markets]
"""

import argparse
import copy
import csv
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from skmll import MLLZeroShotClassifier, ModelLabeler
from skmll.datasets import MARKET_EXPERTS, WORLD_EXPERTS
from skmll.datasets._experts import _training_data
from skmll.utils import hash_array, hash_json, resolve_cache_dir

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import HELD_OUT_TASKS, Task, load_benchmark, markdown  # noqa: E402

N_WORLD_CLASSES = 20
SAMPLE_SIZE = 5000      # the package's default: images an RKME is fitted on at most
MAX_SEARCH_NUM = 5      # the package's default: the largest mixture a search returns
DEFAULT_WIDTH = (16, 128)  # the package's default random networks: how many, and their width
WIDTH_CHECK_IMAGES = 100  # user images both widths are built from (default width: 0.2-1 s each)
LIBRARY = {"torch": "PyTorch", "onnx": "Others", "sklearn": "Scikit-learn"}
# MLL's rows, each with its column of experts run
MLL_ROWS = {"MLL, market's experts": "MLL experts run (market)",
            "MLL, full hub": "MLL experts run (full)"}
MLL_EXPERTS = list(MLL_ROWS.values())
# the accuracies the summary gives as mean ± sd over seeds
SUMMARY = ["averaging", "top-1", "job selector", "best single", "mean single", *MLL_ROWS]

# The learnware's model, written into each zip as its __init__.py; the market loads it from there.
MODEL_SOURCE = '''"""A skmll hub expert read in the world's 20-class label space."""
import json
from pathlib import Path

import numpy as np
import torch
from learnware.model import BaseModel

from skmll.datasets import ExpertSpec, MarketSpec, PixelModelExpert
from skmll.datasets._market import _load_pixel_model, _serve_onnx

HERE = Path(__file__).parent


def load_expert(spec):
    """The expert from this folder's files, read by skmll's own reader for its framework."""
    framework = getattr(spec, "framework", "torch")
    if framework == "onnx":
        return _serve_onnx(spec, HERE / "model.onnx")
    if framework == "sklearn":
        model = _load_pixel_model(HERE / "pixels.safetensors")
        if model is None:
            raise RuntimeError(f"{spec.name}: pixels.safetensors is missing or unreadable")
        return PixelModelExpert(model, name=spec.name, input_size=spec.input_size)
    from safetensors.torch import load_file

    module = spec.build_module()
    module.load_state_dict(load_file(HERE / "weights.safetensors"))
    return spec.wrap(module.eval())


class Model(BaseModel):
    def __init__(self, n_classes, side):
        super().__init__(input_shape=(1, side, side), output_shape=(n_classes,))
        record = json.loads((HERE / "expert.json").read_text())
        fields = {k: tuple(tuple(h) for h in v) if k == "heads" else v
                  for k, v in record["spec"].items()}
        spec = {"ExpertSpec": ExpertSpec, "MarketSpec": MarketSpec}[record["spec_class"]](**fields)
        self.expert = load_expert(spec)
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
        from learnware import __version__
        from learnware.market import BaseUserInfo, instantiate_learnware_market
        from learnware.reuse import AveragingReuser, JobSelectorReuser
        from learnware.specification import RKMEImageSpecification
    except ImportError as exc:
        raise SystemExit(f"the learnware market cannot run in this Python ({exc}); make its venv "
                         "with `bash scripts/setup_learnware.sh` and run this script with "
                         "`.venv-learnware/bin/python`") from exc
    return argparse.Namespace(BaseUserInfo=BaseUserInfo, market=instantiate_learnware_market,
                              AveragingReuser=AveragingReuser, JobSelectorReuser=JobSelectorReuser,
                              RKME=RKMEImageSpecification, version=__version__)


class _MemoKernel:
    """The package's NNGP kernel module, each evaluation kept by its inputs' bytes."""

    def __init__(self, kernel, config, memo):
        self.kernel, self.config, self.memo = kernel, config, memo

    def to(self, device):
        self.kernel = self.kernel.to(device)
        return self

    def __call__(self, z1, z2=None):
        key = (self.config, hash_array(z1.detach().cpu().numpy()),
               None if z2 is None else hash_array(z2.detach().cpu().numpy()))
        if key not in self.memo:
            self.memo[key] = self.kernel(z1) if z2 is None else self.kernel(z1, z2)
        return self.memo[key]


def memoize_search_kernel():
    """Compute the package's search kernel once per pair of reduced sets.

    A search evaluates the infinite-width NNGP kernel between the reduced sets of every pair of
    specifications it compares, hundreds of times per search at 1-3 s each on two cores with
    K = 50. Every specification here has the same reduced set (see :func:`frozen_z_check`), so
    the evaluations repeat; the memo returns the package's own value for the same inputs, and
    search results are unchanged.
    """
    from learnware.specification.regular.image import rkme as image_rkme

    build, memo = image_rkme._build_ConvNet_NNGP, {}

    def memoized(*args, **kwargs):
        return _MemoKernel(build(*args, **kwargs), hash_json([args, kwargs]), memo)

    image_rkme._build_ConvNet_NNGP = memoized


def as_nchw(images):
    """(n, H, W) uint8 gray images as learnware's (n, 1, H, W) float array in 0..255."""
    return np.asarray(images, dtype=np.float32)[:, None]


def rkme_config(n_models, width):
    """The image RKME's random networks: ``n_models`` of width 2 x ``width``, depth 3."""
    return {"n_models": n_models,
            "model_config": {"k": 2, "mu": 0, "sigma": None, "net_width": width, "net_depth": 3}}


def rkme(lw, images, args, cache, *, seed, networks=None, steps=None):
    """The package's RKME image specification of ``images``, cached as its own JSON.

    ``seed`` seeds numpy's global generator, from which the package draws its ``sample_size``
    images without a seed of its own; ``networks`` is (how many, width), the run's by default.
    """
    config = rkme_config(*(networks or (args.rkme_models, args.rkme_width)))
    build = {"K": args.rkme_reduced, "sample_size": SAMPLE_SIZE,
             "steps": args.rkme_steps if steps is None else steps}
    path = cache / f"{hash_json([lw.version, hash_array(images), config, build, seed])}.json"
    spec = lw.RKME(cuda_idx=-1, **config)
    if path.exists():
        spec.load(str(path))
        return spec, path
    np.random.seed(seed)
    spec.generate_stat_spec_from_data(as_nchw(images), verbose=False, **build)
    spec.save(str(path))
    return spec, path


def frozen_z_check(lw, first, second, args, cache):
    """Whether the package's reduced set is frozen, on its own code: ``z`` after two steps of
    its optimisation equals ``z`` after none, and two unrelated image sets get the same ``z``."""
    start = rkme(lw, first, args, cache, seed=0, steps=0)[0].get_z()
    moved = rkme(lw, first, args, cache, seed=0, steps=2)[0].get_z()
    other = rkme(lw, second, args, cache, seed=0, steps=0)[0].get_z()
    return bool(np.array_equal(start, moved)), bool(np.array_equal(start, other))


def write_expert_files(spec, expert, work):
    """The expert's own files, as its framework stores them, into the learnware folder."""
    framework = getattr(spec, "framework", "torch")
    if framework == "onnx":
        (work / "model.onnx").write_bytes(expert._model_bytes)  # the graph skmll's hub runs
    elif framework == "sklearn":
        from safetensors.numpy import save_file

        arrays = {"coef": expert.model.coef_, "intercept": expert.model.intercept_,
                  "classes": expert.model.classes_}
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                  work / "pixels.safetensors")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in expert.module.state_dict().items()},
                  work / "weights.safetensors")
    (work / "expert.json").write_text(json.dumps(
        {"spec_class": type(spec).__name__, "spec": dict(vars(spec))}))


def learnware_zip(lw, spec, expert, world, args, cache, folder, *, networks=None, n_images=None):
    """Write ``spec``'s expert as a learnware zip with the RKME of its own training images (a
    seeded draw of ``n_images`` of them if given), its networks ``networks`` if given."""
    work = folder / spec.name
    work.mkdir()
    own, _ = _training_data(spec, world)
    if n_images is not None:
        own = own[np.sort(np.random.default_rng(0).permutation(len(own))[:n_images])]
    _, spec_path = rkme(lw, own, args, cache, seed=0, networks=networks)
    (work / "stat_spec.json").write_bytes(spec_path.read_bytes())
    write_expert_files(spec, expert, work)
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
    return path, len(own)


def semantic_spec(spec=None):
    """A learnware semantic specification: image classification into the world's 20 classes.

    Names and descriptions are neutral, as the hub's are: the market learns nothing from them.
    The user's (``spec`` None) names the data and the task only, so no library is filtered out.
    """
    semantic = {"Data": {"Values": ["Image"], "Type": "Class"},
                "Task": {"Values": ["Classification"], "Type": "Class"}}
    if spec is not None:
        semantic.update({
            "Model": {"Values": ["Others"], "Type": "Optional"},
            "Library": {"Values": [LIBRARY[getattr(spec, "framework", "torch")]],
                        "Type": "Class"},
            "Scenario": {"Values": ["Others"], "Type": "Tag"},
            "License": {"Values": ["MIT"], "Type": "Class"},
            "Description": {"Values": f"an image classifier ({spec.name})", "Type": "String"},
            "Name": {"Values": spec.name, "Type": "String"},
            "Output": {"Dimension": N_WORLD_CLASSES,
                       "Description": {str(c): f"class {c}" for c in range(N_WORLD_CLASSES)}}})
    return semantic


def build_market(lw, bench, args, cache, *, networks=None, n_images=None):
    """A fresh local easy market holding every trained expert of the hub (RKMEs as
    :func:`learnware_zip` builds them with ``networks`` and ``n_images``).

    Returns the market, hub name -> learnware id, the specs, and the pretrained experts left
    out (they have no mapping to the world's classes).
    """
    specs = {spec.name: spec for spec in WORLD_EXPERTS + MARKET_EXPERTS}
    market = lw.market(market_id=hash_json(["skmll", len(bench.hub), networks, n_images]),
                       name="easy", rebuild=True)
    added, left_out = {}, [name for name in bench.hub.names if name not in specs]
    with tempfile.TemporaryDirectory() as folder:
        for name in (name for name in bench.hub.names if name in specs):
            begin = time.perf_counter()
            expert = bench.hub[name].expert  # the hub memoizes outputs around the expert itself
            path, n_used = learnware_zip(lw, specs[name], expert, bench.world, args, cache,
                                         Path(folder), networks=networks, n_images=n_images)
            learnware_id, status = market.add_learnware(str(path), semantic_spec(specs[name]))
            if status <= 0:  # BaseChecker.INVALID_LEARNWARE
                raise RuntimeError(f"the market refused {name}'s learnware (status {status})")
            added[name] = learnware_id
            print(f"  learnware {name} ({getattr(specs[name], 'framework', 'torch')}): RKME of "
                  f"{n_used} training images, added ({time.perf_counter() - begin:.1f} s)",
                  flush=True)
    return market, added, specs, left_out


def restricted_accuracy(scores, task):
    """Accuracy of world-class scores (softmax: probabilities) read on the task's classes only."""
    probabilities = torch.softmax(torch.from_numpy(scores), dim=1).numpy()
    per_class = np.zeros((len(probabilities), len(task.names)))
    for i, (_, ids) in enumerate(HELD_OUT_TASKS[task.name]):
        per_class[:, i] = probabilities[:, list(ids)].sum(axis=1)
    predicted = np.array(task.names, dtype=object)[per_class.argmax(axis=1)]
    return float(np.mean(predicted == task.truth))


def check_learnware(learnware, spec, hub_expert, task):
    """Refuse a learnware whose outputs are not its expert's in skmll's hub: the probability it
    puts on each head's classes must be that head's softmax probability, image by image."""
    mine = torch.softmax(torch.from_numpy(learnware.predict(as_nchw(task.raw))), dim=1).numpy()
    per_head = np.stack([mine[:, list(head)].sum(axis=1) for head in spec.heads], axis=1)
    hub = torch.softmax(torch.from_numpy(hub_expert.logits(task.images)), dim=1).numpy()
    if not np.allclose(per_head, hub, atol=1e-4):
        raise RuntimeError(f"learnware {spec.name} disagrees with the hub's expert by up to "
                           f"{np.abs(per_head - hub).max():.2g} in probability")


def job_selector_accuracy(lw, chosen, task):
    """The job selector's accuracy, one learnware run per image.

    It is trained on the learnwares' reduced sets, which live where RKME puts data (32 x 32,
    standardised by the data's own mean and deviation), so the user's images reach it that way;
    ``use_herding=True`` would build a table RKME of raw images and fail.
    """
    images = as_nchw(task.raw)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(images), size=(32, 32), mode="bilinear", antialias=True).numpy()
    assignment = lw.JobSelectorReuser(chosen, use_herding=False).job_selector(
        (resized - resized.mean()) / resized.std())
    scores = np.zeros((len(images), N_WORLD_CLASSES))
    for i, learnware in enumerate(chosen):
        rows = assignment == i
        if rows.any():
            scores[rows] = learnware.predict(images[rows])
    return restricted_accuracy(scores, task), len(np.unique(assignment))


def search(lw, market, user_spec):
    """The market's answer at its default size: (mixture, single results in score order)."""
    user = lw.BaseUserInfo(semantic_spec=semantic_spec(),
                           stat_info={"RKMEImageSpecification": user_spec})
    results = market.search_learnware(user, max_search_num=MAX_SEARCH_NUM)
    single = [item.learnware for item in results.get_single_results()]
    multiple = results.get_multiple_results()
    return (multiple[0].learnwares if multiple else single[:1]), single


def averaging_accuracy(lw, chosen, task):
    """The package's averaging for classifiers ("vote_by_prob": mean of softmaxed outputs)."""
    averaged = lw.AveragingReuser(chosen, mode="vote_by_prob").predict(as_nchw(task.raw))
    return restricted_accuracy(np.log(np.maximum(averaged, 1e-12)), task)


def learnware_row(lw, market, by_id, task, user_spec, single_accuracy):
    """Search with ``user_spec``, then every reuse: the accuracies and what was found."""
    begin = time.perf_counter()
    chosen, single = search(lw, market, user_spec)
    search_seconds = time.perf_counter() - begin
    selector, selector_used = job_selector_accuracy(lw, chosen, task)
    return {"averaging": averaging_accuracy(lw, chosen, task),
            "top-1": single_accuracy[by_id[single[0].id]],
            "job selector": selector, "selector used": selector_used,
            "mixture": " ".join(by_id[learnware.id] for learnware in chosen),
            "top single": by_id[single[0].id], "search s": search_seconds}


def mll_accuracy(labeler, bench, task, cache_dir):
    """MLL's accuracy with ``labeler``'s hub and how many experts it runs."""
    clf = MLLZeroShotClassifier(task.names, labeler, general_model=bench.conse,
                                cache_dir=cache_dir).fit()
    return float(np.mean(clf.predict(task.images) == task.truth)), clf.n_models_used_


def draw(task, share, seed):
    """A copy of the task holding a seeded draw of ``share`` of its images: one user's data."""
    keep = np.sort(np.random.default_rng(seed).permutation(len(task.truth))[
        :round(share * len(task.truth))])
    user = copy.copy(task)
    user.truth, user.images, user.raw = task.truth[keep], task.images[keep], task.raw[keep]
    return user


def run_task(lw, market, run, task, seed, args):
    """One user (seed) on one task: the learnware reuses, single learnwares and both MLLs."""
    begin = time.perf_counter()
    user_spec, _ = rkme(lw, task.raw, args, run.cache, seed=seed)
    row = {"seed": seed, "task": task.name, "images": len(task.truth),
           "user spec s": time.perf_counter() - begin}
    learnwares = {name: market.get_learnware_by_ids(lw_id) for name, lw_id in run.ids.items()}
    if not run.checked:  # once, on the first user's images
        for name, learnware in learnwares.items():
            check_learnware(learnware, run.specs[name], run.bench.hub[name], task)
        run.checked = True
    single = {name: restricted_accuracy(learnware.predict(as_nchw(task.raw)), task)
              for name, learnware in learnwares.items()}
    row.update(learnware_row(lw, market, run.by_id, task, user_spec, single))
    best = max(single, key=single.get)
    row.update({"best single": single[best], "best learnware": best,
                "mean single": float(np.mean(list(single.values())))})
    for (column, experts), labeler in zip(MLL_ROWS.items(),
                                          (run.market_labeler, run.bench.labeler)):
        row[column], row[experts] = mll_accuracy(labeler, run.bench, task, args.cache_dir)
    return row


def width_check(lw, market, run, task, args):
    """A user's RKME at the package's default width against one at the run's width, both from
    a seeded draw of ``WIDTH_CHECK_IMAGES`` of the user's images: how far apart they are, and
    what each finds."""
    task = draw(task, WIDTH_CHECK_IMAGES / len(task.truth), seed=0)
    found = {}
    for label, networks in (("run's", None), ("default", DEFAULT_WIDTH)):
        begin = time.perf_counter()
        found[label] = rkme(lw, task.raw, args, run.cache, seed=0, networks=networks)[0]
        seconds = time.perf_counter() - begin
        chosen, single = search(lw, market, found[label])
        found[f"{label} width: top single"] = run.by_id[single[0].id]
        found[f"{label} width: mixture"] = " ".join(run.by_id[item.id] for item in chosen)
        found[f"{label} width: averaging"] = averaging_accuracy(lw, chosen, task)
    nearest = min(found["run's"].dist(learnware.specification.get_stat_spec_by_name(
        "RKMEImageSpecification")) for learnware in market.get_learnwares())
    return {"task": task.name, "images": len(task.truth), "default width: spec s": seconds,
            "MMD between the widths": found["run's"].dist(found["default"]),
            "MMD to nearest learnware": nearest,
            **{k: v for k, v in found.items() if "width:" in k}}


def width_markets(lw, bench, args, cache):
    """Both sides at one width, twice: a market and users at the run's width, and a market and
    users at the package's default width, all RKMEs from ``WIDTH_CHECK_IMAGES`` images (each
    expert's own, each seed-0 user's); what each search finds and its reuse accuracies."""
    markets = {}
    for label, networks in (("run's width", None), ("default width", DEFAULT_WIDTH)):
        market, ids, _, _ = build_market(lw, bench, args, cache, networks=networks,
                                         n_images=WIDTH_CHECK_IMAGES)
        markets[label] = market, {lw_id: name for name, lw_id in ids.items()}, networks
    rows = []
    for name, classes in HELD_OUT_TASKS.items():
        user = draw(Task(bench.held_out, name, classes), args.task_share, seed=0)
        task = draw(user, WIDTH_CHECK_IMAGES / len(user.truth), seed=0)
        row = {"task": name, "images": len(task.truth)}
        for label, (market, by_id, networks) in markets.items():
            chosen, single = search(lw, market, rkme(lw, task.raw, args, cache, seed=0,
                                                     networks=networks)[0])
            row[f"{label}: top single"] = by_id[single[0].id]
            row[f"{label}: mixture"] = " ".join(by_id[item.id] for item in chosen)
            row[f"{label}: averaging"] = averaging_accuracy(lw, chosen, task)
            row[f"{label}: top-1"] = restricted_accuracy(
                single[0].predict(as_nchw(task.raw)), task)
        rows.append(row)
        print(row, flush=True)
    return rows


def spread(values):
    """``mean ± sd`` over seeds (sample standard deviation; a lone seed has none)."""
    values = np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {sd:.3f}"


def summary_rows(rows):
    """Per task, and over tasks (the mean of a seed's six tasks), each method's mean ± sd."""
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    seeds = sorted({row["seed"] for row in rows})
    table = []
    for task in tasks:
        mine = [row for row in rows if row["task"] == task]
        table.append({"task": task, **{c: spread([row[c] for row in mine]) for c in SUMMARY},
                      "mixture sizes": " ".join(str(len(row["mixture"].split())) for row in mine),
                      **{c: f"{np.mean([row[c] for row in mine]):.1f}" for c in MLL_EXPERTS}})
    per_seed = {c: [np.mean([row[c] for row in rows if row["seed"] == s]) for s in seeds]
                for c in SUMMARY}
    table.append({"task": "**mean**", **{c: spread(v) for c, v in per_seed.items()},
                  "mixture sizes": "", **{c: "" for c in MLL_EXPERTS}})
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "skmll-learnware"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3, help="users per task (image draws)")
    parser.add_argument("--task-share", type=float, default=0.5,
                        help="share of a task's held-out images one user holds (a seeded draw)")
    parser.add_argument("--rkme-models", type=int, default=4,
                        help=f"random networks per RKME (package default {DEFAULT_WIDTH[0]})")
    parser.add_argument("--rkme-width", type=int, default=16,
                        help=f"their width is 2 x this (package default {DEFAULT_WIDTH[1]})")
    parser.add_argument("--rkme-reduced", type=int, default=50, help="K (package default 50)")
    parser.add_argument("--rkme-steps", type=int, default=0,
                        help="package default 100; z never moves (see the module docstring)")
    parser.add_argument("--width-check", action=argparse.BooleanOptionalAction, default=True,
                        help="also build the first seed's user RKMEs at the default width")
    parser.add_argument("--width-markets", action="store_true",
                        help="only compare markets and users built at the run's width and at "
                             "the default width, from few images (writes width.md)")
    args = parser.parse_args()
    begin = time.perf_counter()
    lw = import_learnware()
    memoize_search_kernel()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = resolve_cache_dir(args.cache_dir) / "learnware-rkme"
    cache.mkdir(parents=True, exist_ok=True)

    bench = load_benchmark(dev_fashion=2000, fashion_test=2000, cache_dir=args.cache_dir,
                           hub_size="large")
    print(f"hub loaded and labelled ({time.perf_counter() - begin:.0f} s)", flush=True)
    if args.width_markets:
        rows = width_markets(lw, bench, args, cache)
        (out / "width.md").write_text("\n".join([
            "# Learnware search at two widths, each market and its users at one width\n",
            f"Command: `{command(args)}` ({time.perf_counter() - begin:.0f} s). RKMEs from "
            f"{WIDTH_CHECK_IMAGES} images (each expert's own training images, each seed-0 "
            f"user's images), K = {args.rkme_reduced}, {args.rkme_steps} steps; the run's width "
            f"{args.rkme_models} networks of 2 x {args.rkme_width}, the default "
            f"{DEFAULT_WIDTH[0]} of 2 x {DEFAULT_WIDTH[1]}.\n",
            markdown(rows, list(rows[0]))]) + "\n")
        return
    market, ids, specs, left_out = build_market(lw, bench, args, cache)
    print(f"market: {len(ids)} learnwares ({time.perf_counter() - begin:.0f} s)", flush=True)
    run = argparse.Namespace(
        bench=bench, cache=cache, ids=ids, specs=specs, checked=False,
        by_id={lw_id: name for name, lw_id in ids.items()},
        market_labeler=ModelLabeler(bench.sdag, cache_dir=args.cache_dir, verbose=0).fit(
            bench.hub.subset(list(ids))))

    frozen = frozen_z_check(lw, *(Task(bench.held_out, name, HELD_OUT_TASKS[name]).raw[:100]
                                  for name in ("shoes", "numerals")), args, cache)
    rows, widths = [], []
    for seed in range(args.seeds):
        for name, classes in HELD_OUT_TASKS.items():
            rows.append(run_task(lw, market, run, draw(Task(bench.held_out, name, classes),
                                                       args.task_share, seed), seed, args))
            print(rows[-1], flush=True)
        write_report(out, args, rows, widths, run, left_out, frozen, time.perf_counter() - begin)
    for name, classes in HELD_OUT_TASKS.items() if args.width_check else ():
        task = draw(Task(bench.held_out, name, classes), args.task_share, seed=0)
        widths.append(width_check(lw, market, run, task, args))
        print(widths[-1], flush=True)
    write_report(out, args, rows, widths, run, left_out, frozen, time.perf_counter() - begin)


def command(args):
    """The command line that reproduces this run."""
    flags = f"--out {args.out} --seeds {args.seeds} --task-share {args.task_share} " \
            f"--rkme-models {args.rkme_models} --rkme-width {args.rkme_width} " \
            f"--rkme-steps {args.rkme_steps}"
    if args.width_markets:
        flags += " --width-markets"
    return f".venv-learnware/bin/python benchmarks/bench_learnware.py {flags}" + (
        "" if args.width_check else " --no-width-check")


def write_report(out, args, rows, widths, run, left_out, frozen, seconds):
    """learnware.md (the summary, every run, the width check) and learnware.csv (every run)."""
    frameworks = [getattr(run.specs[name], "framework", "torch") for name in run.ids]
    report = [
        "# Learnware market vs MLL (large hub, held-out tasks)\n",
        f"Command: `{command(args)}` ({seconds:.0f} s).\n",
        f"RKME: K = {args.rkme_reduced}, {args.rkme_steps} steps, {args.rkme_models} random "
        f"networks of width 2 x {args.rkme_width}, at most {SAMPLE_SIZE} images; each "
        "learnware's from its expert's own training images, each user's from all of its "
        f"images (a seeded draw of {args.task_share:.0%} of the task's held-out images per "
        f"seed); max_search_num {MAX_SEARCH_NUM}. Checked on the package in this run: the reduced "
        f"set after 2 steps of its optimisation equals the one after none: {frozen[0]}; the "
        f"shoes' and the numerals' images get the same reduced set: {frozen[1]}.\n",
        f"Market: {len(run.ids)} learnwares ({frameworks.count('torch')} PyTorch, "
        f"{frameworks.count('onnx')} ONNX, {frameworks.count('sklearn')} scikit-learn): "
        f"{', '.join(run.ids)}. Left out (pretrained, no mapping to the world's classes): "
        f"{', '.join(left_out)}. Each learnware's outputs were checked against its expert's "
        "in skmll's hub.\n",
        "Accuracy on the task's classes, mean ± sd over seeds. 'averaging' and 'job selector' "
        "reuse the found mixture (the job selector is not meant for images: the package's "
        "docs call it 'only effective for tabular data'); 'top-1' the top single result; "
        "'best single' / 'mean single' every learnware alone. MLL: skmll defaults with the "
        "ConSE patch, with a hub of the market's experts alone and with the full hub.\n",
        markdown(summary_rows(rows), ["task", *SUMMARY, "mixture sizes", *MLL_EXPERTS]),
        "\n## Every run\n",
        markdown(rows, list(rows[0]))]
    if widths:
        report += [f"\n## Width: users' RKMEs from {WIDTH_CHECK_IMAGES} images at the run's "
                   f"width and at the package's default ({DEFAULT_WIDTH[0]} networks of width "
                   f"2 x {DEFAULT_WIDTH[1]}), seed 0\n",
                   markdown(widths, list(widths[0]))]
    (out / "learnware.md").write_text("\n".join(report) + "\n")
    with open(out / "learnware.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(report))


if __name__ == "__main__":
    main()
