"""scikit-learn's estimator checks on every skmll estimator, with the expected failures named.

skmll's estimators take images ``(n, H, W[, C])`` (the classifiers) or a hub of experts (the
labeler), never tables, and their tags say so (``two_d_array=False``). scikit-learn then skips
its data checks, which feed random ``(n_samples, n_features)`` tables, so this module runs:

* the API checks that need no data, imported by name, on every estimator of
  ``_tested_estimators()`` (parameter validation, cloning, get/set_params, repr, ...), with the
  checks each one is expected to fail listed beside it, with the reason;
* the data checks that matter (subset and order invariance, idempotent fit, inputs left
  unchanged, pickling), rewritten on images.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier
from sklearn.utils import estimator_checks as checks

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, TorchExpert
from skmll.baselines import LEEPMLLClassifier, LogMEMLLClassifier, RandomMLLClassifier


class LetterCounts:
    """A tiny deterministic text encoder (letter histogram), so collection loads no model."""

    def __call__(self, texts):
        return np.array([[t.lower().count(ch) + 0.01 for ch in "abcdefghijklmnopqrstuvwxyz"]
                         for t in texts])

    def __repr__(self):  # stable test ids across pytest-xdist workers
        return "LetterCounts()"


def _images(seed, n=6):
    """Dark and bright 8x8 grayscale images, alternating."""
    rng = np.random.default_rng(seed)
    dark = rng.integers(0, 60, (n, 8, 8), dtype=np.uint8)
    bright = rng.integers(190, 255, (n, 8, 8), dtype=np.uint8)
    return np.stack([dark, bright], axis=1).reshape(2 * n, 8, 8)


def _labeler():
    torch.manual_seed(0)
    images = _images(0)
    sdag = SemanticDAG(["dark", "bright"], data={"dark": images[0::2], "bright": images[1::2]})
    # Head 0 grows with brightness, head 1 with darkness; an untrained third expert adds noise.
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([torch.full((64,), 0.2), torch.full((64,), -0.2)]))
        net[1].bias.copy_(torch.tensor([-6.4, 6.4]))
    experts = [TorchExpert(net, name="brightness", input_size=(8, 8), channels=1),
               TorchExpert(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)),
                           name="noise", input_size=(4, 4), channels=3)]
    return ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub(experts))


def _tested_estimators():
    """(estimator, {check name: why it is expected to fail}) for every public estimator."""
    labeler = _labeler()
    common = dict(text_encoder=LetterCounts(), cache_dir=False)
    classes = ["dark", "bright"]
    return [
        (MLLZeroShotClassifier(classes, labeler, **common), {}),
        (RandomMLLClassifier(classes, labeler, random_state=0, **common), {}),
        (LogMEMLLClassifier(classes, labeler, random_state=0, **common), {}),
        (LEEPMLLClassifier(classes, labeler, random_state=0, **common), {}),
        (ModelLabeler(labeler.sdag, cache_dir=False, verbose=0), {}),
    ]


# API checks that need no data (or ignore it): every estimator must pass them.
API_CHECKS = [
    checks.check_param_validation,
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_estimator_tags_renamed,
    checks.check_valid_tag_types,
]

_ESTIMATORS = _tested_estimators()
_CLASSIFIERS = [est for est, _ in _ESTIMATORS if is_classifier(est)]


def _id(estimator):
    return type(estimator).__name__


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("estimator, expected_failures", _ESTIMATORS,
                         ids=lambda x: _id(x) if not isinstance(x, dict) else "")
def test_api_checks(estimator, expected_failures, check):
    name = type(estimator).__name__
    if check.__name__ in expected_failures:
        pytest.xfail(expected_failures[check.__name__])
    check(name, clone(estimator))


def test_tags_tell_the_truth():
    for estimator, _ in _ESTIMATORS:
        tags = estimator.__sklearn_tags__()
        assert not tags.input_tags.two_d_array and tags.requires_fit


# --- the data checks, on images ----------------------------------------------------------------

TEST_IMAGES = _images(1, n=10)


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_subset_invariance(classifier):
    """``predict(X)[i:j]`` equals ``predict(X[i:j])`` (sklearn's check_methods_subset_invariance)."""
    clf = clone(classifier).fit()
    whole = clf.predict_proba(TEST_IMAGES)
    np.testing.assert_allclose(clf.predict_proba(TEST_IMAGES[3:9]), whole[3:9], rtol=1e-6,
                               atol=1e-9)
    clf.set_params(batch_size=3)                  # chunked prediction changes nothing either
    np.testing.assert_allclose(clf.fit().predict_proba(TEST_IMAGES), whole, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_sample_order_invariance(classifier):
    clf = clone(classifier).fit()
    order = np.random.default_rng(0).permutation(len(TEST_IMAGES))
    np.testing.assert_allclose(clf.predict_proba(TEST_IMAGES[order]),
                               clf.predict_proba(TEST_IMAGES)[order], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_fit_idempotent(classifier):
    clf = clone(classifier)
    first = clf.fit().predict_proba(TEST_IMAGES)
    np.testing.assert_array_equal(clf.fit().predict_proba(TEST_IMAGES), first)
    np.testing.assert_array_equal(clone(classifier).fit().predict_proba(TEST_IMAGES), first)


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_inputs_and_parameters_left_unchanged(classifier):
    clf = clone(classifier)
    params = {k: v for k, v in clf.get_params(deep=False).items()}
    classes = list(clf.classes)
    images = TEST_IMAGES.copy()
    clf.fit()
    before = dict(clf.__dict__)
    clf.predict_proba(images)
    np.testing.assert_array_equal(images, TEST_IMAGES)
    assert clf.__dict__.keys() == before.keys()         # predict sets no attribute
    assert list(clf.classes) == classes
    assert all(clf.get_params(deep=False)[k] is v for k, v in params.items())


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_pickle_round_trip(classifier):
    clf = clone(classifier).fit()
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(TEST_IMAGES),
                                  clf.predict_proba(TEST_IMAGES))


@pytest.mark.parametrize("classifier", _CLASSIFIERS, ids=_id)
def test_classifies_the_images(classifier):
    """The fixture is a real task: dark and bright images are told apart."""
    truth = np.tile(["dark", "bright"], len(TEST_IMAGES) // 2)
    assert clone(classifier).fit().score(TEST_IMAGES, truth) == 1.0
