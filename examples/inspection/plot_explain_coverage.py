"""
=================================================
What the classifier decided: explain and coverage
=================================================

After ``fit``, :class:`~skmll.MLLZeroShotClassifier` says which Semantic DAG node each class
name matched (and how similar the texts were), which experts and heads serve each class with
what CHCO loss, and which classes the hub covers. This example asks for the ten digits and a
class the hub knows nothing about, "kitten", and reads those answers:
:meth:`~skmll.MLLZeroShotClassifier.explain`, ``matched_nodes_``, ``experts_``,
``coverage_``, and the paper's metrics Acc(c), Cvr and Acc(a)
(:func:`skmll.metrics.zero_shot_report`).
"""

# %%
# The hub
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, TorchExpert
from skmll.metrics import zero_shot_report

digits = load_digits()
images = (digits.images * (255 / 16)).astype(np.uint8)
train_images, other_images, train_digits, other_digits = train_test_split(
    images, digits.target, train_size=0.5, stratify=digits.target, random_state=0)
reference_images, test_images, reference_digits, test_digits = train_test_split(
    other_images, other_digits, train_size=300, stratify=other_digits, random_state=0)


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
    train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
    train_expert("five-to-nine", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
])
digit_names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
synsets = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
           "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01"]
sdag = SemanticDAG.from_wordnet(
    {synset: reference_images[reference_digits == d] for d, synset in enumerate(synsets)},
    cache_dir=False)
labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)

# %%
# A class the hub cannot serve
# ----------------------------
# Matching only considers nodes that carry images (their own or their descendants'), so
# "kitten" can only go to some ancestor of the digits, with a low text similarity.
# ``min_similarity`` leaves such pairs unmatched. Without a general model an unmatched class
# is an error at ``fit`` that names it; ``on_uncovered="drop"`` leaves it out instead.
names = digit_names + ["kitten"]
clf = MLLZeroShotClassifier(names, labeler, k=2, min_similarity=0.3, on_uncovered="drop",
                            cache_dir=False).fit()
print(clf.explain())

# %%
# ``classes_`` holds the classes that ``predict`` can return, sorted as in every scikit-learn
# classifier; the order the names were given in is kept in ``matched_nodes_``.
print("classes_:", list(clf.classes_))
dropped = [c for c in names if c not in clf.covered_classes_]
print("dropped:", dropped, f"coverage: {clf.coverage_:.2f}")

# %%
# The paper's metrics
# -------------------
# Acc(c) is the accuracy on the images of covered classes, Cvr the fraction of the task's
# classes that are covered, Acc(a) the accuracy on every image of the task. The test images
# here are digits only; a task whose images include kittens would count each as an error.
true_names = np.array(digit_names)[test_digits]
print(zero_shot_report(true_names, clf.predict(test_images), clf.covered_classes_,
                       classes=names))

# %%
# Text similarity and reuse loss per class
# ----------------------------------------
# A class is served well when its name matched its node closely (left) and some expert
# separates it from the other classes with a small CHCO loss (right).
similarity = [clf.matched_nodes_[c][1] if clf.matched_nodes_[c] else 0.0 for c in names]
best_loss = [min((loss for _, loss, _ in clf.experts_.get(c, [])), default=np.nan)
             for c in names]
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
colours = ["tab:blue" if c in clf.covered_classes_ else "tab:red" for c in names]
left.barh(names, similarity, color=colours)
left.axvline(0.3, color="black", linestyle=":", label="min_similarity")
left.set_xlabel("cosine similarity of name and node text")
left.legend(loc="lower right")
left.invert_yaxis()
right.barh(names, best_loss, color=colours)
right.set_xlabel("best expert's CHCO loss (lower is better)")
fig.suptitle("Covered (blue) and uncovered (red) classes")
fig.tight_layout()
plt.show()
