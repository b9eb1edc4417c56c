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

.. note::

   This example runs 25 fits (about 20 s on two cores). A site built with
   ``SKMLL_DOCS_GALLERY=fast``, as the continuous integration builds it, shows its code
   without running it, so no output or figure appears below; ``bash scripts/docs.sh`` (every
   example) or ``python examples/model_selection/plot_grid_search_k.py`` shows them.
"""

# %%
# The hub and its labels
# ----------------------
import tempfile
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert

splits = load_digit_splits()
test_images, test_digits = splits.test_images, splits.test_digits

# Each expert: a small network trained in a second on the digits of its heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
hub = ModelHub([
    train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
    train_expert("five-to-nine", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
    train_expert("round", [[1, 2, 3, 4, 5, 7], [0, 6, 8, 9]]),
    train_expert("weak-all-ten", [[d] for d in range(10)], max_images=60),
])
names = splits.names
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
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
