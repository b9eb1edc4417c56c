"""The Semantic DAG (SDAG) of Step I, and offline WordNet 3.0 to build it from."""

from ._sdag import SemanticDAG
from ._wordnet import load_wordnet, node_text, synset_for, wordnet_noun_nodes

__all__ = ["SemanticDAG", "load_wordnet", "node_text", "synset_for", "wordnet_noun_nodes"]
