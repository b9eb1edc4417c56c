"""The figures the paper publishes in its Table 1, printed beside ours.

Read from the paper's Table 1 (Acc.(c) and Cvr. above, Acc.(a) below; percent, Cvr as a
fraction), rows "CLIP" and "MLL". The paper's "MLL" row in Acc.(a) is MLL patched by CLIP.
"""

# task name (ZeroShotTask.name) -> the paper's column header
PAPER_COLUMNS = {
    "meta_album_dog": "MA-DOG", "meta_album_awa": "MA-AWA", "meta_album_brd": "MA-BRD",
    "oxford_pets": "Oxford-Pets", "food101": "Food-101", "caltech101": "Caltech-101",
    "flowers102": "Flowers-102",
}

# In PAPER_COLUMNS' order, then the paper's "Avg." over the seven tasks.
_ACC_COVERED = {"CLIP": (83.42, 94.08, 92.00, 87.40, 82.36, 89.04, 67.20, 85.07),
                "MLL": (96.97, 97.50, 100.0, 98.61, 95.63, 94.35, 97.55, 97.23)}
_COVERAGE = (1.00, 0.70, 0.30, 0.53, 0.32, 0.64, 0.46, 0.51)
_ACC_ALL = {"CLIP": (83.42, 94.25, 77.63, 83.11, 82.04, 88.63, 63.67, 81.82),
            "MLL": (96.97, 95.63, 78.13, 86.14, 83.12, 90.30, 66.03, 85.19)}
MEAN = "mean"


def published(dataset, method):
    """The paper's (Acc(c), Cvr, Acc(a)) as fractions, or None where it publishes none.

    ``dataset`` is a task name of :data:`PAPER_COLUMNS` or ``"mean"`` (the paper's average
    over its seven tasks); ``method`` is ``"CLIP"`` or ``"MLL"``.

    Examples
    --------
    >>> published("food101", "MLL")
    (0.9563, 0.32, 0.8312)
    >>> published("food101", "CLIP (10 prompts)") is None
    True
    """
    names = [*PAPER_COLUMNS, MEAN]
    if dataset not in names or method not in _ACC_ALL:
        return None
    column = names.index(dataset)
    return (round(_ACC_COVERED[method][column] / 100, 6), _COVERAGE[column],
            round(_ACC_ALL[method][column] / 100, 6))
