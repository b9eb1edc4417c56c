"""Fail the build when a public name is missing from the API reference.

Every name in a public module's ``__all__`` (for a module without ``__all__``, every public
function or class it defines) must be listed in an ``autosummary`` with a ``:toctree:`` (the
blocks that generate pages) in ``doc/references/``, under its own module or any other that
exports the same object (``skmll.ModelHub`` is ``skmll.hub.ModelHub``). Without this check a
new public function would silently have no page.
"""

import importlib
import inspect
import re
from pathlib import Path

from sphinx.errors import ExtensionError

PUBLIC_MODULES = ["skmll", "skmll.semantic_graph", "skmll.hub", "skmll.labelling",
                  "skmll.selection", "skmll.zoo", "skmll.reuse", "skmll.baselines",
                  "skmll.datasets", "skmll.metrics", "skmll.paper", "skmll.exceptions",
                  "skmll.utils"]

_CURRENT_MODULE = re.compile(r"^\.\. currentmodule:: (\S+)")
_AUTOSUMMARY = re.compile(r"^\.\. autosummary::")


def public_names(module_name):
    """The names a module exports: its ``__all__``, or the functions and classes it defines."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module_name]


def documented_entries(rst_text):
    """``(module, name)`` for every entry of the page-generating ``autosummary`` blocks."""
    blocks, module, block = [], None, None
    for line in rst_text.splitlines():
        text = line.strip()
        if match := _CURRENT_MODULE.match(line):
            module, block = match.group(1), None
        elif _AUTOSUMMARY.match(line):
            block = {"toctree": False, "entries": []}
            blocks.append(block)
        elif block is not None and text and not line.startswith(" "):
            block = None  # the block ends at the first unindented line
        elif block is not None and text.startswith(":toctree:"):
            block["toctree"] = True
        elif block is not None and text and not text.startswith(":"):
            block["entries"].append((module, text.lstrip("~")))
    return [entry for block in blocks if block["toctree"] for entry in block["entries"]]


def _resolve(module_name, name):
    return getattr(importlib.import_module(module_name), name)


def missing_names(reference_dir):
    """Public names whose object no ``autosummary`` entry in ``reference_dir`` documents."""
    documented = []
    for page in sorted(Path(reference_dir).glob("*.rst")):
        for module, name in documented_entries(page.read_text(encoding="utf-8")):
            if module is None:
                raise ExtensionError(f"{page.name}: autosummary entry {name!r} comes before any "
                                     "'.. currentmodule::'")
            try:
                documented.append(_resolve(module, name))
            except AttributeError:
                raise ExtensionError(f"{page.name}: {module}.{name} is listed but does not "
                                     "exist") from None
    return [f"{module}.{name}" for module in PUBLIC_MODULES for name in public_names(module)
            if not any(_resolve(module, name) is obj for obj in documented)]


def check_api_coverage(app):
    missing = missing_names(Path(app.srcdir) / "references")
    if missing:
        raise ExtensionError("public names missing from the API reference (add each to an "
                             "autosummary in doc/references/): " + ", ".join(missing))


def setup(app):
    # ahead of the gallery (priority 500), so that a missing name fails before examples run
    app.connect("builder-inited", check_api_coverage, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
