"""What the report shows: which results files it merges, the merged records, counts, causes, the baseline diff.

Which files: a results directory can hold runs of different selections (a ``-k dynamic`` session, then a
``-m quick`` matrix). Merging them would make a report of neither, so by default the report takes the
selection of the newest file and every file of that same selection (the shards of one run, the
per-wrapper sessions over the same tests), and names the files it left out. ``all_selections`` merges
everything and says which selections it mixed. Files named one by one are used as given (and a mix is
said plainly). Reading, writing and merging files is :mod:`harness.results`'s; this module chooses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import results
from harness.results import BROKEN, OUTCOMES, Merged, Record, RunFile, RunSelection

REPORT_FORMAT = "torch-export-harness-report"
REPORT_VERSION = 2
"""2: ``selection`` and ``left_out`` added, ``runs`` entries carry their selection."""
FIXED_OUTCOMES = frozenset({"passed", "xpassed"})
WAS_FAILING = BROKEN | {"xfailed"}

NEWEST = "newest"
"""The default rule: the newest file's selection."""
ALL_SELECTIONS = "all"
NAMED = "named"
"""Only files named one by one: all of them."""
CHOSEN = "chosen"
"""A selection key given on the command line."""


class ReportError(Exception):
    """Inputs the report cannot use (no results files, an unknown selection key); the message says which."""


@dataclass(frozen=True)
class LeftOut:
    """A results file the report did not merge, and why."""

    file: RunFile
    reason: str


@dataclass
class Results:
    """The merged records of the files the report used, and what it left out."""

    merged: Merged = field(default_factory=Merged)
    left_out: list[LeftOut] = field(default_factory=list)
    rule: str = NAMED
    """How the files were chosen: :data:`NEWEST`, :data:`ALL_SELECTIONS`, :data:`CHOSEN` or :data:`NAMED`."""

    @property
    def records(self) -> dict[tuple[str, str], Record]:
        return self.merged.records

    @property
    def runs(self) -> list[RunFile]:
        """The files merged, oldest first."""
        return self.merged.files

    @property
    def collection_errors(self) -> list[dict[str, str]]:
        return self.merged.collection_errors

    @property
    def superseded(self) -> int:
        return self.merged.superseded

    @property
    def selections(self) -> dict[str | None, RunSelection | None]:
        """The selections of the files merged, by key (``None``: unknown)."""
        return self.merged.selections

    @property
    def mixed(self) -> bool:
        """Whether the merged files come from more than one selection."""
        return len(self.selections) > 1

    @property
    def wrappers(self) -> list[str]:
        """Wrapper names in registry order, then any others in the order first seen."""
        from harness.wrappers import BUILTIN_WRAPPERS

        seen = list(dict.fromkeys(wrapper for _, wrapper in self.records))
        order = [w.name for w in BUILTIN_WRAPPERS if w.name in seen]
        return order + [name for name in seen if name not in order]

    @property
    def tests(self) -> list[str]:
        return sorted({test for test, _ in self.records})


def choose(
    files: Sequence[RunFile],
    named: Collection[str] = (),
    *,
    all_selections: bool = False,
    selection: str | None = None,
) -> Results:
    """Merge the files of one selection (or all of them); ``named`` are paths given one by one, always used.

    Without ``selection`` (a key) the selection is the newest file's. Files of other selections found in
    directories are left out, each with the reason.
    """
    if all_selections or not files:
        return Results(results.merge(files), [], ALL_SELECTIONS if all_selections else NAMED)
    if selection is None and all(f.name in named for f in files):
        return Results(results.merge(files), [], NAMED)
    key: str | None = selection
    rule = CHOSEN
    if selection is None:
        key, rule = max(files, key=lambda f: (f.created_at, f.name)).selection_key, NEWEST
    elif selection not in {f.selection_key for f in files}:
        known = ", ".join(sorted({f.selection_key for f in files if f.selection_key})) or "none"
        raise ReportError(f"no results file of selection {selection!r}; the inputs hold selections: {known}")
    used = [f for f in files if f.selection_key == key or f.name in named]
    used_ids = {id(f) for f in used}
    chosen = next(f.selection for f in files if f.selection_key == key)
    left_out = [
        LeftOut(
            f,
            f"selection {results.describe_selection(f.selection)}, not {results.describe_selection(chosen)}",
        )
        for f in files
        if id(f) not in used_ids
    ]
    return Results(results.merge(used), left_out, rule)


def load(paths: Iterable[Path]) -> list[RunFile]:
    """Every file through :func:`harness.results.load` (a bad one is a ``ResultsError`` naming it)."""
    return [results.load(path) for path in paths]


def merge(paths: Iterable[Path]) -> Results:
    """All records of ``paths``, whatever their selection (a baseline, files named one by one)."""
    files = load(paths)
    return Results(results.merge(files), [], NAMED)


def gather(inputs: Sequence[str], exclude: Iterable[Path] = ()) -> tuple[list[Path], set[str]]:
    """The results files of ``inputs`` (directories expanded, ``exclude`` left out), and those named one by one."""
    excluded = list(exclude)
    paths = results.expand_inputs(inputs, exclude=excluded)
    named = {str(p) for p in results.expand_inputs([i for i in inputs if not Path(i).is_dir()], exclude=excluded)}
    return paths, named


def summary(report: Results) -> dict[str, Counter[str]]:
    """Outcome counts per wrapper."""
    counts: dict[str, Counter[str]] = {w: Counter() for w in report.wrappers}
    for (_, wrapper), record in report.records.items():
        counts[wrapper][record.outcome] += 1
    return counts


@dataclass
class FailureGroup:
    """Failed tests that broke at the same stage with the same first line of cause."""

    stage: str
    cause: str
    members: list[tuple[str, str]]


