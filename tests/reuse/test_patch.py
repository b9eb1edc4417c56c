"""The general-model patch: checked general-model output, calibration, the classifier end to end.

The end-to-end case: covered classes are digits 0-4, served by small digit experts; the extra
class "harmonica" has no SDAG node. The general model is ConSE over an expert trained only on
digits 5-9, whose five heads are *named* as instruments: it knows instruments (digit 5 plays
the harmonica here), and on digits 0-4, which it never saw, it is confident anyway, so the
paper's rule hands their images to "harmonica".
"""

import numpy as np
import pytest
from sklearn.base import clone

from skmll import ConSE, MLLZeroShotClassifier, ModelHub, ModelLabeler
from skmll.reuse import (
    check_general_proba,
    fit_patch_calibration,
    general_model_proba,
    patch_probabilities,
    routing_scores,
)
from skmll.reuse import _patch

from ..conftest import DIGIT_NAMES, DIGIT_SYNSETS, CountingExpert

INSTRUMENTS = ["harmonica", "cello", "trumpet", "banjo", "drum"]
TASK = ["zero", "one", "two", "three", "four", "harmonica"]
TASK_NODES = DIGIT_SYNSETS[:5] + [None]


class FixedOutput:
    """A general model that answers every call with the same table (what is being checked)."""

    name = "fixed-table"

    def __init__(self, table):
        self.table = table

    def predict_proba(self, images, class_names):
        return self.table


class SameRows(FixedOutput):
    """A general model that gives every image the same row."""

    def predict_proba(self, images, class_names):
        return np.tile(self.table, (len(images), 1))


class SharedCounter(CountingExpert):
    """Counts images in one place, however often clones deep-copy the model around it."""

    def __deepcopy__(self, memo):
        return self


# --- checking a general model's output ----------------------------------------------------------

