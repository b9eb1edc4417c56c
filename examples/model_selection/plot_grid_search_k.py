"""
=========================================
Cross-validation and a grid search over k
=========================================

:class:`~skmll.MLLZeroShotClassifier` is a scikit-learn classifier whose ``fit`` needs no
data, so scikit-learn's model-selection tools work on it as they are: ``cross_val_score``
scores it on each test fold, and ``GridSearchCV`` compares settings such as the reuse budget
``k`` (experts per class). Cloning keeps the fitted labeler's labels, so no expert is
pre-tested again.

The hub: five small networks trained on different parts of the digits, some sharp (digits
0-4, digits 5-9), some coarse (even or odd, "round" or not), one weak (all ten digits from 60
images).
"""

# %%
# The hub and its labels
# ----------------------
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.model_selection import train_test_split

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, TorchExpert

digits = load_digits()
images = (digits.images * (255 / 16)).astype(np.uint8)
train_images, other_images, train_digits, other_digits = train_test_split(
    images, digits.target, train_size=0.5, stratify=digits.target, random_state=0)
reference_images, test_images, reference_digits, test_digits = train_test_split(
    other_images, other_digits, train_size=300, stratify=other_digits, random_state=0)


def train_expert(name, heads, max_images=None):
    """A network whose output ``j`` fires for the digits in ``heads[j]``."""
    known = np.flatnonzero(np.isin(train_digits, np.concatenate(heads)))[:max_images]
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
    train_expert("round", [[1, 2, 3, 4, 5, 7], [0, 6, 8, 9]]),
    train_expert("weak-all-ten", [[d] for d in range(10)], max_images=60),
])
names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
synsets = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
           "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01"]
sdag = SemanticDAG.from_wordnet(
    {synset: reference_images[reference_digits == d] for d, synset in enumerate(synsets)},
    cache_dir=False)
labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)
true_names = np.array(names)[test_digits]

# %%
# Cross-validation
# ----------------
# ``fit`` ignores the training folds (the classifier is zero-shot), so each split scores the
# same selection on a different test fold: the spread says how much the accuracy depends on
# which images are drawn. The classifier's cache (here a temporary folder) keeps the DAG's
# node embeddings, so the many fits below embed only the class names.
cache = tempfile.mkdtemp()
clf = MLLZeroShotClassifier(names, labeler, k=2, cache_dir=cache)
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scores = cross_val_score(clf, test_images, true_names, cv=folds)
print(f"accuracy per fold: {np.round(scores, 3)}; mean {scores.mean():.3f}")

# %%
# A grid search over k
# --------------------
# More experts per class bring more evidence and cost more forward passes at prediction time.
# The search scores each ``k`` on the same folds; ``n_models_used_`` counts the distinct
# experts each selection runs.
search = GridSearchCV(clf, {"k": [1, 2, 3, 4, 5]}, cv=folds).fit(test_images, true_names)
ks = search.cv_results_["param_k"].data.astype(int)
mean, std = search.cv_results_["mean_test_score"], search.cv_results_["std_test_score"]
used = [MLLZeroShotClassifier(names, labeler, k=k, cache_dir=cache).fit().n_models_used_
        for k in ks]
print(f"best k: {search.best_params_['k']} (accuracy {search.best_score_:.3f})")

fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(ks, mean, yerr=std, marker="o", capsize=4, label="accuracy (5 folds)")
ax.set_xlabel("k: experts per class")
ax.set_ylabel("accuracy")
ax.set_xticks(ks)
models = ax.twinx()
models.plot(ks, used, "s--", color="tab:orange", label="experts run")
models.set_ylabel("distinct experts run")
models.set_ylim(0, len(hub) + 0.5)
fig.legend(loc="lower right", bbox_to_anchor=(0.85, 0.2))
ax.set_title("The reuse budget k")
fig.tight_layout()
plt.show()
