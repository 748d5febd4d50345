"""The torch-version compatibility table: golden artifacts saved under torch A, checked under torch B.

    python -m harness.golden.matrix --out reports/torch_matrix.json --cell 2.13.0 2.14.1 golden-2.13.0-2.14.1.json ...

Each ``--cell SAVED LOADED REPORT`` names the ``--golden-report`` file of the run that checked the
artifacts saved under torch SAVED with torch LOADED. Prints a SAVED x LOADED Markdown table (cells like
``40/40 load, 40/40 outputs, 38/40 graph, 40/40 signature``) and the causes of what broke, grouped by
first line; writes the same as JSON. ``nox -s torch_matrix`` makes the runs and calls this. Standard
library and :mod:`harness.golden` only (neither torch nor pytest), so it runs in any of the environments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.golden import ASPECTS

PROG = "python -m harness.golden.matrix"

_FILE = re.compile(r"\S+\.(?:pt2|outputs\.pt|json)\b")


class MatrixReportError(ValueError):
    """A golden report that is missing or not one ``--golden-report`` wrote."""


def read_report(path: Path) -> dict[str, Any]:
    """One ``--golden-report`` file, checked enough that a truncated or foreign file is named, not misread."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MatrixReportError(f"{path}: not a readable golden report ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("tests"), dict) or document.get("accept"):
        raise MatrixReportError(f"{path}: not the golden report of a check run (no 'tests', or an accept run)")
    return document


def cause(aspect: str, message: str) -> str:
    """A short, groupable cause: a diff's first removed and added lines, else the first line without file paths."""
    if aspect in ("graph", "signature") and message.startswith("---"):
        lines = message.splitlines()
        removed = next((line for line in lines if line.startswith("-") and not line.startswith("---")), "")
        added = next((line for line in lines if line.startswith("+") and not line.startswith("+++")), "")
        return f"{removed.strip()} => {added.strip()}"
    return _FILE.sub("<file>", message.strip().splitlines()[0] if message.strip() else "")


def cell(report: Mapping[str, Any]) -> dict[str, Any]:
    """Counts of one (saved, loaded) pair: tests checked, per aspect how many held, and the causes of the rest."""
    tests: Mapping[str, Mapping[str, Any]] = report["tests"]
    held = dict.fromkeys(ASPECTS, 0)
    causes: dict[str, Counter[str]] = {aspect: Counter() for aspect in ASPECTS}
    for verdict in tests.values():
        for aspect in ASPECTS:
            problem = verdict.get("error") or verdict.get(aspect)
            if problem is None:
                held[aspect] += 1
            else:
                causes[aspect][cause(aspect, str(problem))] += 1
    return {
        "tests": len(tests),
        "held": held,
        "causes": {aspect: dict(counter.most_common()) for aspect, counter in causes.items() if counter},
        "failures": {
            nodeid: {aspect: verdict.get("error") or verdict.get(aspect) for aspect in ASPECTS}
            for nodeid, verdict in sorted(tests.items())
            if any(verdict.get("error") or verdict.get(aspect) for aspect in ASPECTS)
        },
    }


def cell_text(counts: Mapping[str, Any]) -> str:
    total = counts["tests"]
    return ", ".join(f"{counts['held'][aspect]}/{total} {aspect}" for aspect in ASPECTS)


def render(versions: Sequence[str], cells: Mapping[tuple[str, str], Mapping[str, Any]]) -> str:
    """The Markdown table (rows: saved by, columns: loaded by) and the causes of every failure."""
    lines = ["| saved by \\ loaded by | " + " | ".join(versions) + " |", "|---" * (len(versions) + 1) + "|"]
    for saved in versions:
        row = [cell_text(cells[saved, loaded]) if (saved, loaded) in cells else "not run" for loaded in versions]
        lines.append(f"| {saved} | " + " | ".join(row) + " |")
    for (saved, loaded), counts in cells.items():
        for aspect, counter in counts["causes"].items():
            lines.append(f"\n{saved} -> {loaded}, {aspect} failed:")
            lines.extend(f"  {n} x {text}" for text, n in counter.items())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", nargs=3, action="append", default=[], metavar=("SAVED", "LOADED", "REPORT"))
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    versions: list[str] = []
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for saved, loaded, report in args.cell:
            versions.extend(v for v in (saved, loaded) if v not in versions)
            cells[saved, loaded] = cell(read_report(Path(report)))
    except MatrixReportError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    print(render(versions, cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "versions": versions,
        "cells": [{"saved_by": s, "loaded_by": b, **counts} for (s, b), counts in cells.items()],
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
