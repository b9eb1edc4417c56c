"""Property-based tests: any image-like input either predicts cleanly or fails with a clear error.

Whatever shape, dtype or values ``predict`` receives, the result is a ValueError or TypeError
raised by skmll's own validation (never a crash deep inside torch or numpy), or valid output.
"""

import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import skmll
from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler

from .conftest import DIGIT_NAMES

SKMLL_DIR = Path(skmll.__file__).resolve().parent


@pytest.fixture(scope="module")
def clf(digit_sdag, digit_experts, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    labeler = ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(ModelHub(digit_experts))
    return MLLZeroShotClassifier(DIGIT_NAMES, labeler, cache_dir=cache).fit()


def raised_inside_skmll(exc):
    """True when the frame that raised ``exc`` is a file of the installed skmll package."""
    frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(exc.__traceback__)]
    return Path(frames[-1]).resolve().is_relative_to(SKMLL_DIR)


def test_the_raising_frame_check_looks_at_the_package_not_at_path_names():
    try:
        np.zeros(2).reshape(3)          # raised by numpy, whose path may well contain "skmll"
    except ValueError as exc:
        assert not raised_inside_skmll(exc)
    try:
        skmll.hub.as_image_batch(None)
    except TypeError as exc:
        assert raised_inside_skmll(exc)


def float_elements(dtype):
    return st.floats(0, 1, width=8 * dtype.itemsize) if dtype.kind == "f" else None


@st.composite
def image_batches(draw):
    """Arrays that follow the reading rule: channels last, pixels with a known range."""
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.uint16, np.bool_, np.float32,
                                           np.float64])))
    shape = (draw(st.integers(1, 3)), draw(st.integers(5, 12)), draw(st.integers(5, 12)))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = shape if channels is None else (*shape, channels)
    return draw(arrays(dtype, shape, elements=float_elements(dtype)))


@st.composite
def any_arrays(draw):
    """Arrays of any rank up to 5, of image and non-image dtypes, values anywhere or in [0, 1]."""
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.float64,
                                           np.bool_, np.int16, np.complex64])))
    shape = draw(st.lists(st.integers(0, 9), min_size=1, max_size=5).map(tuple))
    in_range = draw(st.booleans())   # else NaN, infinities and large values too
    return draw(arrays(dtype, shape, elements=float_elements(dtype) if in_range else None))


def test_any_array_predicts_or_fails_clearly(clf):
    outcomes = []

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(images=image_batches() | any_arrays())
    def check(images):
        try:
            proba = clf.predict_proba(images)
        except (ValueError, TypeError) as exc:
            assert raised_inside_skmll(exc), f"error raised outside skmll's validation: {exc!r}"
            outcomes.append("refused")
            return
        assert proba.shape == (images.shape[0], len(DIGIT_NAMES))
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)
        outcomes.append("predicted")

    check()
    # The examples must reach prediction, not only validation, for the property to mean much.
    assert outcomes.count("predicted") >= 0.3 * len(outcomes), outcomes
    assert outcomes.count("refused") >= 0.1 * len(outcomes), outcomes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 5), size=st.integers(1, 40), channels=st.sampled_from([None, 1, 3, 4]),
       seed=st.integers(0, 2**16))
def test_valid_images_of_any_size_give_distributions(clf, n, size, channels, seed):
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    if size in (1, 3, 4):   # the width of gray images, or height of RGB ones, could be channels
        with pytest.raises(ValueError, match="ambiguous"):
            clf.predict_proba(images)
        return
    proba = clf.predict_proba(images)
    assert proba.shape == (n, 10) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-9)


def test_one_rgb_image_is_refused_not_read_as_rows_of_gray_pixels(clf):
    """A (16, 16, 3) image used to give 16 predictions."""
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"ambiguous: one \(H, W, C\) image.*X\[None\]"):
        clf.predict(image)
    assert clf.predict(image[None]).shape == (1,)
    assert clf.predict([image]).shape == (1,)


def test_channels_first_batches_are_refused(clf):
    """NCHW (2, 3, H, 4) used to pass as RGBA."""
    with pytest.raises(ValueError, match="NCHW"):
        clf.predict_proba(np.zeros((2, 3, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"NCHW.*transpose\(0, 2, 3, 1\)"):
        clf.predict_proba(np.zeros((2, 3, 8, 8), np.uint8))


@pytest.mark.parametrize("X, message", [(None, "got None"), (3, "got 3"),
                                        ("digit.png", "single path")])
def test_non_images_are_named_in_the_error(clf, X, message):
    """predict_proba(None) used to raise a bare "'NoneType' object is not iterable"."""
    with pytest.raises(TypeError, match=f"images must be an array .*{message}") as info:
        clf.predict_proba(X)
    assert raised_inside_skmll(info.value)
