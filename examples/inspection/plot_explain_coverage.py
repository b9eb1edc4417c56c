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
from functools import partial

import matplotlib.pyplot as plt
import numpy as np

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert
from skmll.metrics import zero_shot_report

splits = load_digit_splits()
test_images, test_digits = splits.test_images, splits.test_digits

# Each expert: a small network trained in a second on the digits of its heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
hub = ModelHub([
    train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
    train_expert("five-to-nine", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
])
digit_names = splits.names
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
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
