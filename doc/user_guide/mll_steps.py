"""The three steps of Model Label Learning, drawn for the user guide (run by doc/conf.py)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

STEPS = [  # title, how often, what happens (one line per row of text), the call
    ("I. Labelling", "once per expert",
     ["every expert runs on the", "Semantic DAG's images:", "its mean output per node",
      "is its label (Eq. 1-3)"],
     "ModelLabeler.fit(hub)"),
    ("II. Selection", "once per task",
     ["class names matched to DAG", "nodes by text embeddings;", "CHCO scores each expert;",
      "the best k per class kept"],
     "MLLZeroShotClassifier.fit()"),
    ("III. Reuse", "per image batch",
     ["the selected experts run", "once each; their outputs", "are combined per class;",
      "uncovered classes: patch"],
     "predict(images)"),
]
INPUTS = ["a hub of experts\n+ a Semantic DAG", "a task: class names only", "images"]
COLOURS = ["#4c72b0", "#dd8452", "#55a868"]
WIDTH = 2.8  # of each step's box, in axis units


def box(ax, x, y, width, height, colour, fill):
    ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.02,rounding_size=0.06",
                                linewidth=1.5, edgecolor=colour, facecolor=fill))


def arrow(ax, start, end, colour="0.35"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, color=colour,
                                 linewidth=1.5))


fig, ax = plt.subplots(figsize=(8.9, 3.4))
ax.set(xlim=(0, 11.9), ylim=(0, 4.2))
ax.axis("off")
for i, ((title, when, body, code), given, colour) in enumerate(zip(STEPS, INPUTS, COLOURS)):
    x = 0.1 + i * 3.6
    middle = x + WIDTH / 2
    ax.text(middle, 3.95, given, ha="center", va="center", fontsize=10, style="italic")
    arrow(ax, (middle, 3.6), (middle, 3.25))
    box(ax, x, 0.75, WIDTH, 2.45, colour, "white")
    ax.text(middle, 2.95, title, ha="center", va="center", fontsize=13, weight="bold",
            color=colour)
    ax.text(middle, 2.6, when, ha="center", va="center", fontsize=9, color="0.4")
    ax.text(middle, 1.65, "\n".join(body), ha="center", va="center", fontsize=8.5, linespacing=1.4)
    ax.text(middle, 0.45, code, ha="center", va="center", fontsize=8.5, family="monospace")
    arrow(ax, (x + WIDTH + 0.1, 1.95), (x + 3.55, 1.95))
    if i < len(STEPS) - 1:
        label = "labels" if i == 0 else "k experts\nper class"
        ax.text(x + WIDTH + 0.4, 2.1, label, ha="center", va="bottom", fontsize=7.5,
                color="0.35")
ax.text(x + 3.6, 1.95, "predicted\nclasses", ha="left", va="center", fontsize=10,
        style="italic")
fig.tight_layout()
