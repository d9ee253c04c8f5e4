"""Sphinx configuration. Built with warnings as errors: ``make docs`` (tox -e docs)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))
os.environ["COLUMNS"] = "88"  # the width of the CLI help shown in the docs
# The coordinators the build runs (the recorded election) keep their token file here, not
# in the reader's ~/.vistrit.
os.environ["VISTRIT_TOKEN_FILE"] = str(Path(tempfile.mkdtemp(prefix="vistrit-docs-")) / "token")

import vistrit

project = "Vistrit"
author = "The Vistrit authors"
copyright = "2026, The Vistrit authors"
release = version = vistrit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "vistrit_docs",
]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"page_width": "1200px", "sidebar_width": "220px"}
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}
