"""The paper's metrics: Acc(c) on the covered part of a task, coverage Cvr, Acc(a) overall."""

import numpy as np


def coverage(classes, covered):
    """Cvr: the fraction of a task's classes that the hub serves."""
    classes = list(classes)
    if not classes:
        raise ValueError("classes is empty")
    return len(set(covered) & set(classes)) / len(classes)


def accuracy_covered(y_true, y_pred, covered):
    """Acc(c): accuracy on the samples whose true class is covered (NaN when there are none)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    mask = np.isin(y_true, list(covered))
    return float(np.mean(y_true[mask] == y_pred[mask])) if mask.any() else float("nan")


def accuracy_all(y_true, y_pred):
    """Acc(a): accuracy on the whole task."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of one shape; got "
                         f"{y_true.shape} and {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def zero_shot_report(y_true, y_pred, covered, classes=None):
    """All three metrics in a dict: ``acc_covered``, ``coverage``, ``acc_all``.

    Examples
    --------
    >>> zero_shot_report(["a", "b", "c", "c"], ["a", "c", "c", "b"], covered=["a", "b"])
    {'acc_covered': 0.5, 'coverage': 0.6666666666666666, 'acc_all': 0.5}
    """
    classes = sorted(set(np.asarray(y_true, dtype=object).tolist())) if classes is None else classes
    return {"acc_covered": accuracy_covered(y_true, y_pred, covered),
            "coverage": coverage(classes, covered),
            "acc_all": accuracy_all(y_true, y_pred)}
