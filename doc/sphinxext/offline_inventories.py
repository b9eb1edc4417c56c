"""Intersphinx inventories written from the installed packages, so the build needs no network.

Intersphinx normally downloads each project's ``objects.inv``. Here the public names of
scikit-learn, NumPy, Matplotlib's pyplot and ``torch.nn`` are read from the installed packages
and written as inventories whose addresses follow each project's documented page layout
(one generated page per public function or class). Only names that exist in the installed
version are listed, so a link never points at an object the reader's version lacks.
"""

import importlib
import inspect
import zlib
from pathlib import Path

# project -> (documentation root, [(module, page pattern)]); "{name}" is the dotted name.
PROJECTS = {
    "sklearn": ("https://scikit-learn.org/stable/",
                [(f"sklearn.{sub}", "modules/generated/{name}.html") for sub in (
                    "base", "calibration", "cluster", "datasets", "decomposition", "ensemble",
                    "linear_model", "metrics", "model_selection", "naive_bayes", "neighbors",
                    "pipeline", "preprocessing", "svm", "tree")]),
    "numpy": ("https://numpy.org/doc/stable/", [("numpy", "reference/generated/{name}.html")]),
    "matplotlib": ("https://matplotlib.org/stable/",
                   [("matplotlib.pyplot", "api/_as_gen/{name}.html")]),
    "torch": ("https://docs.pytorch.org/docs/stable/",
              [("torch.nn", "generated/{name}.html"), ("torch.optim", "generated/{name}.html")]),
}


# Targets that scikit-learn's own docstrings link to, and so do the methods skmll's estimators
# inherit from it (``set_score_request`` refers to its glossary and its metadata routing guide).
EXTRA_LINES = {
    "sklearn": ["meta-estimator std:term -1 glossary.html#term-meta-estimator -",
                "metadata_routing std:label -1 metadata_routing.html#metadata-routing "
                "Metadata Routing"],
}


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if not n.startswith("_")]


def inventory_lines(module_name, page):
    """Inventory lines (``name domain:role priority uri dispname``) for a module's functions and
    classes."""
    module = importlib.import_module(module_name)
    lines = []
    for name in sorted(_public_names(module)):
        try:
            obj = getattr(module, name, None)
        except ImportError:  # experimental names that need an explicit "enable" import
            continue
        if inspect.isclass(obj):
            role = "py:class"
        elif callable(obj):
            role = "py:function"
        else:
            continue  # constants, submodules and type aliases have no page of their own
        dotted = f"{module_name}.{name}"
        # "$" in the address stands for the object's name (the inventory format's shorthand).
        lines.append(f"{dotted} {role} 1 {page.format(name=dotted)}#$ -")
    return lines


def write_inventory(path, project, version, lines):
    """Write ``lines`` as a version 2 Sphinx inventory (a plain header, zlib-compressed body)."""
    header = ("# Sphinx inventory version 2\n"
              f"# Project: {project}\n"
              f"# Version: {version}\n"
              "# The remainder of this file is compressed using zlib.\n")
    body = zlib.compress("".join(line + "\n" for line in lines).encode("utf-8"))
    path.write_bytes(header.encode("utf-8") + body)


def intersphinx_mapping(folder):
    """Write one inventory per project into ``folder``; the mapping for ``conf.py``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for project, (root, modules) in PROJECTS.items():
        lines = [line for module, page in modules for line in inventory_lines(module, page)]
        lines += EXTRA_LINES.get(project, [])
        version = getattr(importlib.import_module(project), "__version__", "")
        path = folder / f"{project}.inv"
        write_inventory(path, project, version, lines)
        mapping[project] = (root, str(path))
    return mapping
