"""Merge results files and render them: Markdown for CI step summaries, one HTML page, JSON for tools.

Also compares a run with a baseline results file: regressions (a test that did not fail now fails), fixes
(an expected or real failure now passes), and the tests present on one side only.

    python -m harness.report [RESULTS ...] [--out reports] [--baseline results/baseline.json] [--ci]
                             [--all-selections | --selection KEY] [--write-baseline PATH]

One module per job: ``model`` (which files, the merged view, counts, causes, the comparison, report.json),
``markdown``, ``html`` (with the page in ``template.html``, a package data file) and ``cli``. Results files
are read and written only through :mod:`harness.results`. Imports neither torch nor pytest.
"""

from __future__ import annotations

from harness.report.cli import build_parser, main
from harness.report.html import render_html
from harness.report.markdown import MARKDOWN_LIMIT, render_markdown
from harness.report.model import (
    Comparison,
    FailureGroup,
    LeftOut,
    ReportError,
    Results,
    choose,
    compare,
    failure_groups,
    gather,
    load,
    merge,
    selection_lines,
    summary,
    to_json,
)

__all__ = [
    "MARKDOWN_LIMIT",
    "Comparison",
    "FailureGroup",
    "LeftOut",
    "ReportError",
    "Results",
    "build_parser",
    "choose",
    "compare",
    "failure_groups",
    "gather",
    "load",
    "main",
    "merge",
    "render_html",
    "render_markdown",
    "selection_lines",
    "summary",
    "to_json",
]
