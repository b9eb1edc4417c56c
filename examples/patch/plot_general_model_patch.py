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
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split

from skmll import ConSE, MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG, TorchExpert
from skmll.hub import as_image_batch

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


names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
synsets = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
           "six.n.01", "seven.n.01"]   # no images of eight or nine in the DAG
hub = ModelHub([train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
                train_expert("five-to-seven", [[5], [6], [7]])])
sdag = SemanticDAG.from_wordnet(
    {synset: reference_images[reference_digits == d] for d, synset in enumerate(synsets)},
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
