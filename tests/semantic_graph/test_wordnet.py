"""Offline WordNet 3.0 (Debian's wordnet-base through nltk): loading, lookups, node texts."""

import os
import stat

import pytest

from skmll.semantic_graph import load_wordnet, node_text, synset_for, wordnet_noun_nodes
from skmll.semantic_graph import _wordnet

pytestmark = pytest.mark.skipif(not (_wordnet._DEBIAN_WORDNET / "data.noun").is_file(),
                                reason="Debian's wordnet-base is not installed")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def wordnet(cache_dir):
    return load_wordnet(cache_dir)


def test_loads_wordnet_30_from_a_private_copy(wordnet, cache_dir):
    assert wordnet.get_version() == "3.0"
    copy = cache_dir / "wordnet"
    for name in ("data.noun", "index.noun", "noun.exc", "lexnames"):
        mode = (copy / name).stat().st_mode
        assert stat.S_IMODE(mode) & (stat.S_IWGRP | stat.S_IWOTH) == 0
    original = _wordnet._DEBIAN_WORDNET / "data.noun"
    assert (copy / "data.noun").read_bytes() == original.read_bytes()
    assert len((copy / "lexnames").read_text().splitlines()) == 45


def test_lexnames_table_matches_the_lexicographer_files(wordnet):
    # A table in the wrong order would give synsets the wrong lexicographer file.
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"
    assert wordnet.synset("sandal.n.01").lexname() == "noun.artifact"
    assert wordnet.synset("entity.n.01").lexname() == "noun.Tops"
    assert wordnet.synset("run.v.01").lexname() == "verb.motion"
    assert wordnet.synset("good.a.01").lexname() == "adj.all"
    assert wordnet.synset("quickly.r.01").lexname() == "adv.all"


def test_reader_and_copy_are_reused(wordnet, cache_dir):
    data_noun = cache_dir / "wordnet" / "data.noun"
    written = data_noun.stat().st_mtime_ns
    assert load_wordnet(cache_dir) is wordnet
    assert _wordnet._copy_wordnet(_wordnet._DEBIAN_WORDNET, cache_dir / "wordnet") == (
        cache_dir / "wordnet")
    assert data_noun.stat().st_mtime_ns == written
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".wordnet-")]


def test_without_cache_dir_uses_a_temporary_copy(wordnet):
    reader = load_wordnet(cache_dir=False)
    assert reader is not wordnet
    assert load_wordnet(cache_dir=False) is reader
    assert reader.synset_from_pos_and_offset("n", 2084071).name() == "dog.n.01"
    assert reader.get_version() == "3.0"


def test_missing_wordnet_names_both_ways_to_install_it(tmp_path):
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        pass
    else:
        pytest.skip("nltk's own WordNet is installed, so the fallback succeeds")
    with pytest.raises(LookupError, match=r"apt-get install wordnet-base.*nltk\.download"):
        _wordnet._load_wordnet_from(tmp_path / "absent", tmp_path / "copy")


@pytest.mark.parametrize("key, name", [
    ("n02084071", "dog.n.01"),
    ("n03472535", "gym_shoe.n.01"),
    ("gym_shoe.n.01", "gym_shoe.n.01"),
    ("seven.n.01", "seven.n.01"),
])
def test_synset_for_names_and_imagenet_ids(wordnet, key, name):
    assert synset_for(key, wordnet).name() == name


def test_synset_for_passes_synsets_through(wordnet):
    dog = wordnet.synset("dog.n.01")
    assert synset_for(dog, wordnet) is dog


@pytest.mark.parametrize("key", ["nosuchword.n.01", "dog.n.99", "dog.x.01", "dog", "n99999999",
                                 "n01234567", "dog.n.first"])
def test_synset_for_rejects_unknown_keys(wordnet, key):
    with pytest.raises(ValueError, match=key):
        synset_for(key, wordnet)


def test_synset_for_rejects_non_strings(wordnet):
    with pytest.raises(TypeError, match="str"):
        synset_for(2084071, wordnet)


def test_node_text_lists_every_lemma_and_the_definition(wordnet):
    text = node_text(wordnet.synset("seven.n.01"))
    assert text == ("Name: seven, 7, VII, sevener, heptad, septet, septenary\n"
                    "Description: the cardinal number that is the sum of six and one")
    assert node_text(wordnet.synset("gym_shoe.n.01")).startswith(
        "Name: gym shoe, sneaker, tennis shoe\nDescription: ")


def test_wordnet_noun_nodes_lists_every_noun_synset(wordnet):
    ids, texts = wordnet_noun_nodes(wordnet)
    # Independent count: every non-licence line of data.noun is one synset.
    with open(_wordnet._DEBIAN_WORDNET / "data.noun", encoding="utf-8") as f:
        n_synsets = sum(1 for line in f if not line.startswith("  "))
    assert len(ids) == len(texts) == len(set(ids)) == n_synsets == 82115
    assert all(name.rsplit(".", 2)[1] == "n" for name in ids)
    dog = ids.index("dog.n.01")
    assert texts[dog] == node_text(wordnet.synset("dog.n.01"))


def test_copy_survives_a_stale_staging_folder(tmp_path):
    # A crashed copy leaves a staging folder behind; the next copy must still complete.
    (tmp_path / ".wordnet-crashed").mkdir()
    target = _wordnet._copy_wordnet(_wordnet._DEBIAN_WORDNET, tmp_path / "wordnet")
    names = set(os.listdir(target))
    assert {"data.noun", "index.noun", "data.verb", "lexnames", "noun.exc"} <= names
