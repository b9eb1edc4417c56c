"""Offline WordNet 3.0: Debian's ``wordnet-base`` files read by nltk, with no download.

Debian ships the WordNet database in ``/usr/share/wordnet`` but not the ``lexnames`` table nltk's
reader opens first, and nltk (3.10+) reads only files that lie under a folder named on
``nltk.data.path`` and that belong to the current user. So the files are copied once into
``<cache_dir>/wordnet``, the table is written beside them, and that one folder is appended to
``nltk.data.path`` (it holds no ``corpora/`` subfolder, so no other nltk resource lookup changes).
"""

import functools
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from ..utils import resolve_cache_dir

_DEBIAN_WORDNET = Path("/usr/share/wordnet")

# WordNet's lexicographer files, in the fixed order of the ``lexnames`` table (see lexnames(5WN)).
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_POS_NUMBERS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

# Copies made with caching off: kept for the life of the process, removed at exit.
_TEMPORARY_FOLDERS = []

_IMAGENET_ID = re.compile(r"^n(\d{8})$")

_MISSING_WORDNET = (
    "WordNet 3.0 was not found. Install Debian's copy (`apt-get install wordnet-base`, which "
    "fills /usr/share/wordnet) or nltk's (`python -c \"import nltk; nltk.download('wordnet')\"`)."
)


def _lexnames_table():
    """The 45-line ``lexnames`` file: ``NN<TAB>name<TAB>pos number`` per line."""
    return "".join(
        f"{i:02d}\t{name}\t{_POS_NUMBERS[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES)
    )


def _copy_wordnet(source, target):
    """Copy the WordNet files of ``source`` into ``target`` (whole or not at all) and return it.

    The copy is staged in a sibling folder and renamed into place, so concurrent processes
    never see half a copy: whoever renames first wins and the others reuse its folder.
    """
    if (target / "lexnames").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".wordnet-"))
    try:
        for path in source.iterdir():
            if path.is_file():
                shutil.copyfile(path, staging / path.name)
        (staging / "lexnames").write_text(_lexnames_table())
        for path in staging.iterdir():
            os.chmod(path, 0o644)  # nltk refuses files that others can write
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "lexnames").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=None)
def _reader_class():
    """nltk's WordNet reader, without the cross-version sense map it builds on start-up.

    That map (used only by the multilingual Open Multilingual Wordnet functions, which skmll does
    not use) needs ``index.sense``, a file Debian does not ship.
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class WordNet30Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    return WordNet30Reader


def _nltk_downloaded_wordnet():
    """nltk's own ``wordnet`` corpus when the user downloaded it, else None."""
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return None
    return wordnet


