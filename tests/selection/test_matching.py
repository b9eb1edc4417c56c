"""Semantic matching (Algorithm 1, line 4), selection (line 10) and text embeddings."""

import numpy as np
import pytest

from skmll.selection import (SentenceEncoder, dictionary_form, embed_texts,
                             exact_name_matches, match_classes, mutual_best_match,
                             select_predictors)
from skmll.semantic_graph import node_text


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


# --- names as people write them (dictionary forms) -------------------------------------------

@pytest.mark.parametrize("written, dictionary", [
    ("Tennis Balls", "tennis ball"), ("T-Shirts", "t shirt"), ("Ankle-Boots", "ankle boot"),
    ("Wolves", "wolf"), ("Mice", "mouse"), ("  Women's   Handbags ", "woman handbag"),
    ("Polar_Bears", "polar bear"), ("Larvae", "larva")])
def test_dictionary_form_of_names_people_write(written, dictionary):
    assert dictionary_form(written) == dictionary


def test_plurals_hyphens_and_regional_spellings_name_their_wordnet_node(wordnet):
    synsets = ["wolf.n.01", "mouse.n.01", "sea_lion.n.01", "ice_bear.n.01", "tire.n.01",
               "mustache.n.01", "jack-o'-lantern.n.01", "jewelry.n.01"]
    texts = [node_text(wordnet.synset(s)) for s in synsets]
    written = ["Wolves", "MICE", "Sea-Lions", "Polar_Bears", "Tyres", "Moustaches",
               "Jack-O'-Lanterns", "Jewellery"]
    np.testing.assert_array_equal(exact_name_matches(written, texts),
                                  np.eye(len(texts), dtype=bool))
    # As written (no morphology), only case and separators are forgiven.
    plain = exact_name_matches(written, texts, morphology=None)
    assert plain.diagonal().tolist() == [False] * 7 + [True]


def test_alternatives_joined_hyphens_and_names_of_custom_texts():
    texts = ["Name: Pebbles, shingle\nDescription: small stones", "Name: daytime",
             "a heap of sand"]      # a text with no Name: line is one name
    hits = exact_name_matches(["Pebble", "Day-Time", "A Heap of Sands", "daytime/shingle"],
                              texts)
    assert hits.tolist() == [[True, False, False], [False, True, False], [False, False, True],
                             [True, True, False]]
    # Another morphology (a stemmer of one's own) replaces WordNet's.
    stem = exact_name_matches(["stone"], ["Name: stoned"], morphology=lambda w: [w.rstrip("d")])
    assert stem.tolist() == [[True]]


def test_candidates_limit_the_nodes_compared():
    hits = exact_name_matches(["boot"], ["Name: boot", "Name: boot"],
                              candidates=np.array([False, True]))
    assert hits.tolist() == [[False, True]]


@pytest.fixture
def no_wordnet(monkeypatch):
    """WordNet reported missing (as on a machine without it), with the remembered forms
    forgotten before and after."""
    from skmll import semantic_graph
    from skmll.selection import _matching

    def missing(*args, **kwargs):
        raise LookupError("WordNet 3.0 was not found")

    caches = (_matching._wordnet_reader, _matching.wordnet_noun_forms, _matching._node_forms)
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(semantic_graph, "load_wordnet", missing)
    yield
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def test_without_wordnet_names_are_compared_as_written(no_wordnet):
    with pytest.warns(UserWarning, match="without WordNet's morphology"):
        hits = exact_name_matches(["Boots", "BOOT"], ["Name: boot"])
    assert hits.tolist() == [[False], [True]]


# --- match_classes: lemma hits first, then rounds of mutual best match -----------------------

def paper_rule_by_hand(similarity, candidates, floor):
    """Algorithm 1 line 4 written out: (y, c) is kept when sim(y, c) is the largest in its row
    (over candidate nodes) and in its column, and at least the floor."""
    nodes = []
    for y, row in enumerate(similarity):
        allowed = [c for c in range(len(row)) if candidates[c]]
        c = max(allowed, key=lambda c: row[c])
        column_best = max(range(len(similarity)), key=lambda other: similarity[other][c])
        nodes.append(c if column_best == y and row[c] >= floor else -1)
    return nodes


