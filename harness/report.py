"""Merge results files and render them: Markdown for CI step summaries, one HTML page, JSON for tools.

Also compares a run with a baseline results file: regressions (a test that did not fail now
fails), fixes (an expected or real failure now passes), and the tests present on one side only.

    python -m harness.report [RESULTS ...] [--out reports] [--baseline results/baseline.json] [--ci]

``RESULTS`` are files or directories of ``*.json`` results files (default: ``results``); the
baseline file is never merged into the run. Records of the same test and wrapper in several
files: the most recent file wins. Does not import torch.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.results import BROKEN, FORMAT, OUTCOMES, VERSION, Record

REPORT_FORMAT = "torch-export-harness-report"
MARKDOWN_LIMIT = 1_000_000
"""Bytes: GitHub refuses step summaries over 1 MiB (1,048,576 bytes); stay below whatever the suite size."""
GROUP_EXAMPLES = 10
"""Tests listed under each failure cause in Markdown (the HTML page and JSON have them all)."""
CHANGE_ROWS = 200
"""Rows of each baseline-change table in Markdown."""
FIXED_OUTCOMES = frozenset({"passed", "xpassed"})
WAS_FAILING = BROKEN | {"xfailed"}


class ReportError(Exception):
    """A results or baseline file that is missing or unreadable; the message names the file."""


@dataclass
class RunInfo:
    """What one results file says about the run that wrote it."""

    path: str
    run: str
    wrappers: list[str]
    torch: str
    harness: str
    created: str
    shard: str | None
    exitstatus: int | None
    records: int


@dataclass
class Results:
    """Records of one or more results files, by (test, wrapper)."""

    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)
    collection_errors: list[dict[str, str]] = field(default_factory=list)
    superseded: int = 0

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


def _fail(path: Path, problem: str) -> ReportError:
    return ReportError(f"{path}: {problem}")


def load(path: Path) -> tuple[RunInfo, list[Record], list[dict[str, str]]]:
    """Read and check one results file; every problem is a :class:`ReportError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, "no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc}); a corrupt or truncated results file") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail(path, f"not a results file (no \"format\": \"{FORMAT}\")")
    version = document.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise _fail(path, f"results format version {version!r}; this harness reads version {VERSION}")
    tests = document.get("tests")
    if not isinstance(tests, list):
        raise _fail(path, "\"tests\" is missing or not a list")
    records = []
    for index, entry in enumerate(tests):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("test"), str)
            and isinstance(entry.get("wrapper"), str)
            and entry.get("outcome") in OUTCOMES
        ):
            raise _fail(path, f"tests[{index}] is not a record with test, wrapper and a known outcome: {entry!r:.200}")
        duration = entry.get("duration", 0.0)
        records.append(
            Record(
                test=entry["test"],
                wrapper=entry["wrapper"],
                outcome=entry["outcome"],
                stage=entry.get("stage") if isinstance(entry.get("stage"), str) else None,
                cause=entry.get("cause") if isinstance(entry.get("cause"), str) else None,
                duration=float(duration) if isinstance(duration, int | float) else 0.0,
            )
        )
    info = RunInfo(
        path=str(path),
        run=str(document.get("run", "?")),
        wrappers=[str(w) for w in document.get("wrappers", [])],
        torch=str(document.get("torch", "?")),
        harness=str(document.get("harness", "?")),
        created=str(document.get("created", "")),
        shard=document.get("shard") if isinstance(document.get("shard"), str) else None,
        exitstatus=document.get("exitstatus") if isinstance(document.get("exitstatus"), int) else None,
        records=len(records),
    )
    errors = [e for e in document.get("collection_errors", []) if isinstance(e, dict)]
    return info, records, errors


def merge(paths: Iterable[Path]) -> Results:
    """All records of ``paths``; where two files hold the same test and wrapper, the newer file wins."""
    loaded = [load(path) for path in paths]
    loaded.sort(key=lambda item: (item[0].created, item[0].path))
    merged = Results()
    for info, records, errors in loaded:
        merged.runs.append(info)
        merged.collection_errors.extend({**e, "file": info.path} for e in errors)
        for record in records:
            key = (record.test, record.wrapper)
            if key in merged.records:
                merged.superseded += 1
            merged.records[key] = record
    return merged


def expand_inputs(inputs: Sequence[str], exclude: Iterable[Path] = ()) -> list[Path]:
    """Files as given, directories as their ``*.json`` files (not hidden ones), minus ``exclude``."""
    excluded = {p.resolve() for p in exclude}
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            paths.extend(p for p in sorted(path.glob("*.json")) if not p.name.startswith("."))
        else:
            paths.append(path)  # a missing file is reported by load(), naming it
    return [p for p in dict.fromkeys(paths) if p.resolve() not in excluded]


def summary(results: Results) -> dict[str, Counter[str]]:
    """Outcome counts per wrapper."""
    counts: dict[str, Counter[str]] = {w: Counter() for w in results.wrappers}
    for (_, wrapper), record in results.records.items():
        counts[wrapper][record.outcome] += 1
    return counts


@dataclass
class FailureGroup:
    """Failed tests that broke at the same stage with the same first line of cause."""

    stage: str
    cause: str
    members: list[tuple[str, str]]


def failure_groups(results: Results) -> list[FailureGroup]:
    """Failures (failed, error, crashed) grouped by stage and cause, largest group first."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, record in sorted(results.records.items()):
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


# ----------------------------------------------------------------------------------------- Markdown


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


def _header(results: Results) -> str:
    torch = ", ".join(sorted({r.torch for r in results.runs})) or "?"
    harness = ", ".join(sorted({r.harness for r in results.runs})) or "?"
    return (
        f"torch {torch} · harness {harness} · {len(results.runs)} results file(s) · "
        f"{len(results.tests)} tests x {len(results.wrappers)} wrappers = {len(results.records)} results"
    )


def render_markdown(
    results: Results,
    comparison: Comparison | None = None,
    *,
    limit: int = MARKDOWN_LIMIT,
    show_new_removed: bool = False,
) -> str:
    """The summary for ``$GITHUB_STEP_SUMMARY``: wrapper table, baseline changes, failures by cause."""
    out = _Budget(limit)
    out.add("# torch.export compatibility report\n")
    out.add(_cell(_header(results)) + "\n")
    columns = [o for o in OUTCOMES]
    out.add("| wrapper | " + " | ".join(columns) + " | total |")
    out.add("|---|" + "---:|" * (len(columns) + 1))
    for wrapper, counts in summary(results).items():
        out.add(f"| {_code(wrapper)} | " + " | ".join(str(counts[o]) for o in columns) + f" | {counts.total()} |")
    if results.collection_errors:
        out.add(f"\n**{len(results.collection_errors)} collection error(s)**; see report.json.")
    if comparison is not None:
        _markdown_comparison(out, comparison, show_new_removed)
    groups = failure_groups(results)
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
            by_test[test].append(wrapper)
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


# ----------------------------------------------------------------------------------------- JSON


def to_json(results: Results, comparison: Comparison | None = None) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "version": 1,
        "runs": [asdict(run) for run in results.runs],
        "wrappers": results.wrappers,
        "summary": {w: {o: counts[o] for o in OUTCOMES} for w, counts in summary(results).items()},
        "superseded_records": results.superseded,
        "collection_errors": results.collection_errors,
        "failure_groups": [
            {"stage": g.stage, "cause": g.cause, "count": len(g.members), "results": [list(m) for m in g.members]}
            for g in failure_groups(results)
        ],
        "comparison": None
        if comparison is None
        else {
            "baseline": comparison.baseline,
            "compared": comparison.compared,
            "regressions": [asdict(c) for c in comparison.regressions],
            "fixes": [asdict(c) for c in comparison.fixes],
            "other_changes": [asdict(c) for c in comparison.other_changes],
            "new": [list(p) for p in comparison.new],
            "removed": [list(p) for p in comparison.removed],
        },
        "tests": [asdict(record) for _, record in sorted(results.records.items())],
    }


def results_document(results: Results) -> dict[str, Any]:
    """The merged records as one results file (what ``--write-baseline`` saves)."""
    from harness.results import versions

    torch = sorted({r.torch for r in results.runs})
    return {
        "format": FORMAT,
        "version": VERSION,
        "run": "merged",
        "wrappers": results.wrappers,
        **versions(),
        "torch": torch[0] if len(torch) == 1 else ", ".join(torch),
        "created": max((r.created for r in results.runs), default=""),
        "shard": None,
        "exitstatus": None,
        "args": [],
        "merged_from": [r.path for r in results.runs],
        "collection_errors": results.collection_errors,
        "tests": [asdict(record) for _, record in sorted(results.records.items())],
    }


# ----------------------------------------------------------------------------------------- HTML


def _html_data(results: Results, comparison: Comparison | None) -> dict[str, Any]:
    wrappers = results.wrappers
    tests = results.tests
    test_index = {t: i for i, t in enumerate(tests)}
    wrapper_index = {w: i for i, w in enumerate(wrappers)}
    texts: dict[str, int] = {}
    stages: dict[str, int] = {}
    regressed = {(c.test, c.wrapper) for c in comparison.regressions} if comparison else set()
    cells = []
    for (test, wrapper), record in sorted(results.records.items()):
        cells.append(
            [
                test_index[test],
                wrapper_index[wrapper],
                OUTCOMES.index(record.outcome),
                stages.setdefault(record.stage, len(stages)) if record.stage else -1,
                texts.setdefault(record.cause, len(texts)) if record.cause else -1,
                round(record.duration, 3),
                1 if (test, wrapper) in regressed else 0,
            ]
        )
    return {
        "wrappers": wrappers,
        "tests": tests,
        "outcomes": list(OUTCOMES),
        "stages": list(stages),
        "causes": list(texts),
        "cells": cells,
        "baseline": comparison.baseline if comparison else None,
    }


def _script_json(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the strings hold."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(results: Results, comparison: Comparison | None = None) -> str:
    """One self-contained page: tests by wrappers coloured by outcome, with filters and causes."""
    counts = summary(results)
    rows = "".join(
        f"<tr><td><code>{html.escape(w)}</code></td>"
        + "".join(f'<td class="n o-{o}">{counts[w][o]}</td>' for o in OUTCOMES)
        + f"<td class=n>{counts[w].total()}</td></tr>"
        for w in results.wrappers
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
    page = _HTML_TEMPLATE
    for key, value in (
        ("__HEADER__", html.escape(_header(results))),
        ("__SUMMARY__", f"<table id=summary><tr><th>wrapper</th>{heads}<th>total</th></tr>{rows}</table>"),
        ("__BASELINE__", changes),
        ("__DATA__", _script_json(_html_data(results, comparison))),
    ):
        page = page.replace(key, value, 1)
    return page


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>torch.export compatibility report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:1.4em;margin:.2em 0} code{font-size:12px}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 6px}
td.n{text-align:right} #summary{margin:.5em 0 1em}
#filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;z-index:2}
#filters label{margin-right:1em} #count{font-weight:bold}
#legend{font-size:12px;color:#555;margin-top:.3em}
#grid th{background:#f4f4f4;font-size:11px;writing-mode:vertical-rl;transform:rotate(180deg)}
#grid th.test{writing-mode:horizontal-tb;transform:none;text-align:left}
#grid td.t{font-family:monospace;font-size:12px;white-space:nowrap}
#grid td.c{width:22px;text-align:center;cursor:pointer;font-size:11px}
#grid td.c.reg{outline:3px solid #b00020;outline-offset:-3px}
.o-passed{background:#c8e6c9}.o-failed{background:#ef9a9a}.o-error{background:#ffcc80}
.o-crashed{background:#ce93d8}.o-xfailed{background:#fff59d}.o-xpassed{background:#90caf9}
.o-skipped{background:#e0e0e0}.o-missing{background:#fff;color:#aaa}
#detail{position:fixed;right:1em;bottom:1em;max-width:45em;background:#fffde7;border:1px solid #999;
padding:.6em 1em;box-shadow:0 2px 8px #0003;white-space:pre-wrap;font-family:monospace;font-size:12px;
display:none;z-index:3}
.hidden{display:none}
</style></head>
<body>
<h1>torch.export compatibility report</h1>
<p>__HEADER__</p>
__SUMMARY__
__BASELINE__
<div id="filters">
<label>wrapper <select id="f-wrapper"><option value="">all</option></select></label>
<label>outcome <select id="f-outcome"><option value="">any</option>
<option value="broken">failed, error or crashed</option></select></label>
<label>stage <select id="f-stage"><option value="">any</option></select></label>
<label>text <input id="f-text" type="search" placeholder="test id or cause" size="30"></label>
<span id="count"></span>
<div id="legend">✓ passed · ✗ failed · E error · ☠ crashed (worker died) · x xfailed · X xpassed · s skipped ·
· not run · red outline: regression vs the baseline · hover or click a cell for its cause</div>
</div>
<table id="grid"><thead><tr id="head"><th class="test">test</th></tr></thead><tbody id="rows"></tbody></table>
<div id="detail" role="dialog"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const SHORT = {passed:"✓", failed:"✗", error:"E", crashed:"☠", xfailed:"x", xpassed:"X", skipped:"s"};
const BROKEN = new Set(["failed", "error", "crashed"]);
const byTest = D.tests.map(() => new Array(D.wrappers.length).fill(null));
for (const c of D.cells) byTest[c[0]][c[1]] = c;
const $ = (id) => document.getElementById(id);
function option(select, value, text) {
  const o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o);
}
D.wrappers.forEach((w, i) => {
  option($("f-wrapper"), String(i), w);
  const th = document.createElement("th"); th.textContent = w; th.dataset.w = i; $("head").appendChild(th);
});
D.outcomes.forEach((o, i) => option($("f-outcome"), String(i), o));
if (D.baseline !== null) option($("f-outcome"), "regression", "regression (vs baseline)");
D.stages.forEach((s, i) => option($("f-stage"), String(i), s));
function describe(t, w, c) {
  const lines = ["test:     " + D.tests[t], "wrapper:  " + D.wrappers[w]];
  if (c === null) { lines.push("outcome:  not run"); return lines.join("\\n"); }
  lines.push("outcome:  " + D.outcomes[c[2]] + (c[6] ? "  (regression vs baseline)" : ""));
  if (c[3] >= 0) lines.push("stage:    " + D.stages[c[3]]);
  if (c[4] >= 0) lines.push("cause:    " + D.causes[c[4]]);
  lines.push("duration: " + c[5] + " s");
  return lines.join("\\n");
}
const rows = [];
const body = document.createDocumentFragment();
D.tests.forEach((name, t) => {
  const tr = document.createElement("tr");
  const td = document.createElement("td"); td.className = "t"; td.textContent = name; tr.appendChild(td);
  D.wrappers.forEach((_, w) => {
    const c = byTest[t][w];
    const cell = document.createElement("td");
    const outcome = c === null ? "missing" : D.outcomes[c[2]];
    cell.className = "c o-" + outcome + (c !== null && c[6] ? " reg" : "");
    cell.textContent = c === null ? "·" : SHORT[outcome];
    cell.title = describe(t, w, c);
    cell.dataset.t = t; cell.dataset.w = w;
    tr.appendChild(cell);
  });
  rows.push(tr); body.appendChild(tr);
});
$("rows").appendChild(body);
$("rows").addEventListener("click", (event) => {
  const cell = event.target.closest("td.c");
  if (!cell) return;
  const t = Number(cell.dataset.t), w = Number(cell.dataset.w);
  $("detail").textContent = describe(t, w, byTest[t][w]);
  $("detail").style.display = "block";
});
$("detail").addEventListener("click", () => { $("detail").style.display = "none"; });
function matches(c, outcome, stage, text, testName) {
  if (c === null) return false;
  if (outcome === "broken" && !BROKEN.has(D.outcomes[c[2]])) return false;
  if (outcome === "regression" && !c[6]) return false;
  if (outcome !== "" && outcome !== "broken" && outcome !== "regression" && c[2] !== Number(outcome)) return false;
  if (stage !== "" && c[3] !== Number(stage)) return false;
  if (!text || testName.toLowerCase().includes(text)) return true;
  return c[4] >= 0 && D.causes[c[4]].toLowerCase().includes(text);
}
function apply() {
  const wrapper = $("f-wrapper").value, outcome = $("f-outcome").value, stage = $("f-stage").value;
  const text = $("f-text").value.trim().toLowerCase();
  const columns = wrapper === "" ? D.wrappers.map((_, i) => i) : [Number(wrapper)];
  document.querySelectorAll("#grid [data-w]").forEach((el) => {
    el.classList.toggle("hidden", wrapper !== "" && Number(el.dataset.w) !== Number(wrapper));
  });
  let shown = 0;
  rows.forEach((tr, t) => {
    const any = columns.some((w) => matches(byTest[t][w], outcome, stage, text, D.tests[t]));
    tr.classList.toggle("hidden", !any);
    if (any) shown += 1;
  });
  $("count").textContent = shown + " of " + D.tests.length + " tests shown";
}
for (const id of ["f-wrapper", "f-outcome", "f-stage"]) $(id).addEventListener("change", apply);
$("f-text").addEventListener("input", apply);
apply();
</script>
</body></html>
"""


# ----------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Merge results files into reports/report.md, report.html and report.json; compare with a baseline.",
    )
    parser.add_argument(
        "inputs", nargs="*", default=["results"], metavar="RESULTS",
        help="results files or directories (default: results)",
    )
    parser.add_argument("--out", default="reports", help="directory for report.md, report.html, report.json")
    parser.add_argument("--baseline", default=None, help="baseline results file to compare with (never merged)")
    parser.add_argument("--ci", action="store_true", help="exit 1 when the comparison finds a regression")
    parser.add_argument(
        "--show-new-removed", action="store_true", help="list results absent from the baseline or the run in Markdown"
    )
    parser.add_argument("--write-baseline", metavar="PATH", help="also save the merged results as a results file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    baseline_path = Path(args.baseline) if args.baseline else None
    try:
        paths = expand_inputs(args.inputs, exclude=[baseline_path] if baseline_path else [])
        if not paths:
            raise ReportError(
                f"{', '.join(args.inputs)}: no results files; run a wrapper session or `nox -s matrix` first"
            )
        results = merge(paths)
        comparison = None
        if baseline_path is not None:
            comparison = compare(merge([baseline_path]), results, str(baseline_path))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(results, comparison, show_new_removed=args.show_new_removed)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.html").write_text(render_html(results, comparison), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(to_json(results, comparison), indent=1) + "\n", encoding="utf-8")
    if args.write_baseline:
        Path(args.write_baseline).write_text(json.dumps(results_document(results), indent=1) + "\n", encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    print(f"merged {len(paths)} results file(s): {len(results.records)} results, {len(results.tests)} tests")
    for name in ("report.md", "report.html", "report.json"):
        print(f"wrote {out / name}")
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


if __name__ == "__main__":
    raise SystemExit(main())
