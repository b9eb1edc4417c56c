"""Profile reuse: smoothed label profiles and the experts' naive-Bayes posterior."""

import numpy as np
import pytest

from skmll.reuse import log_profiles, profile_posterior


def test_log_profiles_are_smoothed_distributions():
    mu = np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    logs = log_profiles(mu, smoothing=0.03)
    np.testing.assert_allclose(np.exp(logs).sum(axis=1), 1.0)
    assert np.exp(logs).min() == pytest.approx(0.01)   # a head never seen is rare, not impossible
    np.testing.assert_allclose(log_profiles(mu, smoothing=0.0)[0, :2], np.log([0.7, 0.3]))
    # Rows that drifted from summing to 1 (mixing, rounding) are renormalised.
    np.testing.assert_allclose(log_profiles(2 * mu), log_profiles(mu))


@pytest.mark.parametrize("bad", [np.array([0.5, 0.5]), np.array([[np.nan, 1.0]]),
                                 np.array([[-0.1, 1.1]])])
def test_log_profiles_reject_bad_input(bad):
    with pytest.raises(ValueError, match="mean_probabilities"):
        log_profiles(bad)


def test_posterior_is_the_product_of_expert_likelihoods():
    rng = np.random.default_rng(0)
    outputs = [rng.dirichlet(np.ones(h), size=6) for h in (3, 5)]
    profiles = [log_profiles(rng.dirichlet(np.ones(h), size=4)) for h in (3, 5)]
    posterior = profile_posterior(outputs, profiles)
    for i in range(6):
        scores = [np.prod([np.exp(p[c] @ q[i]) for q, p in zip(outputs, profiles)])
                  for c in range(4)]
        np.testing.assert_allclose(posterior[i], np.array(scores) / sum(scores), rtol=1e-10)


def test_uninformative_expert_changes_nothing():
    """An expert that responds alike to every class adds the same evidence to each."""
    rng = np.random.default_rng(1)
    informative = log_profiles(np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]))
    flat = log_profiles(np.tile(rng.dirichlet(np.ones(4)), (3, 1)))
    q1, q2 = rng.dirichlet(np.ones(2), size=5), rng.dirichlet(np.ones(4), size=5)
    np.testing.assert_allclose(profile_posterior([q1, q2], [informative, flat]),
                               profile_posterior([q1], [informative]), rtol=1e-12)


def test_confident_out_of_domain_expert_is_discounted():
    """A footwear expert fires its 'sandal' head on shirts too; its label says so.

    Classes: sandal, shirt. The footwear expert (heads sandal, boot) puts 0.9 on 'sandal' for
    both; the garment expert (heads shirt, coat) tells them apart but less sharply. The
    entropy-weighted one-vs-rest scores would call a shirt a sandal (0.9 > 0.7); the profile
    posterior knows the footwear expert cannot separate the two and follows the garment expert.
    """
    footwear = log_profiles(np.array([[0.9, 0.1], [0.9, 0.1]]))
    garment = log_profiles(np.array([[0.5, 0.5], [0.7, 0.3]]))
    shirt_image = [np.array([[0.9, 0.1]]), np.array([[0.7, 0.3]])]
    posterior = profile_posterior(shirt_image, [footwear, garment])
    assert posterior[0, 1] > posterior[0, 0]