@pytest.mark.parametrize("seed", range(5))
def test_name_bonus_zero_is_the_papers_single_round(seed):
    rng = np.random.default_rng(seed)
    similarity = rng.uniform(-0.2, 1, size=(6, 9))
    candidates = rng.random(9) < 0.7
    hits = rng.random((6, 9)) < 0.3   # ignored by the literal rule
    got = match_classes(similarity, hits, candidates=candidates, name_bonus=0,
                        min_similarity=0.3)
    assert got.tolist() == paper_rule_by_hand(similarity, candidates, 0.3)


def test_a_class_naming_one_node_takes_it_before_similarity():
    similarity = np.array([[0.9, 0.5, 0.1],
                           [0.8, 0.7, 0.6]])
    hits = np.array([[False, True, False],      # class 0 names node 1 only
                     [True, True, False]])      # class 1 names nodes 0 and 1
    # Class 0 takes node 1, after which class 1 names node 0 alone and takes it. In one round
    # on similarity plus bonus, node 0 goes to class 1 and class 0 is left out.
    assert match_classes(similarity, hits).tolist() == [1, 0]
    assert mutual_best_match(similarity + 0.25 * hits)[0].tolist() == [-1, 0]


def test_classes_naming_the_same_node_compete_by_similarity():
    similarity = np.array([[0.5, 0.45], [0.6, 0.2]])
    hits = np.array([[True, False], [True, False]])
    # Node 0 goes to class 1 (0.85 against 0.75). Class 0 is not handed the node left over:
    # a second-best node is more often wrong than right.
    assert match_classes(similarity, hits).tolist() == [-1, 0]


def test_a_class_whose_node_another_names_takes_the_next_node_that_prefers_it():
    # Class 1's best node (0) is named by class 0; node 1 is nearer to class 1 than to class 0.
    similarity = np.array([[0.50, 0.30, 0.1],
                           [0.65, 0.45, 0.2]])
    hits = np.array([[True, False, False], [False, False, False]])
    assert mutual_best_match(similarity + 0.25 * hits)[0].tolist() == [0, -1]
    assert match_classes(similarity, hits).tolist() == [0, 1]
    # Without names, a node still goes only to the class it prefers: class 1 loses node 0 to
    # class 0 (0.7 against 0.65) and is left unmatched, not handed node 1.
    similarity = np.array([[0.70, 0.75], [0.65, 0.20]])
    assert match_classes(similarity).tolist() == [1, -1]


@pytest.mark.parametrize("seed", range(20))
def test_classes_never_share_a_node_and_similarity_matches_are_mutual(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_nodes = rng.integers(1, 8, size=2)
    similarity = np.round(rng.uniform(-0.5, 1, size=(n_classes, n_nodes)), 1)  # many ties
    hits = rng.random((n_classes, n_nodes)) < 0.3
    candidates = rng.random(n_nodes) < 0.8
    floor = rng.uniform(-0.5, 0.5)
    nodes = match_classes(similarity, hits, candidates=candidates, min_similarity=floor)
    taken = nodes[nodes >= 0]
    assert len(set(taken.tolist())) == len(taken)
    assert candidates[taken].all()
    assert (similarity[np.flatnonzero(nodes >= 0), taken] >= floor).all()
    # A node given without a name hit scores its class highest of all classes; an unmatched
    # class's best node is taken or scores another class highest.
    score = np.where(candidates & (similarity >= floor), similarity + 0.25 * hits, -np.inf)
    for i, n in enumerate(nodes):
        if n >= 0 and not hits[i, n]:
            assert score[:, n].argmax() == i
        best = score[i].argmax()
        if n < 0 and np.isfinite(score[i, best]):
            assert best in taken or score[:, best].argmax() != i


def test_synonym_left_unmatched_by_one_round_gets_its_node(encoder, wordnet):
    # "Recycling bin" is nearest to ashcan.n.01, which "trash can" names (a lemma); in one
    # round it is left out, though bin.n.01 is nearer to it than to any other class.
    synsets = ["ashcan.n.01", "bin.n.01", "bucket.n.01"]
    texts = [node_text(wordnet.synset(s)) for s in synsets]
    names = ["Trash Cans", "Recycling bin", "Bucket"]
    similarity = (embed_texts(encoder, [f"Name: {dictionary_form(n)}" for n in names])
                  @ embed_texts(encoder, texts).T)
    hits = exact_name_matches(names, texts)
    assert mutual_best_match(similarity + 0.25 * hits)[0].tolist() == [0, -1, 2]
    assert match_classes(similarity, hits).tolist() == [0, 1, 2]
