"""``sklearn:`` experts: fitted scikit-learn classifiers read from skops files, no pickle."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skmll.hub import ExpertError, LazyExpert, create_expert

skops_io = pytest.importorskip("skops.io")
RAN = []


def record_call(x):
    """A user function inside a model: skmll must refuse to load it, never call it."""
    RAN.append(len(x))
    return x


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.images, data.target   # 8 x 8, pixel values 0-16


def test_logits_are_the_models_own_on_its_own_pixels(digits, tmp_path):
    images, target = digits
    model = make_pipeline(StandardScaler(), PCA(12, random_state=0),
                          LogisticRegression(max_iter=300)).fit(images[:1000].reshape(1000, -1),
                                                                target[:1000])
    skops_io.dump(model, tmp_path / "digits.skops")
    expert = create_expert(f"sklearn:{tmp_path / 'digits.skops'}", input_size=(8, 8),
                           scale=16.0)
    test = images[1000:1100]
    # skmll's images are [0, 1]: the digits' 0-16 scaled down, given as gray RGB
    rgb = np.repeat((test / 16.0)[..., None], 3, axis=-1).astype(np.float32)
    logits = expert.logits(rgb)
    expected = model.decision_function(test.reshape(len(test), -1))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(axis=1) == target[1000:1100]).mean() > 0.85
    assert expert.n_outputs == 10 and expert.head_names == [str(d) for d in range(10)]


def test_colour_pixels_flatten_channels_last_and_probabilities_become_logits(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.random((80, 3, 5, 3)).astype(np.float32)   # odd sizes: H 3, W 5
    target = (images[..., 0].mean(axis=(1, 2)) > images[..., 2].mean(axis=(1, 2))).astype(int)
    model = GaussianNB().fit(images.reshape(80, -1), target)   # no decision_function
    skops_io.dump(model, tmp_path / "nb.skops")
    expert = create_expert(f"sklearn:{tmp_path / 'nb.skops'}", input_size=(3, 5), channels=3,
                           head_names=["bluish", "reddish"])
    assert expert.output == "predict_proba"
    probabilities = model.predict_proba(images.reshape(80, -1).astype(np.float64))
    softmax = np.exp(expert.logits(images))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, np.clip(probabilities, 1e-7, 1 - 1e-7), atol=1e-5)


def test_untrusted_types_are_refused_and_never_run(digits, tmp_path):
    images, target = digits
    model = make_pipeline(FunctionTransformer(record_call), LogisticRegression(max_iter=200))
    model.fit(images[:200].reshape(200, -1), target[:200])
    RAN.clear()
    skops_io.dump(model, tmp_path / "custom.skops")
    with pytest.raises(ExpertError, match="record_call") as caught:
        create_expert(f"sklearn:{tmp_path / 'custom.skops'}", input_size=(8, 8))
    assert "does not trust" in str(caught.value)
    assert RAN == []
    (tmp_path / "pickled.skops").write_bytes(pickle.dumps(model))
    with pytest.raises(ValueError, match="not a skops file"):   # a pickle is never read
        create_expert(f"sklearn:{tmp_path / 'pickled.skops'}", input_size=(8, 8))
    assert RAN == []


def test_input_size_must_give_the_models_feature_count(digits, tmp_path):
    images, target = digits
    model = LogisticRegression(max_iter=200).fit(images[:200].reshape(200, -1), target[:200])
    skops_io.dump(model, tmp_path / "d.skops")
    with pytest.raises(ValueError, match="takes 64 features.*gives 192"):
        create_expert(f"sklearn:{tmp_path / 'd.skops'}", input_size=(8, 8), channels=3)


def test_lazy_spec_pickles_and_fingerprints_by_content(digits, tmp_path):
    images, target = digits
    x = images[:300].reshape(300, -1)
    for c, name in [(1.0, "a.skops"), (0.01, "b.skops")]:
        skops_io.dump(LogisticRegression(C=c, max_iter=300).fit(x, target[:300]),
                      tmp_path / name)
    lazy = LazyExpert(f"sklearn:{tmp_path / 'a.skops'}", input_size=[8, 8], scale=16.0)
    built = create_expert(f"sklearn:{tmp_path / 'a.skops'}", input_size=(8, 8), scale=16.0)
    other = create_expert(f"sklearn:{tmp_path / 'b.skops'}", input_size=(8, 8), scale=16.0)
    assert lazy.fingerprint == built.fingerprint != other.fingerprint
    batch = np.repeat((images[:5] / 16.0)[..., None], 3, axis=-1).astype(np.float32)
    copy = pickle.loads(pickle.dumps(built))
    np.testing.assert_array_equal(copy.logits(batch), built.logits(batch))
    np.testing.assert_array_equal(lazy.logits(batch), built.logits(batch))
