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
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, TorchExpert

digits = load_digits()
images = (digits.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8), uint8 gray
train_images, other_images, train_digits, other_digits = train_test_split(
    images, digits.target, train_size=0.5, stratify=digits.target, random_state=0)


def train_expert(name, heads):
    """A network whose output ``j`` fires for the digits in ``heads[j]``."""
    known = np.isin(train_digits, np.concatenate(heads))
    targets = np.zeros(len(train_digits), dtype=np.int64)
    for j, head in enumerate(heads):
        targets[np.isin(train_digits, head)] = j
    x = torch.tensor(train_images[known] / 255, dtype=torch.float32)[:, None]
    y = torch.tensor(targets[known])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, len(heads)))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return TorchExpert(net, name=name, input_size=(8, 8), channels=1)


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
names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
synsets = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
           "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01"]
reference_images, test_images, reference_digits, test_digits = train_test_split(
    other_images, other_digits, train_size=300, stratify=other_digits, random_state=0)
sdag = SemanticDAG.from_wordnet(
    {synset: reference_images[reference_digits == d] for d, synset in enumerate(synsets)},
    cache_dir=False)
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
