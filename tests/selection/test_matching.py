"""Semantic matching (Algorithm 1, line 4), selection (line 10) and text embeddings."""

import numpy as np
import pytest

from skmll.selection import (SentenceEncoder, embed_texts, mutual_best_match,
                             select_predictors)


def test_mutual_best_match_keeps_only_mutual_pairs():
    sim = np.array([[0.9, 0.1, 0.0],
                    [0.8, 0.2, 0.1],     # prefers node 0, which prefers class 0
                    [0.0, 0.3, 0.7]])
    nodes, best = mutual_best_match(sim)
    assert nodes.tolist() == [0, -1, 2]
    np.testing.assert_allclose(best, [0.9, 0.8, 0.7])


def test_candidates_and_floor():
    sim = np.array([[0.9, 0.6], [0.1, 0.2]])
    nodes, _ = mutual_best_match(sim, candidates=np.array([False, True]))
    assert nodes.tolist() == [1, -1]          # class 0 takes node 1; class 1's best is node 1 too
    nodes, _ = mutual_best_match(sim, min_similarity=0.5)
    assert nodes.tolist() == [0, -1]          # class 1's only mutual node is below the floor


def test_no_candidate_nodes():
    nodes, best = mutual_best_match(np.ones((2, 3)), candidates=np.zeros(3, bool))
    assert nodes.tolist() == [-1, -1] and np.isneginf(best).all()


def test_select_predictors_budget_threshold_and_inf():
    losses = np.array([[0.3, np.inf, 2.0],
                       [0.1, 0.9, 0.5],
                       [0.2, 0.4, np.inf]])
    picks = select_predictors(losses, k=2, beta=1.0)
    assert [p.tolist() for p in picks] == [[1, 2], [2, 1], [1]]
    assert [p.tolist() for p in select_predictors(losses, k=1)] == [[1], [2], [1]]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def test_default_encoder_matches_names_to_wordnet_texts(encoder):
    nodes = ["Name: sandal\nDescription: a shoe consisting of a sole fastened by straps",
             "Name: gym shoe, sneaker, tennis shoe\nDescription: a canvas shoe with a "
             "pliable rubber sole",
             "Name: seven, 7, VII, sevener, heptad, septet\nDescription: the cardinal number "
             "that is the sum of six and one",
             "Name: eight, 8, VIII, eighter, octad, ogdoad, octonary, octet\nDescription: the "
             "cardinal number that is the sum of seven and one"]
    classes = ["Name: sneaker", "Name: sandal", "Name: seven", "Name: eight"]
    vectors = embed_texts(encoder, nodes)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    matched, _ = mutual_best_match(embed_texts(encoder, classes) @ vectors.T)
    assert matched.tolist() == [1, 0, 2, 3]


def test_embedding_cache_is_keyed_by_encoder_and_texts(tmp_path, encoder):
    texts = ["a dog", "a cat"]
    first = embed_texts(encoder, texts, cache_dir=tmp_path)
    assert len(list((tmp_path / "text").glob("*.npz"))) == 1
    again = embed_texts(encoder, texts, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    embed_texts(encoder, texts + ["a cow"], cache_dir=tmp_path)
    assert len(list((tmp_path / "text").glob("*.npz"))) == 2


def test_callable_encoder_without_fingerprint_is_not_cached(tmp_path):
    calls = []

    def bag_of_letters(texts):
        calls.append(len(texts))
        return np.array([[t.count(ch) for ch in "abcdefghijklmnopqrstuvwxyz"] for t in texts],
                        dtype=float)

    embed_texts(bag_of_letters, ["abc", "xyz"], cache_dir=tmp_path)
    embed_texts(bag_of_letters, ["abc", "xyz"], cache_dir=tmp_path)
    assert calls == [2, 2] and not (tmp_path / "text").exists()


def test_encoder_with_wrong_output_shape():
    with pytest.raises(ValueError, match=r"returned shape \(1, 3\) for 2 texts"):
        embed_texts(lambda texts: np.ones((1, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        embed_texts(lambda texts: np.full((len(texts), 3), np.nan), ["a"])
