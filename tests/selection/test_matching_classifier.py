"""Class names as people write them, through ``MLLZeroShotClassifier.fit`` (issue 8, item 8).

The SDAGs here are small: four WordNet synsets of winter clothing whose representative images
are handwritten digits (0-3), and a custom SDAG with texts of its own. Experts are tiny MLPs.
"""

import numpy as np
import pytest

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.selection import SentenceEncoder, embed_texts, mutual_best_match
from tests.conftest import DIGIT_SYNSETS, digit_expert

WINTER = ["boot.n.01", "glove.n.02", "scarf.n.01", "hat.n.01"]   # shown as digits 0, 1, 2, 3
WRITTEN = ["Boots", "Gloves", "Scarves", "Hats"]


@pytest.fixture(scope="module")
def winter_labeler(digit_splits, wordnet):
    data = {synset: digit_splits.reference[DIGIT_SYNSETS[d]] for d, synset in enumerate(WINTER)}
    sdag = SemanticDAG.from_wordnet(data, wordnet=wordnet)
    expert = digit_expert(digit_splits, "four-digits", [0, 1, 2, 3], seed=5)
    return ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([expert]))


@pytest.fixture(scope="module")
def winter_test_images(digit_splits):
    images, labels = digit_splits.test
    keep = labels < 4
    return images[keep], np.array(WRITTEN, dtype=object)[labels[keep]]


def test_capitalised_plurals_match_their_synsets_through_fit(winter_labeler,
                                                             winter_test_images):
    # Matched as written, "Hats" went to headdress.n.01 (hat's parent, in the SDAG as an
    # ancestor) without a word: its lemma "hat" was not recognised in "Hats".
    clf = MLLZeroShotClassifier(WRITTEN, winter_labeler, cache_dir=False).fit()
    assert {c: clf.matched_nodes_[c][0] for c in WRITTEN} == dict(zip(WRITTEN, WINTER))
    images, truth = winter_test_images
    assert clf.score(images, truth) > 0.9


def test_name_bonus_zero_is_the_papers_matching_through_fit(winter_labeler):
    sdag = winter_labeler.sdag
    clf = MLLZeroShotClassifier(WRITTEN, winter_labeler, name_bonus=0, on_uncovered="drop",
                                cache_dir=False).fit()
    encoder = SentenceEncoder()
    cosine = (embed_texts(encoder, [f"Name: {c}" for c in WRITTEN])
              @ embed_texts(encoder, sdag.texts).T)
    nodes, _ = mutual_best_match(cosine, candidates=sdag.has_data_below, min_similarity=0.0)
    expected = {c: (sdag.node_ids[n] if n >= 0 else None) for c, n in zip(WRITTEN, nodes)}
    assert {c: m and m[0] for c, m in clf.matched_nodes_.items()} == expected
    matched = [i for i, n in enumerate(nodes) if n >= 0]
    np.testing.assert_allclose([clf.matched_nodes_[WRITTEN[i]][1] for i in matched],
                               cosine[matched, nodes[matched]], rtol=1e-6)


class Brightness:
    """Two heads: dark, light."""

    name, n_outputs = "brightness", 2

    def logits(self, images):
        mean = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([1 - mean, mean], axis=1) * 4


def test_custom_sdag_texts_are_read_in_dictionary_forms():
    dark, light = np.zeros((3, 6, 6), np.uint8), np.full((3, 6, 6), 255, np.uint8)
    sdag = SemanticDAG(["shade", "night", "day"], edges=[("shade", "night"), ("shade", "day")],
                       texts={"night": "Name: night-time, darkness", "day": "daytime"},
                       data={"night": dark, "day": light})
    labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    clf = MLLZeroShotClassifier(["Night Times", "Day-Time"], labeler, cache_dir=False).fit()
    assert {c: m[0] for c, m in clf.matched_nodes_.items()} == {"Night Times": "night",
                                                                "Day-Time": "day"}
    assert clf.predict(np.stack([light[0], dark[0]])).tolist() == ["Day-Time", "Night Times"]
