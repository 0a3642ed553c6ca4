"""Sphinx configuration of the kernelphase documentation.

Build (from the repository root; about three minutes on 2 cores, most of it executing the
tutorials):  ``sphinx-build -W -b html docs docs/_build/html``.

Math is rendered by a copy of MathJax 3 (``tex-chtml-full.js`` and its woff-v2 fonts from the
npm package ``mathjax@3.2.2``, Apache-2.0, in ``_static/mathjax``), so the pages need no network
access, neither to build nor to read.
"""
import os
import sys

import kernelphase

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "kernelphase"
author = "the kernelphase developers"
copyright = "2026, the kernelphase developers"
version = release = kernelphase.__version__

extensions = [
    "myst_nb",                      # MyST markdown pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "reproduce_gallery",            # docs/_ext: the gallery page, read from its JSON files
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "**.ipynb_checkpoints",
                    "_static/mathjax/**",
                    "_static/gallery/**", "make_gallery.py"]
templates_path = ["_templates"]

# -- math: MathJax 3 served from this site, never from a CDN -----------------------------------
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-chtml-full.js"

# -- MyST and myst-nb -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# Notebooks are executed at build time. "cache" re-runs only the ones that changed (cache in
# the build folder); KERNELPHASE_DOCS_EXECUTE=force re-runs all (tests/test_docs.py does).
nb_execution_mode = os.environ.get("KERNELPHASE_DOCS_EXECUTE", "cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True      # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = True
# The kernels inherit this process's environment; a non-interactive MPLBACKEND (CI exports
# Agg) would stop them from showing figures, so let ipykernel pick its inline backend.
os.environ.pop("MPLBACKEND", None)

# -- autodoc, autosummary, numpydoc -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False     # members are documented by autodoc, not listed twice
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- HTML -------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"kernelphase {release}"
html_theme_options = {"description": "Theory of grokking and feature learning in two-layer networks",
                      "page_width": "1100px", "sidebar_width": "230px"}
