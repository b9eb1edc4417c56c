"""
==========================================
Quick start: a digit classifier from names
==========================================

Three small networks are trained on parts of scikit-learn's digits: one knows the digits 0-4,
one the digits 5-9, one only whether a digit is even or odd. None of them is a ten-class
digit classifier, and skmll is never told what their outputs mean. Given only the ten class
names, Model Label Learning builds one from them in three steps:

1. **labelling**: every expert is pre-tested on a Semantic DAG of WordNet synsets that carry a
   few representative images (its *label*);
2. **selection**: the class names are matched to DAG nodes by text embeddings, and CHCO picks
   the experts (and heads) that best separate the task's classes;
3. **reuse**: the selected experts classify new images together.
"""

# %%
# The experts
# -----------
# Each expert is a two-layer network on 8 x 8 grayscale images, trained in a second on its own
# part of the label space. :class:`~skmll.hub.TorchExpert` puts any ``torch.nn.Module``
# classifier behind skmll's expert protocol (a name, an output size, ``logits(images)``).
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert

splits = load_digit_splits()
# train_digit_expert trains a small network on the digits of the given heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
hub = ModelHub([
    train_expert("low-digits", [[0], [1], [2], [3], [4]]),
    train_expert("high-digits", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
])
hub

# %%
# Step I: labelling
# -----------------
# The Semantic DAG holds WordNet synsets with a few representative images each (here 30
# digits per synset, disjoint from the experts' training images and from the test images
# below) and all their WordNet ancestors. :class:`~skmll.labelling.ModelLabeler` runs every
# expert on those images once. ``cache_dir=False`` keeps everything in memory; by default the
# labels are cached on disk by content, so a second labelling of the same hub is free.
names = splits.names
test_images, test_digits = splits.test_images, splits.test_digits
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)
sdag

# %%
# Steps II and III: a classifier from class names
# -----------------------------------------------
# ``fit`` takes no data: it matches each name to a node, solves CHCO for every expert, and
# keeps the ``k`` best experts per class. :meth:`~skmll.MLLZeroShotClassifier.explain` says
# what it decided.
clf = MLLZeroShotClassifier(names, labeler, k=2, cache_dir=False).fit()
print(clf.explain())

# %%
# The classifier is a scikit-learn classifier: ``predict``, ``predict_proba`` and ``score``
# take images, here the held-out digits (uint8 arrays; PIL images and file paths work too).
true_names = np.array(names)[test_digits]
print(f"accuracy on {len(test_images)} test digits: {clf.score(test_images, true_names):.3f}")

fig, ax = plt.subplots(figsize=(6, 5.5))
ConfusionMatrixDisplay.from_predictions(true_names, clf.predict(test_images), labels=names,
                                        ax=ax, colorbar=False)
ax.set_title("Zero-shot digits from three partial experts")
plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
fig.tight_layout()
plt.show()