@functools.lru_cache(maxsize=None)
def _load_wordnet_from(source, folder):
    """Reader over a copy of ``source`` in ``folder`` (None: a private temporary folder)."""
    import nltk

    if not (source / "data.noun").is_file():
        reader = _nltk_downloaded_wordnet()
        if reader is None:
            raise LookupError(_MISSING_WORDNET)
        return reader
    if folder is None:
        _TEMPORARY_FOLDERS.append(tempfile.TemporaryDirectory(prefix="skmll-wordnet-"))
        folder = Path(_TEMPORARY_FOLDERS[-1].name) / "wordnet"
    root = str(_copy_wordnet(source, folder).resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        # "multilingual functions are not available": expected, no OMW reader is given
        warnings.simplefilter("ignore", UserWarning)
        return _reader_class()(root, None)


def load_wordnet(cache_dir=None):
    """Load WordNet 3.0 offline (once per process and cache folder).

    Reads Debian's ``wordnet-base`` files (``/usr/share/wordnet``) through a copy kept in
    ``<cache_dir>/wordnet``; without them, falls back to nltk's downloaded ``wordnet`` corpus.

    Parameters
    ----------
    cache_dir : path, None or False, default=None
        Where the copy is kept (None: ``$SKMLL_CACHE_DIR`` or ``~/.cache/skmll``; False: a
        temporary folder for this process).

    Returns
    -------
    wordnet : nltk.corpus.reader.wordnet.WordNetCorpusReader

    Raises
    ------
    LookupError
        When neither Debian's nor nltk's WordNet is installed (the message says how to get one).

    Examples
    --------
    >>> from skmll.semantic_graph import load_wordnet
    >>> wordnet = load_wordnet()
    >>> wordnet.get_version()
    '3.0'
    >>> wordnet.synset("dog.n.01").definition()[:40]
    'a member of the genus Canis (probably de'
    """
    folder = resolve_cache_dir(cache_dir)
    return _load_wordnet_from(_DEBIAN_WORDNET, None if folder is None else folder / "wordnet")


def synset_for(key, wordnet=None):
    """The WordNet synset named by a synset name or an ImageNet id.

    Parameters
    ----------
    key : str or nltk Synset
        A synset name such as ``"gym_shoe.n.01"``, or an ImageNet id such as ``"n03472535"``
        (``n`` followed by the eight-digit noun offset). A Synset is returned as it is.
    wordnet : WordNetCorpusReader, default=None
        The reader to use (default: :func:`load_wordnet`).

    Returns
    -------
    synset : nltk.corpus.reader.wordnet.Synset

    Raises
    ------
    ValueError
        When ``key`` names no synset.

    Examples
    --------
    >>> from skmll.semantic_graph import synset_for
    >>> synset_for("n02084071").name()
    'dog.n.01'
    >>> synset_for("gym_shoe.n.01").lemma_names()
    ['gym_shoe', 'sneaker', 'tennis_shoe']
    """
    if hasattr(key, "hypernyms") and hasattr(key, "lemma_names"):
        return key
    if not isinstance(key, str):
        raise TypeError(f"a WordNet key must be a str; got {type(key).__name__} {key!r}")
    wordnet = load_wordnet() if wordnet is None else wordnet
    imagenet_id = _IMAGENET_ID.match(key)
    if imagenet_id:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # nltk warns, then returns None
            synset = wordnet.synset_from_pos_and_offset("n", int(imagenet_id.group(1)))
        if synset is None:
            raise ValueError(f"{key!r} is not the id of any WordNet 3.0 noun synset")
        return synset
    if key.count(".") < 2:
        raise ValueError(
            f"{key!r} is neither a synset name like 'gym_shoe.n.01' nor an ImageNet id like "
            "'n03472535'"
        )
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        return wordnet.synset(key)
    except (WordNetError, ValueError) as exc:
        raise ValueError(f"{key!r} is not a WordNet 3.0 synset: {exc}") from exc


def node_text(synset):
    """The text that describes a synset for matching: every lemma name and the definition.

    Parameters
    ----------
    synset : nltk Synset

    Returns
    -------
    text : str
        ``"Name: <lemmas, comma-separated>\\nDescription: <definition>"``.

    Examples
    --------
    >>> from skmll.semantic_graph import node_text, synset_for
    >>> print(node_text(synset_for("gym_shoe.n.01")))
    Name: gym shoe, sneaker, tennis shoe
    Description: a canvas shoe with a pliable rubber sole
    """
    names = ", ".join(name.replace("_", " ") for name in synset.lemma_names())
    return f"Name: {names}\nDescription: {synset.definition()}"


def wordnet_noun_nodes(wordnet=None):
    """Every WordNet noun synset, as node ids and node texts (82,115 in WordNet 3.0).

    Parameters
    ----------
    wordnet : WordNetCorpusReader, default=None
        The reader to use (default: :func:`load_wordnet`).

    Returns
    -------
    ids : list of str
        Synset names, in the order of the WordNet noun data file.
    texts : list of str
        :func:`node_text` of each synset.

    Examples
    --------
    >>> from skmll.semantic_graph import wordnet_noun_nodes
    >>> ids, texts = wordnet_noun_nodes()  # doctest: +SKIP
    >>> len(ids)  # doctest: +SKIP
    82115
    """
    wordnet = load_wordnet() if wordnet is None else wordnet
    synsets = list(wordnet.all_synsets("n"))
    return [s.name() for s in synsets], [node_text(s) for s in synsets]
