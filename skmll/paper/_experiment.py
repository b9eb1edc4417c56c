"""The paper's Table 1: CLIP and MLL patched by CLIP on each task, as the paper defines it.

Acc(c) is over the images of the classes the MLL system covers, for every row; Cvr is the
fraction of classes covered; Acc(a) is over the whole task, where the paper's "MLL" row is MLL
patched by CLIP. Rows come for the paper's configuration and for skmll's defaults, with the
published figures beside ours.
"""

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from .._classifier import MLLZeroShotClassifier
from ..hub import ModelHub, as_image_batch
from ..labelling import ModelLabeler, load_label_dir, save_label_dir
from ..utils import atomic_write_bytes
from ._hub import paper_hub_file
from ._published import MEAN, PAPER_COLUMNS, published

# The paper's single prompt ("a photo of a"), written as CLIP's own prompt list writes it.
PAPER_PROMPT = "a photo of a {}."
ENSEMBLE = "CLIP (10 prompts)"
METHODS = ("CLIP", ENSEMBLE, "MLL")
# The paper's method as it states it: Eq. 12-13 entropy reuse, Eq. 4 logit labels, one round
# of mutual best match on cosine similarity, CHCO, no threshold beta (it states no value),
# and the patch as Proposition 4.1 writes it. k is set apart (the paper's 2 by default).
PAPER_CONFIGURATION = {"reuse": "entropy", "label_statistic": "logit", "name_bonus": 0.0,
                       "combination": "chco", "beta": None, "patch_calibration": None}
CONFIGURATIONS = {"paper": PAPER_CONFIGURATION, "skmll": {}}
_METRICS = ("acc_covered", "coverage", "acc_all")
_PUBLISHED_KEYS = ("paper_acc_covered", "paper_coverage", "paper_acc_all")
COLUMNS = ("dataset", "configuration", "method", "n_classes", "n_images", *_METRICS,
           *_PUBLISHED_KEYS)
# images read and predicted at a time: a test split is never decoded whole into memory
_CHUNK = 256


def label_hub(hub, labels_dir, *, sdag=None, batch_size=64, n_jobs=None, on_error="raise",
              device=None, verbose=0):
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
    batch_size, n_jobs, on_error, device, verbose
        See :class:`~skmll.labelling.ModelLabeler` (``device``: where every expert runs).

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
                           on_error=on_error, device=device, verbose=verbose).fit(hub)
    save_label_dir(labeler, labels_dir)
    return labeler


def load_clip(model_name="ViT-B-32", pretrained="openai", *, checkpoint_path=None,
              quick_gelu=None, templates=(PAPER_PROMPT,), device="cpu", batch_size=64):
    """The baseline and patch: an open_clip CLIP (the paper's ViT-B/32 and prompt by default).

    ``pretrained`` is an open_clip tag, downloaded by open_clip; ``checkpoint_path`` a local
    state dict for ``model_name`` instead, holding the weights of the tag ``pretrained`` (the
    paper's: OpenAI's). ``quick_gelu`` None builds the towers as that tag was trained
    (QuickGELU for ``"openai"``; pass False for a checkpoint trained with GELU). ``templates``
    are the prompts (``"default"``: the 10-prompt ensemble; see
    :meth:`skmll.reuse.CLIPZeroShot.from_open_clip`).
    """
    from ..reuse import CLIPZeroShot, trained_with_quick_gelu

    options = {"templates": templates, "device": device, "batch_size": batch_size}
    if checkpoint_path is not None:
        if quick_gelu is None:
            quick_gelu = pretrained is not None and trained_with_quick_gelu(model_name,
                                                                            pretrained)
        return CLIPZeroShot.from_open_clip(model_name, checkpoint_path=checkpoint_path,
                                           quick_gelu=quick_gelu, **options)
    try:
        return CLIPZeroShot.from_open_clip(model_name, pretrained, **options)
    except RuntimeError as exc:
        raise RuntimeError(f"CLIP {model_name} ({pretrained}) could not be loaded: {exc}. "
                           "open_clip downloads its weights once with the network (HF_HUB_OFFLINE "
                           "unset); offline, give a local state dict (checkpoint_path=, "
                           "--clip-checkpoint)") from exc


def _in_chunks(compute, images):
    return np.concatenate([compute(images[start:start + _CHUNK])
                           for start in range(0, len(images), _CHUNK)])


def _clip_proba(clip, task):
    def proba_of(paths):
        return clip.predict_proba(as_image_batch(paths), task.class_names)
    return _in_chunks(proba_of, task.images)


