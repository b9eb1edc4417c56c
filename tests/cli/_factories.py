"""Torch module factories that the command-line tests name in hub files.

Each build appends the factory's ``tag`` to the file named by ``$SKMLL_TEST_BUILD_LOG`` (when
set), so that a test can count what a separate process built.
"""

import os

import torch

BUILD_LOG = "SKMLL_TEST_BUILD_LOG"


class ChannelMeans(torch.nn.Module):
    """Logits = (mean red, mean green, mean blue) @ weights.T: an expert that sees colour."""

    def __init__(self, weights):
        super().__init__()
        self.linear = torch.nn.Linear(3, len(weights), bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(weights, dtype=torch.float32))

    def forward(self, images):
        return self.linear(images.mean(dim=(2, 3)))


def channel_means(tag, weights):
    log = os.environ.get(BUILD_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{tag}\n")
    return ChannelMeans(weights)


def builds(log_path):
    """The tags built so far, in order, as logged in ``log_path``."""
    try:
        with open(log_path, encoding="utf-8") as file:
            return file.read().split()
    except FileNotFoundError:
        return []
