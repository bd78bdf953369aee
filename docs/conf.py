"""Sphinx configuration of the docs site (``make docs``; warnings are errors there).

The pages are the Markdown files of this folder (myst-parser); the API reference comes from the
package's docstrings (``sphinx.ext.autodoc``), so the package and Airflow must be importable.
"""

from __future__ import annotations

import airflow_provider_cancel

project = "airflow-provider-cancel"
author = "airflow-provider-cancel developers"
release = airflow_provider_cancel.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# GitHub-style anchors for the pages' links to sections (`connections.md#the-test-button`)
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
# Airflow's own classes, which appear in signatures and bases, are not documented here.
nitpicky = False

html_theme = "alabaster"
html_title = f"airflow-provider-cancel {release}"
html_show_sourcelink = False
