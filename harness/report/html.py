"""The HTML report: one self-contained page from the package's ``template.html``, data embedded and escaped."""

from __future__ import annotations

import html
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from harness import results
from harness.report.model import Comparison, Results, header, selection_lines, summary
from harness.results import OUTCOMES

TEMPLATE = "template.html"


@cache
def template() -> str:
    """The page with its ``__NAME__`` placeholders (a package data file of ``harness.report``)."""
    return resources.files("harness.report").joinpath(TEMPLATE).read_text(encoding="utf-8")


def bundle_href(bundle: str, links_from: str | os.PathLike[str] | None) -> str:
    """A link to a repro bundle's folder, relative to the page's folder when given (both as the run named them)."""
    path = bundle
    if links_from is not None and not PurePath(bundle).is_absolute():
        path = os.path.relpath(bundle, links_from)
    posix = PurePath(path).as_posix()
    prefix = "file://" if PurePath(posix).is_absolute() else ""
    return prefix + quote(posix) + "/"


def _html_data(
    report: Results, comparison: Comparison | None, links_from: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    wrappers = report.wrappers
    tests = report.tests
    test_index = {t: i for i, t in enumerate(tests)}
    wrapper_index = {w: i for i, w in enumerate(wrappers)}
    texts: dict[str, int] = {}
    stages: dict[str, int] = {}
    bundles: dict[str, int] = {}
    regressed = {(c.test, c.wrapper) for c in comparison.regressions} if comparison else set()
    cells = []
    for (test, wrapper), record in sorted(report.records.items()):
        cells.append(
            [
                test_index[test],
                wrapper_index[wrapper],
                OUTCOMES.index(record.outcome),
                stages.setdefault(record.stage, len(stages)) if record.stage else -1,
                texts.setdefault(record.cause, len(texts)) if record.cause else -1,
                round(record.duration, 3),
                1 if (test, wrapper) in regressed else 0,
                bundles.setdefault(record.bundle, len(bundles)) if record.bundle else -1,
            ]
        )
    return {
        "wrappers": wrappers,
        "tests": tests,
        "outcomes": list(OUTCOMES),
        "stages": list(stages),
        "causes": list(texts),
        "cells": cells,
        "bundles": [[bundle, bundle_href(bundle, links_from)] for bundle in bundles],
        "baseline": comparison.baseline if comparison else None,
    }


def _script_json(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the strings hold."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _selection(report: Results) -> str:
    """The selection sentence, then the files merged and left out (folded)."""
    first, *rest = selection_lines(report)
    mixed = " class=mixed" if report.mixed else ""
    items = "".join(f"<li><code>{html.escape(results.describe_file(run))}</code></li>" for run in report.runs)
    left = ""
    if rest:
        left = f"<p>{html.escape(rest[0])}:</p><ul>" + "".join(
            f"<li><code>{html.escape(item.file.name)}</code>: {html.escape(item.reason)}</li>"
            for item in report.left_out
        ) + "</ul>"
    return (
        f"<p id=selection{mixed}>{html.escape(first)}</p>"
        f"<details id=files><summary>files merged ({len(report.runs)}) and left out ({len(report.left_out)})"
        f"</summary><ul>{items}</ul>{left}</details>"
    )


def render_html(
    report: Results, comparison: Comparison | None = None, *, links_from: str | Path | None = None
) -> str:
    """One self-contained page: tests by wrappers coloured by outcome, with filters and causes.

    A cell whose record names a repro bundle links to its folder; ``links_from`` is the folder the page
    is written to, so the links are relative to it (bundle paths are as the run named them, relative to
    the directory it ran in, which the report is expected to run in too).
    """
    counts = summary(report)
    rows = "".join(
        f"<tr><td><code>{html.escape(w)}</code></td>"
        + "".join(f'<td class="n o-{o}">{counts[w][o]}</td>' for o in OUTCOMES)
        + f"<td class=n>{counts[w].total()}</td></tr>"
        for w in report.wrappers
    )
    heads = "".join(f'<th class="o-{o}">{o}</th>' for o in OUTCOMES)
    changes = ""
    if comparison is not None:
        changes = (
            f"<p id=baseline>Baseline <code>{html.escape(comparison.baseline)}</code>: "
            f"<b>{len(comparison.regressions)}</b> regressions, <b>{len(comparison.fixes)}</b> fixes, "
            f"{len(comparison.other_changes)} other changes over {comparison.compared} results both hold; "
            f"{len(comparison.new)} not in the baseline, {len(comparison.removed)} baseline results not run.</p>"
        )
    page = template()
    for key, value in (
        ("__HEADER__", html.escape(header(report))),
        ("__SELECTION__", _selection(report)),
        ("__SUMMARY__", f"<table id=summary><tr><th>wrapper</th>{heads}<th>total</th></tr>{rows}</table>"),
        ("__BASELINE__", changes),
        ("__DATA__", _script_json(_html_data(report, comparison, links_from))),
    ):
        page = page.replace(key, value, 1)
    return page