def _row(task, configuration, method, covered, predicted_all, predicted_covered):
    """One row: Acc(c) from the predictions on the covered classes' images (the task reduced
    to its covered classes), Acc(a) from those on every image, and the paper's figures."""
    on_covered = np.isin(task.labels, covered)
    acc_covered = (float(np.mean(predicted_covered == task.labels[on_covered]))
                   if on_covered.any() else math.nan)
    paper = published(task.name, method) if configuration == "paper" else None
    return {"dataset": task.name, "configuration": configuration, "method": method,
            "n_classes": len(task.class_names), "n_images": len(task.images),
            "acc_covered": acc_covered, "coverage": len(covered) / len(task.class_names),
            "acc_all": float(np.mean(predicted_all == task.labels)),
            **dict(zip(_PUBLISHED_KEYS, paper or (math.nan,) * 3))}


def _clip_row(task, configuration, method, proba, covered):
    """CLIP's row: its choice among all classes, and among the covered classes only."""
    names = np.asarray(task.class_names, dtype=object)
    columns = [task.class_names.index(c) for c in covered]
    among_covered = np.zeros(0, dtype=object)
    if columns:
        on_covered = np.isin(task.labels, covered)
        among_covered = names[columns][np.argmax(proba[on_covered][:, columns], axis=1)]
    return _row(task, configuration, method, covered, names[np.argmax(proba, axis=1)],
                among_covered)


def _mll_row(task, configuration, labeler, clip, params):
    """The paper's MLL row, and the covered classes: Acc(c) of MLL alone on the covered
    classes' images, choosing among them; Acc(a) of MLL patched by CLIP on every image."""
    patched = MLLZeroShotClassifier(task.class_names, labeler, general_model=clip,
                                    **params).fit()
    covered = patched.covered_classes_
    on_covered = [image for image, label in zip(task.images, task.labels) if label in covered]
    among_covered = np.zeros(0, dtype=object)
    if on_covered:
        alone = MLLZeroShotClassifier(task.class_names, labeler, on_uncovered="drop",
                                      **params).fit()
        among_covered = _in_chunks(alone.predict, on_covered)
    row = _row(task, configuration, "MLL", covered,
               _in_chunks(patched.predict, task.images), among_covered)
    return row, covered


def evaluate_task(task, labeler, clip, *, clip_ensemble=None, k=2,
                  configurations=CONFIGURATIONS, device=None):
    """Table 1's rows for one :class:`ZeroShotTask`, per MLL configuration.

    For each configuration (default: the paper's and skmll's defaults, :data:`CONFIGURATIONS`)
    the rows "CLIP" (``clip``: the paper's prompt), "CLIP (10 prompts)" (``clip_ensemble``, if
    given) and "MLL". Every row's Acc(c) is over the images of the classes that configuration
    covers, each method choosing among the covered classes only (the part of the task the MLL
    system covers, as a task of its own); Cvr is the configuration's coverage; Acc(a) is over
    every image and class. The MLL row is MLL alone in Acc(c) and MLL patched by ``clip`` in
    Acc(a), as in the paper.

    Parameters
    ----------
    task : ZeroShotTask
    labeler : ModelLabeler
        Fitted.
    clip : object with ``predict_proba(images, class_names)``
        The baseline and the patch.
    clip_ensemble : object with ``predict_proba(images, class_names)`` or None, default=None
        The same model with the 10-prompt ensemble, reported beside it.
    k : int, default=2
        Experts per class (the paper's 2).
    configurations : dict of str to dict, default=CONFIGURATIONS
        Name to :class:`~skmll.MLLZeroShotClassifier` parameters.
    device : str or None, default=None
        Where the selected experts run.

    Returns
    -------
    rows : list of dict
        In :data:`COLUMNS`; the ``paper_*`` entries are the published figures (NaN where the
        paper has none: other configurations and methods).
    """
    probabilities = {"CLIP": _clip_proba(clip, task)}
    if clip_ensemble is not None:
        probabilities[ENSEMBLE] = _clip_proba(clip_ensemble, task)
    rows = []
    for configuration, params in configurations.items():
        mll, covered = _mll_row(task, configuration, labeler, clip,
                                {"k": k, "device": device, **params})
        rows += [_clip_row(task, configuration, method, proba, covered)
                 for method, proba in probabilities.items()]
        rows.append(mll)
    return rows


