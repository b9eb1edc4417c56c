"""Sphinx configuration of the skmll documentation site (built by ``scripts/docs.sh``)."""

import os
import runpy
import sys
from pathlib import Path

import skmll

DOC = Path(__file__).resolve().parent
sys.path.insert(0, str(DOC / "sphinxext"))

from offline_inventories import intersphinx_mapping as offline_intersphinx_mapping  # noqa: E402

project = "skmll"
author = "the skmll developers"
copyright = "the skmll developers, BSD-3-Clause"
release = skmll.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "api_coverage",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]
default_role = "literal"

# --- API reference -----------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"      # the numpydoc sections carry the types
numpydoc_show_class_members = False   # the class template lists methods itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# --- links to other projects, from inventories written here (no download) ---------------------
intersphinx_mapping = offline_intersphinx_mapping(DOC / "_build" / "inventories")

# --- the markdown pages (user guide, design, benchmarks, scaling) -----------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# --- figures drawn at build time --------------------------------------------------------------
FIGURES = {DOC / "user_guide" / "mll_steps.py": DOC / "user_guide" / "generated" / "mll_steps.svg"}

# --- the gallery ------------------------------------------------------------------------------
# SKMLL_DOCS_GALLERY: "all" (default) runs every example; "fast" all but the slowest (what CI
# builds); "off" renders the examples without running them.
GALLERY_MODE = os.environ.get("SKMLL_DOCS_GALLERY", "all")
if GALLERY_MODE not in ("all", "fast", "off"):
    raise ValueError(f"SKMLL_DOCS_GALLERY must be 'all', 'fast' or 'off'; got {GALLERY_MODE!r}")
# About 20 s on two cores (25 fits), the others 2-14 s (the build prints each example's time).
SLOW_EXAMPLES = ["plot_grid_search_k"]
run_pattern = {
    "all": r"/plot_",
    "fast": r"/plot_(?!" + "|".join(name[len("plot_"):] for name in SLOW_EXAMPLES) + ")",
    "off": r"^$",
}[GALLERY_MODE]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": run_pattern,
    # The demo is README command 1 (bash scripts/demo.sh), not a gallery page.
    "ignore_pattern": r"demo\.py",
    "doc_module": ("skmll",),
    "backreferences_dir": "generated/backreferences",
    # Topics in reading order; a new topic folder must be added here (sphinx-gallery says so).
    "subsection_order": [f"../examples/{topic}" for topic in (
        "quick_start", "experts", "model_selection", "inspection", "patch", "hub_growth",
        "scaling")],
    "within_subsection_order": "FileNameSortKey",
    # The timing pages load scripts from CDNs, which an offline reader cannot reach.
    "write_computation_times": False,
}

# --- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skmll {release}"
html_static_path = ["_static"]
html_css_files = ["skmll.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {page: [] for page in ("index", "install", "getting_started", "cli",
                                         "auto_examples/index")}
html_show_sourcelink = False


def draw_figures(app):
    """Run each figure script and save the figure it leaves as the file the pages show."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    for script, target in FIGURES.items():
        target.parent.mkdir(exist_ok=True)
        runpy.run_path(str(script))
        plt.gcf().savefig(target)
        plt.close("all")


def setup(app):
    app.connect("builder-inited", draw_figures)
