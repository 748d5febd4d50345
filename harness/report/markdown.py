"""The Markdown report, for CI step summaries: kept under GitHub's 1 MiB limit whatever the suite size."""

from __future__ import annotations

from collections import Counter, defaultdict

from harness import results
from harness.report.model import Change, Comparison, Results, failure_groups, header, selection_lines, summary
from harness.results import OUTCOMES

MARKDOWN_LIMIT = 1_000_000
"""Bytes: GitHub refuses step summaries over 1 MiB (1,048,576 bytes); stay below whatever the suite size."""
GROUP_EXAMPLES = 10
"""Tests listed under each failure cause in Markdown (the HTML page and JSON have them all)."""
CHANGE_ROWS = 200
"""Rows of each baseline-change table in Markdown."""
FILE_ROWS = 20
"""Files listed as merged or left out (report.json lists them all)."""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (and free of raw HTML)."""
    text = " ".join(text.split())
    for char in "\\`*_[]<>#|":
        text = text.replace(char, "\\" + char)
    return text


def _code(text: str) -> str:
    """An inline code span; pipes escaped so it can sit in a table cell."""
    text = " ".join(text.split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class _Budget:
    """Markdown under a byte limit: sections stop, with a note, before the limit is reached."""

    NOTE_RESERVE = 400

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.full = False

    def add(self, text: str) -> bool:
        size = len(text.encode("utf-8")) + 1
        if self.full or self.size + size > self.limit - self.NOTE_RESERVE:
            self.full = True
            return False
        self.parts.append(text)
        self.size += size
        return True

    def note(self, text: str) -> None:
        """A closing remark that always fits (the reserve is kept for it)."""
        clipped = text.encode("utf-8")[: self.NOTE_RESERVE - 10].decode("utf-8", "ignore")
        self.parts.append(clipped)
        self.size += len(clipped.encode("utf-8")) + 1

    def text(self) -> str:
        return "\n".join(self.parts) + "\n"


def _files(out: _Budget, report: Results) -> None:
    """What was merged and what was left out: the selection sentence, then the files."""
    first, *rest = selection_lines(report)
    out.add(("**" + _cell(first) + "**" if report.mixed else _cell(first)) + "\n")
    lines = [f"- merged {_code(results.describe_file(run))}" for run in report.runs[:FILE_ROWS]]
    if len(report.runs) > FILE_ROWS:
        lines.append(f"- … and {len(report.runs) - FILE_ROWS} more merged files; see report.json")
    if rest:
        lines += ["", _cell(rest[0]) + ":", ""]
        lines += [
            f"- {_code(left.file.name)}: {_cell(left.reason)}" for left in report.left_out[:FILE_ROWS]
        ]
        if len(report.left_out) > FILE_ROWS:
            lines.append(f"- … and {len(report.left_out) - FILE_ROWS} more; see report.json")
    out.add("\n".join(lines) + "\n")


def render_markdown(
    report: Results,
    comparison: Comparison | None = None,
    *,
    limit: int = MARKDOWN_LIMIT,
    show_new_removed: bool = False,
) -> str:
    """The summary for ``$GITHUB_STEP_SUMMARY``: files merged, wrapper table, baseline changes, failures by cause."""
    out = _Budget(limit)
    out.add("# torch.export compatibility report\n")
    out.add(_cell(header(report)) + "\n")
    _files(out, report)
    columns = list(OUTCOMES)
    out.add("| wrapper | " + " | ".join(columns) + " | total |")
    out.add("|---|" + "---:|" * (len(columns) + 1))
    for wrapper, counts in summary(report).items():
        out.add(f"| {_code(wrapper)} | " + " | ".join(str(counts[o]) for o in columns) + f" | {counts.total()} |")
    if report.collection_errors:
        out.add(f"\n**{len(report.collection_errors)} collection error(s)**; see report.json.")
    if comparison is not None:
        _markdown_comparison(out, comparison, show_new_removed)
    groups = failure_groups(report)
    out.add(f"\n## Failures by cause ({sum(len(g.members) for g in groups)} results, {len(groups)} causes)\n")
    shown = 0
    for group in groups:
        wrappers = Counter(wrapper for _, wrapper in group.members)
        lines = [
            f"### {_code(group.stage)}: {_cell(group.cause)} ({len(group.members)})\n",
            "wrappers: " + ", ".join(f"{_code(w)} ({n})" for w, n in wrappers.most_common()) + "\n",
        ]
        by_test: dict[str, list[str]] = defaultdict(list)
        for test, wrapper in group.members:
            bundle = report.records[(test, wrapper)].bundle
            by_test[test].append(f"{wrapper}: repro bundle {_code(bundle)}" if bundle else wrapper)
        for test, names in list(by_test.items())[:GROUP_EXAMPLES]:
            lines.append(f"- {_code(test)} ({', '.join(names)})")
        if len(by_test) > GROUP_EXAMPLES:
            lines.append(f"- … and {len(by_test) - GROUP_EXAMPLES} more tests")
        if not out.add("\n".join(lines) + "\n"):
            break
        shown += 1
    if shown < len(groups):
        out.note(f"\n… {len(groups) - shown} more causes left out to stay under {limit} bytes; see report.html.")
    return out.text()


def _change_table(out: _Budget, title: str, changes: list[Change]) -> None:
    if not changes:
        return
    out.add(f"\n### {title} ({len(changes)})\n")
    out.add("| test | wrapper | baseline | now | stage | cause |")
    out.add("|---|---|---|---|---|---|")
    for change in changes[:CHANGE_ROWS]:
        row = (
            f"| {_code(change.test)} | {_code(change.wrapper)} | {change.before} | {change.after} | "
            f"{_cell(change.stage or '')} | {_cell(change.cause or '')} |"
        )
        if not out.add(row):
            return
    if len(changes) > CHANGE_ROWS:
        out.add(f"\n… and {len(changes) - CHANGE_ROWS} more; see report.json.")


def _markdown_comparison(out: _Budget, comparison: Comparison, show_new_removed: bool) -> None:
    out.add(f"\n## Compared with the baseline {_code(comparison.baseline)}\n")
    out.add(
        f"{len(comparison.regressions)} regressions, {len(comparison.fixes)} fixes, "
        f"{len(comparison.other_changes)} other changes over the {comparison.compared} test/wrapper results "
        f"both hold; {len(comparison.new)} results not in the baseline, {len(comparison.removed)} baseline "
        "results not in this run (deselected or removed; listed with --show-new-removed)."
    )
    _change_table(out, "Regressions", comparison.regressions)
    _change_table(out, "Fixes", comparison.fixes)
    _change_table(out, "Other changes", comparison.other_changes)
    if show_new_removed:
        sections = (("Not in the baseline", comparison.new), ("In the baseline, not in this run", comparison.removed))
        for title, pairs in sections:
            if pairs:
                out.add(f"\n### {title} ({len(pairs)})\n")
                for test, wrapper in pairs:
                    if not out.add(f"- {_code(test)} ({wrapper})"):
                        break
