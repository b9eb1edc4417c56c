"""
=======================================================
The patch: a general model for classes no expert serves
=======================================================

A hub of specialists rarely covers every class of a new task. Here the experts know only the
digits 0-7, and the Semantic DAG has images of those eight digits only: nothing in the hub or
the DAG knows an eight or a nine. A *general* zero-shot model, broad but weak, is set as
``general_model``; the classes the hub cannot serve go to it (the paper's interim patch,
:func:`skmll.reuse.patch_probabilities`).

The general model here is :class:`~skmll.ConSE` over a small network trained on only 40 digits
of all ten kinds, whose heads are named "zero" ... "nine": ConSE maps an image to the text
embeddings of its most probable head names and compares them with the task's class names.
With real images it would be ConSE over an ImageNet classifier
(:meth:`ConSE.from_imagenet <skmll.ConSE.from_imagenet>`) or CLIP
(:class:`~skmll.CLIPZeroShot`).
"""

# %%
# The hub, the DAG and the general model
# --------------------------------------
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import recall_score

from skmll import ConSE, MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert
from skmll.hub import as_image_batch

splits = load_digit_splits()
test_images, test_digits = splits.test_images, splits.test_digits

# Each expert: a small network trained in a second on the digits of its heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
names = splits.names
synsets = splits.synsets[:8]   # no images of eight or nine in the DAG
hub = ModelHub([train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
                train_expert("five-to-seven", [[5], [6], [7]])])
sdag = SemanticDAG.from_wordnet({synset: splits.reference[synset] for synset in synsets},
                                cache_dir=False)
labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)

general = ConSE(train_expert("all-digits-40-images", [[d] for d in range(10)], max_images=40),
                head_names=names, top_t=3)
true_names = np.array(names)[test_digits]

# %%
# Without β, matching decides
# ---------------------------
# "eight" and "nine" have no node of their own. A class that matches no node goes to the
# general model. But a class can also match a broader node, an ancestor of the digits 0-7
# (``digit.n.01``), whose label mixes theirs: then the experts serve it although they cannot
# tell it from the other digits, and their CHCO losses for it are much higher than for the
# classes they know.
plain = MLLZeroShotClassifier(names, labeler, general_model=general, cache_dir=False).fit()
for name in ["seven", "eight", "nine"]:
    if plain.matched_nodes_[name] is None:
        print(f"{name!r:8} -> no node: the general model serves it")
        continue
    node, similarity = plain.matched_nodes_[name]
    best = min(loss for _, loss, _ in plain.experts_[name])
    print(f"{name!r:8} -> {node:14} similarity {similarity:.2f}, best CHCO loss {best:.2f}")

# %%
# β sends them to the general model
# ---------------------------------
# ``beta`` keeps only predictors whose CHCO loss is at most β; a class left without any is
# *uncovered* and goes to the general model, like a class that matched no node.
# ``patch_calibration`` (the default, 0.02) measures on the DAG's reference images how often
# the general model would pull an image of a covered class into an uncovered one, and
# down-weights the uncovered classes until that happens for at most 2% of them;
# ``patch_calibration=None`` is the paper's rule, which takes the general model's word as it is.
settings = {
    "no β": plain,
    "β = 2, calibrated patch (default)": MLLZeroShotClassifier(
        names, labeler, beta=2.0, general_model=general, cache_dir=False).fit(),
    "β = 2, paper's patch": MLLZeroShotClassifier(
        names, labeler, beta=2.0, general_model=general, patch_calibration=None,
        cache_dir=False).fit(),
}
for title, clf in settings.items():
    print(f"{title}: uncovered {clf.uncovered_classes_}, "
          f"accuracy {clf.score(test_images, true_names):.3f}")
# A general model takes a canonical batch: float32 RGB in [0, 1] (what as_image_batch makes).
general_proba = general.predict_proba(as_image_batch(test_images), names)
general_pred = np.array(names)[general_proba.argmax(axis=1)]
print(f"the general model alone: accuracy {np.mean(general_pred == true_names):.3f}")

# %%
# Per-class recall shows the trade: the patch serves "eight" and "nine", and the calibration
# limits how many images of the covered classes the general model takes from the experts.
# The general model is weak: covered classes that it confuses with the uncovered ones still
# lose some recall, and more so under the paper's rule.
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
width = 0.8 / len(settings)
for i, (title, clf) in enumerate(settings.items()):
    recall = recall_score(true_names, clf.predict(test_images), labels=names, average=None)
    ax.bar(np.arange(len(names)) + (i - 1) * width, recall, width, label=title)
ax.set_xticks(np.arange(len(names)), names)
ax.set_ylabel("recall")
ax.set_ylim(0, 1.05)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize="small")
ax.set_title("Classes no expert serves, with and without the patch")
plt.show()
