"""
===========================================================
Bring your own experts: torch, ONNX, Keras and scikit-learn
===========================================================

An expert is anything with a ``name``, an output size ``n_outputs`` and a method
``logits(images)`` (the :class:`~skmll.hub.Expert` protocol). skmll ships adapters for the
common model formats, and any other classifier fits behind the protocol in a few lines. This
example puts four kinds of model in one hub, each trained on its own part of the digits:

* a PyTorch module (:class:`~skmll.hub.TorchExpert`): digits 0-4;
* the same kind of network exported to ONNX (:class:`~skmll.hub.OnnxExpert`): digits 5-9;
* a Keras model saved as ``.keras`` (:class:`~skmll.hub.KerasExpert`): even or odd;
* a scikit-learn logistic regression behind the protocol: "round" digits (0, 6, 8, 9) or not.
"""

# %%
# Data
# ----
import os
import tempfile
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on torch: no TensorFlow needed

import keras
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from skmll import MLLZeroShotClassifier, ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits
from skmll.hub import KerasExpert, OnnxExpert, TorchExpert
from skmll.utils import hash_array

splits = load_digit_splits()
train_images, train_digits = splits.train_images, splits.train_digits
test_images, test_digits = splits.test_images, splits.test_digits
pixels = train_images.reshape(len(train_images), 64) / 255   # what the models train on
model_folder = tempfile.mkdtemp()


def head_targets(heads):
    """Rows of the training set that a model knows, and the output each should fire."""
    known = np.isin(train_digits, np.concatenate(heads))
    targets = np.zeros(len(train_digits), dtype=np.int64)
    for j, head in enumerate(heads):
        targets[np.isin(train_digits, head)] = j
    return known, targets


def train_torch_net(heads):
    known, targets = head_targets(heads)
    x, y = torch.tensor(pixels[known], dtype=torch.float32), torch.tensor(targets[known])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, len(heads)))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return net.eval()


# %%
# A PyTorch module
# ----------------
# :class:`~skmll.hub.TorchExpert` takes the module, the input size it expects and how to
# normalise: images are resized to ``input_size``, turned to grayscale for ``channels=1``, and
# handed over as ``(n, 1, 8, 8)`` tensors in [0, 1].
torch_expert = TorchExpert(train_torch_net([[0], [1], [2], [3], [4]]), name="torch-0-4",
                           input_size=(8, 8), channels=1)

# %%
# An ONNX file
# ------------
# :class:`~skmll.hub.OnnxExpert` reads the input layout, size and channels from the graph and
# runs it with onnxruntime. A model whose graph ends in a softmax is read as probabilities and
# turned into logits (``output="auto"``).
onnx_path = os.path.join(model_folder, "digits-5-9.onnx")
with warnings.catch_warnings():
    # torch's TorchScript-based exporter (the newer one needs the onnxscript package) warns
    # that it is the legacy one: the file it writes is the same ONNX graph either way
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.onnx.export(train_torch_net([[5], [6], [7], [8], [9]]), torch.zeros(1, 1, 8, 8),
                      onnx_path, input_names=["pixels"], dynamic_axes={"pixels": {0: "batch"}},
                      dynamo=False)
onnx_expert = OnnxExpert(onnx_path, name="onnx-5-9")
print(onnx_expert.layout, onnx_expert.input_size, onnx_expert.channels, onnx_expert.output)

# %%
# A Keras file
# ------------
# :class:`~skmll.hub.KerasExpert` loads a ``.keras`` or ``.h5`` file with Keras 3 on the torch
# backend. Its inputs are NHWC; this model ends in a softmax, so its outputs are read as
# probabilities.
known, targets = head_targets([[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]])
keras.utils.set_random_seed(0)
keras_model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(32, activation="relu"),
                                keras.layers.Dense(2, activation="softmax")])
keras_model.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss="sparse_categorical_crossentropy")
keras_model.fit(pixels[known].reshape(-1, 8, 8, 1), targets[known], epochs=20, batch_size=128,
                verbose=0)
keras_path = os.path.join(model_folder, "parity.keras")
keras_model.save(keras_path)
keras_expert = KerasExpert(keras_path, name="keras-parity")
print(keras_expert.input_size, keras_expert.channels, keras_expert.output)

# %%
# Any other classifier, behind the protocol
# -----------------------------------------
# ``logits`` receives a float32 array ``(n, H, W, 3)``: RGB, channels last, values in [0, 1],
# at the images' own size (one call per size), and returns ``(n, n_outputs)`` scores. The
# expert converts to what its model needs (here: gray 8 x 8, flattened). A ``fingerprint``
# that changes whenever the function changes lets skmll cache the expert's label on disk;
# here it is a hash of the fitted coefficients.
class SklearnExpert:
    """A fitted scikit-learn classifier on flattened 8 x 8 gray images, as an expert."""

    def __init__(self, model, name):
        self.model = model
        self.name = name
        # a binary model's decision_function is one logit per image (a sigmoid expert)
        self.n_outputs = 1 if len(model.classes_) == 2 else len(model.classes_)
        self.fingerprint = f"{name}-{hash_array(model.coef_)[:16]}"

    def logits(self, images):
        if images.shape[1:3] != (8, 8):
            raise ValueError(f"{self.name} takes 8 x 8 images; got {images.shape[1:3]}")
        gray = images.mean(axis=3).reshape(len(images), 64)
        return self.model.decision_function(gray).reshape(len(images), self.n_outputs)


known, targets = head_targets([[1, 2, 3, 4, 5, 7], [0, 6, 8, 9]])
round_model = LogisticRegression(max_iter=1000).fit(pixels[known], targets[known])
sklearn_expert = SklearnExpert(round_model, name="sklearn-round")

# %%
# One hub, one classifier
# -----------------------
# A single-output model (``decision_function`` of a binary logistic regression) is a sigmoid
# expert: skmll reads it as two heads, negative and positive.
hub = ModelHub([torch_expert, onnx_expert, keras_expert, sklearn_expert])
names = splits.names
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
labeler = ModelLabeler(sdag, cache_dir=False, verbose=0).fit(hub)
clf = MLLZeroShotClassifier(names, labeler, k=2, cache_dir=False).fit()
true_names = np.array(names)[test_digits]
print(f"accuracy: {clf.score(test_images, true_names):.3f}, "
      f"experts used: {clf.n_models_used_} of {len(hub)}")

# %%
# Which expert serves which class
# -------------------------------
# ``reuse_losses_`` holds every expert's CHCO loss for every class (lower is better); the
# ``k = 2`` smallest per class are the experts that serve it (ringed).
fig, ax = plt.subplots(figsize=(8, 3.2))
shown = ax.imshow(clf.reuse_losses_, cmap="viridis_r", aspect="auto")
for j, name in enumerate(clf.covered_classes_):
    for expert_name, _, _ in clf.experts_[name]:
        ax.scatter(j, clf.expert_names_.index(expert_name), s=160, facecolors="none",
                   edgecolors="white", linewidths=2)
ax.set_xticks(range(len(clf.covered_classes_)), clf.covered_classes_)
ax.set_yticks(range(len(clf.expert_names_)), clf.expert_names_)
fig.colorbar(shown, ax=ax, label="CHCO loss")
ax.set_title("Reuse losses: four model formats in one hub")
fig.tight_layout()
plt.show()
