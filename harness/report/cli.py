"""``python -m harness.report``: results files into reports/report.md, .html and .json; compare with a baseline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import results
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.model import ReportError, Results, choose, compare, gather, load, merge, selection_lines, to_json

DESCRIPTION = (
    "Merge results files into report.md, report.html and report.json; compare with a baseline. "
    "By default the selection of the newest results file is reported, with every file of the same selection "
    "(shards, per-wrapper sessions); files of other selections are listed as left out."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=DESCRIPTION)
    parser.add_argument(
        "inputs", nargs="*", default=["results"], metavar="RESULTS",
        help="results files (used as given) or directories of them (grouped by selection); default: results",
    )
    parser.add_argument("--out", default="reports", help="directory for report.md, report.html, report.json")
    parser.add_argument("--baseline", default=None, help="baseline results file to compare with (never merged)")
    parser.add_argument("--ci", action="store_true", help="exit 1 when the comparison finds a regression")
    parser.add_argument(
        "--show-new-removed", action="store_true", help="list results absent from the baseline or the run in Markdown"
    )
    parser.add_argument("--write-baseline", metavar="PATH", help="also save the merged results as a results file")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--all-selections", action="store_true",
        help="merge every results file whatever its selection (the report says which selections it mixed)",
    )
    which.add_argument(
        "--selection", metavar="KEY", default=None,
        help="report this selection key's files instead of the newest file's (keys are printed and in the files)",
    )
    return parser


def _print_files(report: Results) -> None:
    for line in selection_lines(report)[:1]:
        print(line)
    for run in report.runs:
        print(f"  merged   {results.describe_file(run)}")
    for line in selection_lines(report)[1:]:
        print(line + ":")
    for left in report.left_out:
        print(f"  left out {left.file.name}: {left.reason}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    baseline_path = Path(args.baseline) if args.baseline else None
    try:
        paths, named = gather(args.inputs, exclude=[baseline_path] if baseline_path else [])
        if not paths:
            raise ReportError(
                f"{', '.join(args.inputs)}: no results files; run a wrapper session or `nox -s matrix` first"
            )
        report = choose(load(paths), named, all_selections=args.all_selections, selection=args.selection)
        comparison = None
        if baseline_path is not None:
            comparison = compare(merge([baseline_path]), report, str(baseline_path))
    except (ReportError, results.ResultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_files(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report, comparison, show_new_removed=args.show_new_removed)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.html").write_text(render_html(report, comparison, links_from=out), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(to_json(report, comparison), indent=1) + "\n", encoding="utf-8")
    if args.write_baseline:
        results.write(Path(args.write_baseline), results.merged_file(report.merged, report.wrappers))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    print(f"merged {len(report.runs)} results file(s): {len(report.records)} results, {len(report.tests)} tests")
    for name in ("report.md", "report.html", "report.json"):
        print(f"wrote {out / name}")
    if args.write_baseline:
        print(f"wrote {args.write_baseline}")
    if comparison is not None:
        print(
            f"baseline {comparison.baseline}: {len(comparison.regressions)} regressions, "
            f"{len(comparison.fixes)} fixes, "
            f"{len(comparison.new)} new and {len(comparison.removed)} absent results"
        )
        for change in comparison.regressions[:20]:
            print(f"  REGRESSION {change.test} [{change.wrapper}]: {change.before} -> {change.after}: {change.cause}")
        if args.ci and comparison.regressions:
            print(f"error: {len(comparison.regressions)} regression(s) against {comparison.baseline}", file=sys.stderr)
            return 1
    return 0
