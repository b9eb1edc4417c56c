"""Property-based tests: any image-like input either predicts cleanly or fails with a clear error.

Whatever shape, dtype or values ``predict`` receives, the result is a ValueError or TypeError
raised by skmll's own validation (never a crash deep inside torch or numpy), or valid output.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler

from .conftest import DIGIT_NAMES


@pytest.fixture(scope="module")
def clf(digit_sdag, digit_experts, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    labeler = ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(ModelHub(digit_experts))
    return MLLZeroShotClassifier(DIGIT_NAMES, labeler, cache_dir=cache).fit()


dtypes = st.sampled_from([np.uint8, np.float32, np.float64, np.int16, np.bool_, np.complex64])
shapes = st.lists(st.integers(0, 9), min_size=1, max_size=5).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_array_predicts_or_fails_clearly(clf, data):
    dtype = data.draw(dtypes)
    images = data.draw(arrays(dtype, data.draw(shapes)))
    try:
        proba = clf.predict_proba(images)
    except (ValueError, TypeError) as exc:
        assert exc.__traceback__ is not None
        frames = [f.f_code.co_filename for f, _ in __import__("traceback").walk_tb(
            exc.__traceback__)]
        assert "skmll" in frames[-1], f"error raised outside skmll's validation: {frames[-1]}"
        return
    assert proba.shape == (images.shape[0], len(DIGIT_NAMES))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 5), size=st.integers(1, 40), channels=st.sampled_from([None, 1, 3, 4]),
       seed=st.integers(0, 2**16))
def test_valid_images_of_any_size_give_distributions(clf, n, size, channels, seed):
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    proba = clf.predict_proba(images)
    assert proba.shape == (n, 10) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)
