"""
======================================
Accuracy grows with the hub (Figure 4)
======================================

The paper's Figure 4: as experts are added to the hub, a zero-shot task is served better,
with no training on the task. Here eight small digit experts, each trained on its own
partition of the digits, are added one at a time in three random orders; with no expert at
all the task goes to a general zero-shot model (ConSE over a weak ten-digit network).

Labels are cached by content in a temporary folder, so each expert is pre-tested once, however
many hubs it belongs to. The same curve on the full benchmark world (16 experts, five tasks)
is in the benchmarks page.
"""

# %%
# Eight experts and a general model
# ---------------------------------
import tempfile
from functools import partial

import matplotlib.pyplot as plt
import numpy as np

from skmll import ConSE, MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert
from skmll.hub import as_image_batch

splits = load_digit_splits()
test_images, test_digits = splits.test_images, splits.test_digits

# Each expert: a small network trained in a second on the digits of its heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
hub = ModelHub([
    train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
    train_expert("five-to-nine", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
    train_expert("round", [[1, 2, 3, 4, 5, 7], [0, 6, 8, 9]]),
    train_expert("pairs", [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]),
    train_expert("thirds", [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]),
    train_expert("odd-digits", [[1], [3], [5], [7], [9]]),
    train_expert("weak-all-ten", [[d] for d in range(10)], max_images=60),
])
names = splits.names
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
general = ConSE(train_expert("general", [[d] for d in range(10)], max_images=40),
                head_names=names, top_t=3)
true_names = np.array(names)[test_digits]

# %%
# Growing the hub
# ---------------
# The hub with no expert is the general model alone. Each larger hub is labelled through the
# cache (no expert is run twice on the DAG) and classifies the ten digits with ``k = 2``.
cache = tempfile.mkdtemp()
general_pred = np.array(names)[
    general.predict_proba(as_image_batch(test_images), names).argmax(axis=1)]
sizes = np.arange(len(hub) + 1)
curves = []
for seed in range(3):
    order = np.random.default_rng(seed).permutation(hub.names)
    accuracy = [np.mean(general_pred == true_names)]
    for size in sizes[1:]:
        labeler = ModelLabeler(sdag, cache_dir=cache, verbose=0).fit(hub.subset(order[:size]))
        clf = MLLZeroShotClassifier(names, labeler, k=2, general_model=general,
                                    cache_dir=cache).fit()
        accuracy.append(clf.score(test_images, true_names))
    curves.append(accuracy)
    print(f"order {seed}: {' '.join(order)}\n  accuracy {np.round(accuracy, 3)}")

# %%
# With a single expert, every class is served by it (``beta=None``), even classes it cannot
# tell apart, so a hub of one expert can do worse than the general model alone: ``beta`` hands
# such classes to the general model instead (see the patch example). From two or three
# experts on, the hub serves the task better than the general model, and every added expert
# helps on average.
curves = np.array(curves)
fig, ax = plt.subplots(figsize=(6, 4))
for curve in curves:
    ax.plot(sizes, curve, color="0.75", linewidth=1)
ax.plot(sizes, curves.mean(axis=0), "o-", color="tab:blue", label="mean of 3 orders")
ax.set_xlabel("experts in the hub")
ax.set_ylabel("zero-shot accuracy on ten digits")
ax.set_xticks(sizes)
ax.set_ylim(0, 1)
ax.legend(loc="lower right")
ax.set_title("Ability grows with the hub")
fig.tight_layout()
plt.show()
