"""Benchmark semantic matching at WordNet scale: embed every noun synset once, then match.

Embeds the texts of all 82,115 WordNet 3.0 noun synsets with the default text encoder
(all-MiniLM-L6-v2), caches them on disk, and matches class names against them with one matrix
product and ``mutual_best_match`` (Algorithm 1, line 4). Two sets of class names are matched:

* ``wordnet``: the lemma names of random noun synsets (``"tabby, tabby cat"`` style);
* ``imagenet``: the 1000 ImageNet-1k class names (timm's lemma lists).

For each, the script reports the time of the matrix product and of ``mutual_best_match``, the
fraction of names matched at all, and the fraction matched to their own synset (a name whose
own synset is left out by ``--limit`` is not counted).

The first run embeds (about 5-6 minutes on 2 CPU cores); later runs load the cached
embeddings. Each run also loads them a second time, so both timings appear in one run.

Usage::

    python benchmarks/bench_matching.py [--limit N] [--n-names 1000] [--cache-dir DIR]
"""

import argparse
import time

import numpy as np

from skmll.reuse._general import imagenet_class_names, imagenet_wnids
from skmll.selection._matching import mutual_best_match
from skmll.selection._text import default_text_encoder, embed_texts
from skmll.semantic_graph import load_wordnet, synset_for, wordnet_noun_nodes


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="embed only the first N noun synsets (quick runs)")
    parser.add_argument("--n-names", type=int, default=1000,
                        help="random WordNet synsets whose names are matched")
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $SKMLL_CACHE_DIR or ~/.cache/skmll)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def lemma_list(synset):
    """A synset's lemmas as one class name, the format of ImageNet's class names."""
    return ", ".join(name.replace("_", " ") for name in synset.lemma_names())


def name_sets(wordnet, node_ids, n_names, seed):
    """``{set name: (class names, own synset name per class)}``."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(node_ids), size=min(n_names, len(node_ids)), replace=False)
    sampled = [wordnet.synset(node_ids[i]) for i in picked]
    imagenet_own = [synset_for(wnid, wordnet).name() for wnid in imagenet_wnids()]
    return {
        "wordnet": ([lemma_list(s) for s in sampled], [s.name() for s in sampled]),
        "imagenet": (imagenet_class_names(), imagenet_own),
    }


def main():
    args = parse_args()
    wordnet = load_wordnet()
    node_ids, texts = wordnet_noun_nodes(wordnet)
    node_ids, texts = node_ids[:args.limit], texts[:args.limit]
    encoder = default_text_encoder()
    print(f"{len(texts)} WordNet noun synset texts")

    nodes, first_seconds = timed(embed_texts, encoder, texts, cache_dir=args.cache_dir,
                                 verbose=1)
    _, load_seconds = timed(embed_texts, encoder, texts, cache_dir=args.cache_dir)
    print(f"first call (embeds, unless an earlier run cached them): {first_seconds:8.2f} s "
          f"({len(texts) / first_seconds:,.0f} texts/s)")
    print(f"second call (loads the disk cache):                    {load_seconds:8.2f} s "
          f"({nodes.nbytes / 2**20:.0f} MiB)")

    position = {node: i for i, node in enumerate(node_ids)}
    print(f"\n{'names':<9} {'n':>5} {'embed s':>8} {'product s':>10} {'mutual s':>9} "
          f"{'match s':>8} {'matched':>8} {'own synset':>11} {'countable':>10}")
    for label, (names, own) in name_sets(wordnet, node_ids, args.n_names, args.seed).items():
        classes, embed_seconds = timed(embed_texts, encoder, names, cache_dir=args.cache_dir)
        # Cosine similarities by one matrix product (rows are unit norm), then mutual bests.
        similarity, product_seconds = timed(np.matmul, classes, nodes.T)
        (matched, _), mutual_seconds = timed(mutual_best_match, similarity)
        target = np.array([position.get(name, -2) for name in own])
        countable = target >= 0
        own = (f"{np.mean(matched[countable] == target[countable]):.3f}"
               if countable.any() else "n/a")
        print(f"{label:<9} {len(names):>5} {embed_seconds:>8.2f} {product_seconds:>10.3f} "
              f"{mutual_seconds:>9.3f} {product_seconds + mutual_seconds:>8.3f} "
              f"{np.mean(matched >= 0):>8.3f} {own:>11} {countable.sum():>10}")


if __name__ == "__main__":
    main()
