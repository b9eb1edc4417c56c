"""Tests of the documentation build's own extensions (run: pytest doc/sphinxext).

They read the installed packages and the real ``doc/references`` pages; nothing is mocked.
"""

from pathlib import Path

import pytest
from sphinx.errors import ExtensionError
from sphinx.util.inventory import InventoryFile

from api_coverage import documented_entries, missing_names
from offline_inventories import intersphinx_mapping, inventory_lines, write_inventory

REFERENCES = Path(__file__).resolve().parent.parent / "references"


def load_inventory(path, root):
    """Read an inventory the way intersphinx does: ``{role: {name: item}}``, ``item.uri``."""
    return InventoryFile.loads(Path(path).read_bytes(), uri=root).data


def test_inventory_links_installed_names_to_their_pages(tmp_path):
    root = "https://scikit-learn.org/stable/"
    lines = inventory_lines("sklearn.model_selection", "modules/generated/{name}.html")
    write_inventory(tmp_path / "sklearn.inv", "sklearn", "1", lines)
    inventory = load_inventory(tmp_path / "sklearn.inv", root)

    search = inventory["py:class"]["sklearn.model_selection.GridSearchCV"]
    assert search.uri == (root + "modules/generated/sklearn.model_selection.GridSearchCV.html"
                         "#sklearn.model_selection.GridSearchCV")
    assert "sklearn.model_selection.cross_val_score" in inventory["py:function"]
    # Experimental names raise on access until enabled; they are left out, not an error.
    assert "sklearn.model_selection.HalvingGridSearchCV" not in inventory["py:class"]


def test_every_project_inventory_loads(tmp_path):
    mapping = intersphinx_mapping(tmp_path)
    assert set(mapping) == {"sklearn", "numpy", "matplotlib", "torch"}
    for project, (root, path) in mapping.items():
        inventory = load_inventory(path, root)
        assert sum(len(names) for names in inventory.values()) > 10, project
    sklearn = load_inventory(mapping["sklearn"][1], mapping["sklearn"][0])
    # scikit-learn's own docstrings (inherited set_*_request methods) link to its glossary
    assert sklearn["std:term"]["meta-estimator"].uri.endswith("glossary.html#term-meta-estimator")
    numpy = load_inventory(mapping["numpy"][1], mapping["numpy"][0])
    assert "numpy.ndarray" in numpy["py:class"] and "numpy.stack" in numpy["py:function"]


def test_only_page_generating_autosummary_entries_count():
    page = """
.. currentmodule:: skmll.hub

.. autosummary::
   :toctree: generated/

   ModelHub
   ~skmll.hub.TorchExpert

.. currentmodule:: skmll.selection

.. autosummary::

   chco

.. autosummary::
   :nosignatures:
   :toctree: generated/

   heu
Some text.
"""
    assert documented_entries(page) == [("skmll.hub", "ModelHub"),
                                        ("skmll.hub", "skmll.hub.TorchExpert"),
                                        ("skmll.selection", "heu")]


def test_the_reference_documents_every_public_name():
    assert missing_names(REFERENCES) == []


def test_an_unlisted_public_name_is_reported(tmp_path):
    for page in REFERENCES.glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        (tmp_path / page.name).write_text(text.replace("   zero_shot_report\n", ""),
                                          encoding="utf-8")
    assert missing_names(tmp_path) == ["skmll.metrics.zero_shot_report"]


def test_a_listed_name_that_does_not_exist_is_an_error(tmp_path):
    (tmp_path / "metrics.rst").write_text(
        ".. currentmodule:: skmll.metrics\n\n.. autosummary::\n   :toctree: generated/\n\n"
        "   zero_shot_reprot\n", encoding="utf-8")
    with pytest.raises(ExtensionError, match=r"skmll\.metrics\.zero_shot_reprot is listed"):
        missing_names(tmp_path)