@pytest.mark.parametrize("table, message", [
    (np.full((3, 2), 0.5), r"shape \(3, 2\) for 2 images"),
    (np.full((2, 3), 1 / 3), "3 columns for 2 class names"),
    ([[np.nan, 1.0], [0.5, 0.5]], r"NaN in 1 row\(s\), first \[0\]"),
    ([[0.5, 0.5], [np.inf, 0.0]], r"infinite values in 1 row\(s\), first \[1\]"),
    ([[1.5, -0.5], [0.5, 0.5]], "negative values"),
    ([[0.5, 0.5], [0.0, 0.0]], r"all-zero rows: 1 row\(s\), first \[1\]"),
    ([[2.0, 3.0], [0.1, 0.2]], "do not sum to 1"),
    ([["a", "b"], ["c", "d"]], "not a numeric array"),
])
def test_bad_general_output_is_named(table, message):
    images = np.zeros((2, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match=f"general model 'fixed-table': predict_proba returned "
                                         f".*{message}"):
        general_model_proba(FixedOutput(table), images, ["sun", "moon"])


def test_good_general_output_is_renormalised_exactly():
    proba = check_general_proba(np.array([[0.2, 0.8000004], [1.0, 0.0]], np.float32), 2, 2)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_patch_probabilities_checks_its_inputs():
    covered = np.array([True, True, False])
    with pytest.raises(ValueError, match="NaN"):
        patch_probabilities(np.full((1, 2), 0.5), np.array([[np.nan, 0.5, 0.5]]), covered)
    with pytest.raises(ValueError, match="3 columns for 2 covered classes"):
        patch_probabilities(np.full((1, 3), 1 / 3), np.full((1, 3), 1 / 3), covered)
    with pytest.raises(ValueError, match="bias"):
        patch_probabilities(np.full((1, 2), 0.5), np.full((1, 3), 1 / 3), covered, bias=0.5)


# --- calibration math --------------------------------------------------------------------------

def test_routing_scores_by_hand():
    proba = np.array([[0.5, 0.2, 0.2, 0.1],     # covered mass 0.7, top uncovered 0.2
                      [0.05, 0.05, 0.6, 0.3]])  # covered mass 0.1, top uncovered 0.6
    covered = np.array([True, True, False, False])
    np.testing.assert_allclose(routing_scores(proba, covered),
                               [np.log(0.2 / 0.7), np.log(0.6 / 0.1)])
    assert np.isfinite(routing_scores(np.array([[1.0, 0.0]]), np.array([True, False]))).all()


def test_threshold_keeps_the_allowed_fraction():
    # 12 covered scores; 25% may be routed: 3 above the threshold, the 4th largest (2.0).
    scores = [-5, -4, -3, -3, -2, -1, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    bias = fit_patch_calibration(scores, max_covered_loss=0.25)
    assert bias == -2.0
    assert np.sum(np.array(scores) + bias > 0) == 3
    assert fit_patch_calibration(scores, max_covered_loss=0.0) == -6.0   # nothing routed
    assert fit_patch_calibration([-3.0, -1.0], max_covered_loss=0.0) == 0.0   # the paper's rule


def test_uncovered_reference_images_raise_the_threshold_only_where_it_separates_better():
    covered = [-2.0, -1.0, 0.5, 3.0]                    # 25%: threshold 0.5
    assert fit_patch_calibration(covered, max_covered_loss=0.25) == -0.5
    # Uncovered images all above 3: a threshold between 3 and 5 keeps every covered image and
    # routes every uncovered one (balanced accuracy 1 instead of 0.875).
    assert fit_patch_calibration(covered, [5.0, 6.0], max_covered_loss=0.25) == -4.0
    # An uncovered image at 0.8 would be lost by any higher threshold: 0.5 stays.
    assert fit_patch_calibration(covered, [0.8, 4.0, 5.0], max_covered_loss=0.25) == -0.5


def test_calibration_rejects_what_it_cannot_use():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fit_patch_calibration([0.0], max_covered_loss=1.0)
    with pytest.raises(ValueError, match="covered reference images"):
        fit_patch_calibration([])
    with pytest.raises(ValueError, match="finite"):
        fit_patch_calibration([np.nan])


def test_bias_is_a_prior_shift_on_uncovered_classes():
    expert = np.array([[0.9, 0.1]])
    general = np.array([[0.1, 0.1, 0.6, 0.2]])  # two covered classes, then two uncovered
    covered = np.array([True, True, False, False])
    out = patch_probabilities(expert, general, covered, bias=np.log(0.25))
    # Uncovered mass 0.8 -> 0.2 after the shift, renormalised with covered mass 0.2: 0.5 each.
    np.testing.assert_allclose(out, [[0.45, 0.05, 0.375, 0.125]])
    np.testing.assert_allclose(patch_probabilities(expert, general, covered),
                               [[0.18, 0.02, 0.6, 0.2]])


# --- the classifier end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def covered_labeler(digit_sdag, digit_experts):
    a, _, c, d = digit_experts   # the 5-9 expert is the general model's, not the hub's
    return ModelLabeler(digit_sdag, cache_dir=False, verbose=0).fit(ModelHub([a, c, d]))


@pytest.fixture(scope="module")
def instrument_conse(digit_experts):
    return ConSE(SharedCounter(digit_experts[1]), INSTRUMENTS)


@pytest.fixture(scope="module")
def test_digits(digit_splits):
    images, labels = digit_splits.test
    return images, np.array(DIGIT_NAMES, dtype=object)[labels], labels


def _patched(labeler, general_model, **params):
    return MLLZeroShotClassifier(TASK, labeler, nodes=TASK_NODES, min_similarity=0.5,
                                 general_model=general_model, cache_dir=False, **params).fit()


def test_calibrated_patch_keeps_covered_accuracy(covered_labeler, instrument_conse, test_digits):
    """Measured: covered accuracy 0.993 alone, 0.000 under the paper's patch, 0.984 calibrated
    (the default, 0.01); digit-5 images ("harmonica") reach their class: 1.00 paper, 0.93
    calibrated."""
    images, truth, labels = test_digits
    covered, harmonica = labels < 5, labels == 5
    alone = MLLZeroShotClassifier(TASK[:5], covered_labeler, nodes=TASK_NODES[:5],
                                  cache_dir=False).fit()
    paper = _patched(covered_labeler, instrument_conse, patch_calibration=None)
    calibrated = _patched(covered_labeler, instrument_conse)
    assert paper.uncovered_classes_ == calibrated.uncovered_classes_ == ["harmonica"]
    assert paper.patch_bias_ == 0.0 and calibrated.patch_bias_ < -5

    accuracy_alone = alone.score(images[covered], truth[covered])
    accuracy_paper = paper.score(images[covered], truth[covered])
    accuracy_calibrated = calibrated.score(images[covered], truth[covered])
    assert accuracy_alone > 0.95
    assert accuracy_paper < 0.5                           # the failure: covered images leave
    assert accuracy_calibrated > accuracy_alone - 0.05    # a few points at most
    reached = np.mean(calibrated.predict(images[harmonica]) == "harmonica")
    assert reached > 0.8                                  # the patch still serves its class

    proba = calibrated.predict_proba(images[:20])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert calibrated.classes_.tolist() == sorted(TASK)  # harmonica's column, where sorted


def test_second_identical_fit_runs_no_forward_pass(covered_labeler, instrument_conse, tmp_path):
    expert = instrument_conse.expert
    _patch._REFERENCE_MEMORY.clear()    # computed here, so that it is stored on disk too
    params = dict(nodes=TASK_NODES, min_similarity=0.5, general_model=instrument_conse,
                  cache_dir=tmp_path)
    first = MLLZeroShotClassifier(TASK, covered_labeler, **params).fit()
    seen = expert.n_images
    assert seen > 0
    second = clone(first).fit()
    assert expert.n_images == seen and second.patch_bias_ == first.patch_bias_
    _patch._REFERENCE_MEMORY.clear()    # a new process: the records on disk answer
    assert clone(first).fit().patch_bias_ == first.patch_bias_
    assert expert.n_images == seen
    instrument_conse.temperature = 0.1  # another function: computed afresh
    try:
        assert clone(first).fit().patch_bias_ != first.patch_bias_
        assert expert.n_images > seen
    finally:
        instrument_conse.temperature = 0.05


def test_classifier_names_a_broken_general_model(covered_labeler, test_digits):
    images = test_digits[0][:4]
    broken = SameRows([np.nan, 0.2, 0.2, 0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="general model 'fixed-table'.*NaN"):
        _patched(covered_labeler, broken)                 # the calibration asks it at fit
    literal = _patched(covered_labeler, broken, patch_calibration=None)
    with pytest.raises(ValueError, match="general model 'fixed-table'.*NaN"):
        literal.predict(images)
    literal.general_model = SameRows(np.full(5, 0.2))
    with pytest.raises(ValueError, match="5 columns for 6 class names"):
        literal.predict(images)


def test_patch_calibration_is_validated(covered_labeler, instrument_conse):
    with pytest.raises(ValueError, match="patch_calibration"):
        _patched(covered_labeler, instrument_conse, patch_calibration=1.0)


class _PlainArraysOnly:
    """A user's general model that accepts nothing but a plain (n, H, W, 3) array."""

    name = "plain-arrays-only"

    def __init__(self):
        self.sizes = []

    def predict_proba(self, images, class_names):
        assert isinstance(images, np.ndarray) and images.ndim == 4, type(images)
        self.sizes.append(images.shape[1:3])
        return np.full((len(images), len(class_names)), 1 / len(class_names))


def test_a_general_model_is_given_one_image_size_at_a_time(digit_sdag, digit_experts,
                                                           digit_splits):
    """Mixed-size images (a list of PIL images) reach a general model as same-size arrays."""
    from PIL import Image

    from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler

    from ..conftest import DIGIT_NAMES

    labeler = ModelLabeler(digit_sdag, cache_dir=False, verbose=0).fit(ModelHub(digit_experts))
    general = _PlainArraysOnly()
    clf = MLLZeroShotClassifier(DIGIT_NAMES[:3] + ["harmonica"], labeler, general_model=general,
                                patch_calibration=None, cache_dir=False).fit()
    images = digit_splits.test[0][:4]
    mixed = [Image.fromarray(images[0]), Image.fromarray(images[1]).resize((16, 16)),
             Image.fromarray(images[2]), Image.fromarray(images[3]).resize((16, 16))]
    proba = clf.predict_proba(mixed)
    assert proba.shape == (4, 4) and sorted(set(general.sizes)) == [(8, 8), (16, 16)]
    np.testing.assert_allclose(proba[0], clf.predict_proba(mixed[:1])[0], atol=1e-9)
