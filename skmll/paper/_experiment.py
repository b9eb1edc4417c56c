"""The paper's Table 1: MLL, CLIP alone and MLL patched by CLIP on each evaluation task."""

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from .._classifier import MLLZeroShotClassifier
from ..hub import ModelHub, as_image_batch
from ..labelling import ModelLabeler, load_label_dir, save_label_dir
from ..metrics import zero_shot_report
from ..utils import atomic_write_bytes
from ._hub import paper_hub_file

METHODS = ("MLL", "CLIP", "MLL+CLIP")
COLUMNS = ("dataset", "method", "n_classes", "n_images", "acc_covered", "coverage", "acc_all")
# images read and predicted at a time: a test split is never decoded whole into memory
_CHUNK = 256


def label_hub(hub, labels_dir, *, sdag=None, batch_size=64, n_jobs=None, on_error="raise",
              verbose=0):
    """Label ``hub`` on ``sdag`` into the label directory ``labels_dir``, or open it.

    With ``sdag`` (e.g. :func:`imagenet_sdag`), every expert is pre-tested on it, through the
    directory's cache (a rerun labels only new experts and nodes), and the directory is written.
    Without it, the directory's labels are used as they are (labelled elsewhere).

    Parameters
    ----------
    hub : path, ModelHub or None
        The experts; None is the shipped paper hub when labelling, and the directory's own
        hub file (every expert declared) when opening it.
    labels_dir : path
    sdag : SemanticDAG or None, default=None
    batch_size, n_jobs, on_error, verbose
        See :class:`~skmll.labelling.ModelLabeler`.

    Returns
    -------
    labeler : ModelLabeler
        Fitted.
    """
    if sdag is None:
        return load_label_dir(labels_dir, hub=hub, verbose=verbose)
    if hub is None:
        with paper_hub_file() as path:
            hub = ModelHub.from_toml(path)
    elif not isinstance(hub, ModelHub):
        hub = ModelHub.from_toml(hub)
    labeler = ModelLabeler(sdag, batch_size=batch_size, n_jobs=n_jobs, cache_dir=labels_dir,
                           on_error=on_error, verbose=verbose).fit(hub)
    save_label_dir(labeler, labels_dir)
    return labeler


def load_clip(model_name="ViT-B-32", pretrained="openai", *, checkpoint_path=None, device="cpu",
              batch_size=64):
    """The baseline and patch: an open_clip CLIP (the paper's ViT-B/32 by default).

    ``pretrained`` is an open_clip tag, downloaded by open_clip; ``checkpoint_path`` a local
    state dict for ``model_name`` instead (then ``pretrained`` is ignored).
    """
    from ..reuse import CLIPZeroShot

    if checkpoint_path is not None:
        return CLIPZeroShot.from_open_clip(model_name, checkpoint_path=checkpoint_path,
                                           device=device, batch_size=batch_size)
    try:
        return CLIPZeroShot.from_open_clip(model_name, pretrained, device=device,
                                           batch_size=batch_size)
    except RuntimeError as exc:
        raise RuntimeError(f"CLIP {model_name} ({pretrained}) could not be loaded: {exc}. "
                           "open_clip downloads its weights once with the network (HF_HUB_OFFLINE "
                           "unset); offline, give a local state dict (checkpoint_path=, "
                           "--clip-checkpoint)") from exc


def _in_chunks(predict, images):
    return np.concatenate([predict(images[start:start + _CHUNK])
                           for start in range(0, len(images), _CHUNK)])


def _clip_predictions(clip, task):
    names = np.asarray(task.class_names, dtype=object)

    def predict(paths):
        return names[np.argmax(clip.predict_proba(as_image_batch(paths), task.class_names), 1)]
    return _in_chunks(predict, task.images)


def _row(task, method, predictions, covered):
    report = zero_shot_report(task.labels, predictions, covered, task.class_names)
    return {"dataset": task.name, "method": method, "n_classes": len(task.class_names),
            "n_images": len(task.images), **report}