def failure_groups(report: Results) -> list[FailureGroup]:
    """Failures (failed, error, crashed) grouped by stage and cause, largest group first."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, record in sorted(report.records.items()):
        if record.outcome in BROKEN:
            groups[(record.stage or "?", record.cause or "(no message)")].append(key)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [FailureGroup(stage, cause, members) for (stage, cause), members in ordered]


@dataclass
class Change:
    test: str
    wrapper: str
    before: str
    after: str
    stage: str | None
    cause: str | None


@dataclass
class Comparison:
    """A run against a baseline, over the (test, wrapper) pairs both hold.

    A pair missing from the run may be deselected rather than deleted (``-m quick``, ``-k``,
    one shard), so ``new`` and ``removed`` are information, never regressions.
    """

    baseline: str
    compared: int
    regressions: list[Change]
    fixes: list[Change]
    other_changes: list[Change]
    new: list[tuple[str, str]]
    removed: list[tuple[str, str]]


def compare(baseline: Results, current: Results, baseline_name: str) -> Comparison:
    regressions, fixes, other = [], [], []
    common = sorted(baseline.records.keys() & current.records.keys())
    for key in common:
        before, after = baseline.records[key], current.records[key]
        if before.outcome == after.outcome:
            continue
        change = Change(key[0], key[1], before.outcome, after.outcome, after.stage, after.cause)
        if after.outcome in BROKEN and before.outcome not in BROKEN:
            regressions.append(change)
        elif before.outcome in WAS_FAILING and after.outcome in FIXED_OUTCOMES:
            fixes.append(change)
        else:
            other.append(change)
    return Comparison(
        baseline=baseline_name,
        compared=len(common),
        regressions=regressions,
        fixes=fixes,
        other_changes=other,
        new=sorted(current.records.keys() - baseline.records.keys()),
        removed=sorted(baseline.records.keys() - current.records.keys()),
    )


def header(report: Results) -> str:
    """``torch 2.13.0 · harness 0.1.0 · 2 results file(s) · 85 tests x 11 wrappers = 935 results``."""
    torch = ", ".join(sorted({r.torch for r in report.runs})) or "?"
    harness = ", ".join(sorted({r.harness for r in report.runs})) or "?"
    return (
        f"torch {torch} · harness {harness} · {len(report.runs)} results file(s) · "
        f"{len(report.tests)} tests x {len(report.wrappers)} wrappers = {len(report.records)} results"
    )


RULE_TEXT = {
    NEWEST: "the newest results file's selection",
    CHOSEN: "the selection asked for",
    ALL_SELECTIONS: "all selections (--all-selections)",
    NAMED: "the files named",
}


def selection_lines(report: Results) -> list[str]:
    """Plain sentences on what was merged: the selection(s), and the files left out. Said by every output."""
    selections = report.selections
    rule = RULE_TEXT[report.rule]
    if not selections:
        lines = ["no results files merged"]
    elif len(selections) == 1:
        [only] = selections.values()
        lines = [f"selection {results.describe_selection(only)} ({rule}); {len(report.runs)} file(s) merged"]
    else:
        lines = [
            f"MIXED SELECTIONS ({rule}): {len(report.runs)} files of {len(selections)} different selections "
            "merged, so wrappers and tests may have been run on different test sets: "
            + "; ".join(results.describe_selection(s) for s in selections.values())
        ]
    if report.left_out:
        lines.append(
            f"left out {len(report.left_out)} file(s) of other selections (--all-selections merges them, "
            "--selection KEY picks one)"
        )
    return lines


def run_json(run: RunFile) -> dict[str, object]:
    """One merged file as the JSON report lists it."""
    return {
        "path": run.name,
        "run": run.run,
        "wrappers": run.wrappers,
        "torch": run.torch,
        "harness": run.harness,
        "created": run.created,
        "shard": run.shard,
        "exitstatus": run.exitstatus,
        "records": len(run.records),
        "selection": None if run.selection is None else run.selection.to_json(),
    }


def _record_json(record: Record) -> dict[str, object]:
    """A record as report.json lists it (timings stay in the results files)."""
    return {k: v for k, v in record.to_json().items() if k != "timings"}


def _change_json(change: Change) -> dict[str, object]:
    return dict(vars(change))


def to_json(report: Results, comparison: Comparison | None = None) -> dict[str, Any]:
    """report.json: every record, the summary, the cause groups, the comparison, and which files were merged."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "selection": {
            "rule": report.rule,
            "mixed": report.mixed,
            "selections": [None if s is None else s.to_json() for s in report.selections.values()],
            "text": selection_lines(report),
        },
        "runs": [run_json(run) for run in report.runs],
        "left_out": [{**run_json(left.file), "reason": left.reason} for left in report.left_out],
        "wrappers": report.wrappers,
        "summary": {w: {o: counts[o] for o in OUTCOMES} for w, counts in summary(report).items()},
        "superseded_records": report.superseded,
        "collection_errors": report.collection_errors,
        "failure_groups": [
            {"stage": g.stage, "cause": g.cause, "count": len(g.members), "results": [list(m) for m in g.members]}
            for g in failure_groups(report)
        ],
        "comparison": None
        if comparison is None
        else {
            "baseline": comparison.baseline,
            "compared": comparison.compared,
            "regressions": [_change_json(c) for c in comparison.regressions],
            "fixes": [_change_json(c) for c in comparison.fixes],
            "other_changes": [_change_json(c) for c in comparison.other_changes],
            "new": [list(p) for p in comparison.new],
            "removed": [list(p) for p in comparison.removed],
        },
        "tests": [_record_json(record) for _, record in sorted(report.records.items())],
    }
