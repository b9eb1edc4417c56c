"""Write the files of the command-line walk-through into a folder (default: the current one).

    python doc/user_guide/cli_walkthrough.py walk/

writes, from scikit-learn's digits (8 x 8 images, disjoint parts for each use):

- ``images/<synset>/*.png``: 20 reference images per digit, one folder per WordNet synset
  (``zero.n.02``, ``one.n.01``, ... ``nine.n.01``), for ``skmll label``;
- ``models/*.skops``: three scikit-learn classifiers on the 64 gray pixels (digits 0-4, digits
  5-9, even or odd), saved with skops;
- ``hub.toml``: the hub file naming them (by absolute path: they stay where they are when the
  label directory is copied);
- ``photos/*.png``: 12 test images to classify, named after their true digit.
"""

import sys
from pathlib import Path

import numpy as np
import skops.io
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SYNSETS = ["zero.n.02", "one.n.01", "two.n.01", "three.n.01", "four.n.01", "five.n.01",
           "six.n.01", "seven.n.01", "eight.n.01", "nine.n.01"]
EXPERTS = {   # name: what each digit is called by the expert (None: not trained on it)
    "zero-to-four": {d: NAMES[d] for d in range(5)},
    "five-to-nine": {d: NAMES[d] for d in range(5, 10)},
    "parity": {d: ("even", "odd")[d % 2] for d in range(10)},
}
HUB = """\
[[expert]]
name = "{name}"
source = "sklearn:{path}"
input_size = [8, 8]
"""


def write(folder):
    folder = Path(folder).resolve()
    digits = load_digits()
    pixels = np.clip(digits.images * 16, 0, 255).astype(np.uint8)   # 0-16 -> 0-255
    order = np.random.default_rng(0).permutation(len(pixels))
    train, reference, test = order[:900], order[900:1500], order[1500:]
    for digit, synset in enumerate(SYNSETS):
        (folder / "images" / synset).mkdir(parents=True, exist_ok=True)
        chosen = reference[digits.target[reference] == digit][:20]
        for i, index in enumerate(chosen):
            Image.fromarray(pixels[index]).save(folder / "images" / synset / f"{i:02d}.png")
    (folder / "models").mkdir(exist_ok=True)
    for name, names in EXPERTS.items():
        used = train[np.isin(digits.target[train], list(names))]
        model = LogisticRegression(max_iter=1000).fit(
            pixels[used].reshape(len(used), -1) / 255, [names[d] for d in digits.target[used]])
        skops.io.dump(model, folder / "models" / f"{name}.skops")
    tables = [HUB.format(name=name, path=folder / "models" / f"{name}.skops") for name in EXPERTS]
    (folder / "hub.toml").write_text("\n".join(tables), encoding="utf-8")
    (folder / "photos").mkdir(exist_ok=True)
    for index in test[:12]:
        Image.fromarray(pixels[index]).save(
            folder / "photos" / f"{NAMES[digits.target[index]]}-{index}.png")


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else ".")
