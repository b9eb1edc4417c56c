import numpy as np
import pytest

from skmll.metrics import accuracy_all, accuracy_covered, coverage, zero_shot_report


def test_metrics_by_hand():
    y_true = ["cat", "cat", "dog", "owl"]
    y_pred = ["cat", "dog", "dog", "cat"]
    assert coverage(["cat", "dog", "owl", "eel"], ["cat", "dog"]) == 0.5
    assert accuracy_covered(y_true, y_pred, ["cat", "dog"]) == pytest.approx(2 / 3)
    assert accuracy_all(y_true, y_pred) == 0.5
    assert np.isnan(accuracy_covered(y_true, y_pred, []))
    report = zero_shot_report(y_true, y_pred, ["owl"])
    assert report == {"acc_covered": 0.0, "coverage": 1 / 3, "acc_all": 0.5}


def test_metric_errors():
    with pytest.raises(ValueError, match="same shape|one shape"):
        accuracy_all(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        coverage([], [])