def evaluate_task(task, labeler, clip, *, k=2):
    """Table 1's three rows for one :class:`ZeroShotTask`: MLL, CLIP, MLL+CLIP.

    MLL alone predicts only the classes its hub covers (its Acc(a) counts the images of the
    other classes as errors); CLIP covers every class; MLL+CLIP sends the uncovered classes to
    CLIP (the paper's patch), its coverage is MLL's.
    """
    patched = MLLZeroShotClassifier(task.class_names, labeler, k=k, general_model=clip).fit()
    covered = patched.covered_classes_
    if covered:
        alone = MLLZeroShotClassifier(task.class_names, labeler, k=k,
                                      on_uncovered="drop").fit()
        mll = _in_chunks(alone.predict, task.images)
    else:   # no expert serves any class: MLL alone answers nothing
        mll = np.full(len(task.images), None, dtype=object)
    return [_row(task, "MLL", mll, covered),
            _row(task, "CLIP", _clip_predictions(clip, task), task.class_names),
            _row(task, "MLL+CLIP", _in_chunks(patched.predict, task.images), covered)]


def _nan_mean(values):
    """The mean of the values that are not NaN; NaN when all are."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _mean_rows(rows):
    means = []
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        means.append({"dataset": "mean", "method": method,
                      "n_classes": sum(r["n_classes"] for r in mine),
                      "n_images": sum(r["n_images"] for r in mine),
                      **{key: _nan_mean([r[key] for r in mine])
                         for key in ("acc_covered", "coverage", "acc_all")}})
    return means


def run_paper_experiment(tasks, labeler, clip, *, k=2, out_dir=None, verbose=0):
    """Evaluate MLL, CLIP and MLL+CLIP on every task; Table 1 as rows, optionally written.

    Parameters
    ----------
    tasks : iterable of ZeroShotTask
        E.g. :func:`load_paper_task` of each name in :data:`PAPER_DATASETS`.
    labeler : ModelLabeler
        Fitted (:func:`label_hub`).
    clip : object with ``predict_proba(images, class_names)``
        The baseline and the patch: :meth:`skmll.reuse.CLIPZeroShot.from_open_clip`
        ``("ViT-B-32", "openai")`` in the paper.
    k : int, default=2
        Experts per class.
    out_dir : path or None, default=None
        Receives ``table1.csv`` and ``table1.md``.
    verbose : int, default=0
        Reports each task on stderr.

    Returns
    -------
    rows : list of dict
        One per (task, method) in :data:`COLUMNS`, then the mean over tasks per method
        (``dataset="mean"``). Accuracies and coverage are fractions; ``acc_covered`` is NaN
        when no class is covered.
    """
    rows = []
    for task in tasks:
        if verbose:
            print(f"evaluating {task.name}: {len(task.class_names)} classes, "
                  f"{len(task.images)} images", file=sys.stderr)
        rows.extend(evaluate_task(task, labeler, clip, k=k))
    if not rows:
        raise ValueError("no task to evaluate")
    rows.extend(_mean_rows(rows))
    if out_dir is not None:
        write_table(rows, out_dir)
    return rows


def format_table(rows):
    """Table 1 as markdown, metrics in percent (``-`` for Acc(c) when nothing is covered).

    Examples
    --------
    >>> print(format_table([{"dataset": "pets", "method": "CLIP", "n_classes": 2, "n_images": 4,
    ...                      "acc_covered": 0.5, "coverage": 1.0, "acc_all": 0.5}]))
    | dataset | method | classes | images | Acc(c) | Cvr | Acc(a) |
    |---|---|---:|---:|---:|---:|---:|
    | pets | CLIP | 2 | 4 | 50.0 | 100.0 | 50.0 |
    """
    def percent(value):
        return "-" if math.isnan(value) else f"{100 * value:.1f}"

    lines = ["| dataset | method | classes | images | Acc(c) | Cvr | Acc(a) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['dataset']} | {r['method']} | {r['n_classes']} | {r['n_images']} | "
              f"{percent(r['acc_covered'])} | {percent(r['coverage'])} | "
              f"{percent(r['acc_all'])} |" for r in rows]
    return "\n".join(lines)


def write_table(rows, out_dir):
    """Write ``rows`` to ``out_dir/table1.csv`` (fractions) and ``out_dir/table1.md``, each
    atomically (a failed write leaves the previous file whole)."""
    out_dir = Path(out_dir)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "table1.csv", buffer.getvalue().encode("utf-8"))
    atomic_write_bytes(out_dir / "table1.md", (format_table(rows) + "\n").encode("utf-8"))