def _nan_mean(values):
    """The mean of the values that are not NaN; NaN when all are."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _mean_rows(rows):
    every_paper_task = {r["dataset"] for r in rows} == set(PAPER_COLUMNS)
    means = []
    for key in dict.fromkeys((r["configuration"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["configuration"], r["method"]) == key]
        paper = published(MEAN, key[1]) if key[0] == "paper" and every_paper_task else None
        means.append({"dataset": MEAN, "configuration": key[0], "method": key[1],
                      "n_classes": sum(r["n_classes"] for r in mine),
                      "n_images": sum(r["n_images"] for r in mine),
                      **{name: _nan_mean([r[name] for r in mine]) for name in _METRICS},
                      **dict(zip(_PUBLISHED_KEYS, paper or (math.nan,) * 3))})
    return means


def run_paper_experiment(tasks, labeler, clip, *, clip_ensemble=None, k=2,
                         configurations=CONFIGURATIONS, device=None, out_dir=None, verbose=0):
    """Table 1 on every task (:func:`evaluate_task`), then the means; optionally written.

    Parameters
    ----------
    tasks : iterable of ZeroShotTask
        E.g. :func:`load_paper_task` of each name in :data:`PAPER_DATASETS`.
    labeler : ModelLabeler
        Fitted (:func:`label_hub`).
    clip : object with ``predict_proba(images, class_names)``
        The baseline and the patch: :func:`load_clip` (ViT-B/32, OpenAI weights, the paper's
        prompt) in the paper.
    clip_ensemble : object or None, default=None
        The same model with the 10-prompt ensemble (``load_clip(templates="default")``).
    k : int, default=2
        Experts per class.
    configurations : dict of str to dict, default=CONFIGURATIONS
    device : str or None, default=None
        Where the selected experts run.
    out_dir : path or None, default=None
        Receives ``table1.csv`` and ``table1.md``.
    verbose : int, default=0
        Reports each task on stderr.

    Returns
    -------
    rows : list of dict
        One per (task, configuration, method) in :data:`COLUMNS`, then the mean over tasks
        per (configuration, method) (``dataset="mean"``; the paper's average beside it only
        when all seven of its tasks were evaluated). Accuracies and coverage are fractions;
        ``acc_covered`` is NaN when no class is covered.
    """
    rows = []
    for task in tasks:
        if verbose:
            print(f"evaluating {task.name}: {len(task.class_names)} classes, "
                  f"{len(task.images)} images", file=sys.stderr)
        rows.extend(evaluate_task(task, labeler, clip, clip_ensemble=clip_ensemble, k=k,
                                  configurations=configurations, device=device))
    if not rows:
        raise ValueError("no task to evaluate")
    rows.extend(_mean_rows(rows))
    if out_dir is not None:
        write_table(rows, out_dir)
    return rows


def _percent(value):
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def format_table(rows):
    """Table 1 as markdown, in percent, the paper's figures beside ours (``-``: none).

    Examples
    --------
    >>> nan = float("nan")
    >>> print(format_table([{"dataset": "pets", "configuration": "skmll", "method": "CLIP",
    ...                      "n_classes": 2, "n_images": 4, "acc_covered": 0.5,
    ...                      "coverage": 1.0, "acc_all": 0.5, "paper_acc_covered": nan,
    ...                      "paper_coverage": nan, "paper_acc_all": nan}]))
    | dataset | configuration | method | classes | images | Acc(c) | Cvr | Acc(a) \
| paper Acc(c) | paper Cvr | paper Acc(a) |
    |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
    | pets | skmll | CLIP | 2 | 4 | 50.0 | 100.0 | 50.0 | - | - | - |
    """
    lines = ["| dataset | configuration | method | classes | images | Acc(c) | Cvr | Acc(a) "
             "| paper Acc(c) | paper Cvr | paper Acc(a) |",
             "|---|---|---|" + "---:|" * 8]
    lines += ["| " + " | ".join([r["dataset"], r["configuration"], r["method"],
                                 str(r["n_classes"]), str(r["n_images"]),
                                 *(_percent(r[key]) for key in (*_METRICS, *_PUBLISHED_KEYS))])
              + " |" for r in rows]
    return "\n".join(lines)


_NOTE = """Acc(c): accuracy on the images of the classes the configuration covers, every method \
choosing among those classes; Cvr: the fraction of classes covered; Acc(a): accuracy on the \
whole task. The MLL row is MLL alone in Acc(c) and MLL patched by CLIP in Acc(a). "paper": \
the paper's method (Eq. 12-13 entropy reuse, Eq. 4 logit labels, mutual best match on cosine \
similarity, the unmodified patch), its text encoder (OpenAI text-embedding-3-large) stood in \
for by all-MiniLM-L6-v2; "skmll": skmll's defaults. CLIP uses the paper's prompt "a photo of \
a {}."; "CLIP (10 prompts)" the prompt ensemble. paper Acc(c), Cvr, Acc(a): the figures \
published in the paper's Table 1."""


def write_table(rows, out_dir):
    """Write ``rows`` to ``out_dir/table1.csv`` (fractions) and ``out_dir/table1.md``, each
    atomically (a failed write leaves the previous file whole)."""
    out_dir = Path(out_dir)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "table1.csv", buffer.getvalue().encode("utf-8"))
    atomic_write_bytes(out_dir / "table1.md",
                       (format_table(rows) + "\n\n" + _NOTE + "\n").encode("utf-8"))
