"""Module factories that hub files and lazy experts in the tests name as "package.module:factory".

A real factory records each model it builds, so tests can count what was loaded and when.
"""

import torch

BUILT = []   # one entry (the output size) per module built


def mlp(n_outputs, hidden=32, pixels=64):
    """The digit experts' architecture (tests/conftest.py train_mlp): flatten, hidden, logits."""
    BUILT.append(n_outputs)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(pixels, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, n_outputs))
