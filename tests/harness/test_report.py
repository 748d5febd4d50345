"""Report rendering, merging and the baseline comparison: pure code, no pytest run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import (
    MARKDOWN_LIMIT,
    ReportError,
    compare,
    expand_inputs,
    failure_groups,
    load,
    main,
    merge,
    render_html,
    render_markdown,
    to_json,
)
from harness.results import FORMAT, VERSION
from harness.wrappers import BUILTIN_WRAPPERS

ALL_NAMES = [w.name for w in BUILTIN_WRAPPERS]


def record(test: str, wrapper: str, outcome: str, stage: str | None = None, cause: str | None = None) -> dict[str, Any]:
    return {"test": test, "wrapper": wrapper, "outcome": outcome, "stage": stage, "cause": cause, "duration": 0.25}


def write_results(path: Path, tests: list[dict[str, Any]], created: str = "2026-01-01T00:00:00+00:00") -> Path:
    document = {
        "format": FORMAT,
        "version": VERSION,
        "run": path.stem,
        "wrappers": sorted({t["wrapper"] for t in tests}),
        "torch": "2.13.0",
        "harness": "0.1.0",
        "created": created,
        "shard": None,
        "exitstatus": 0,
        "args": [],
        "collection_errors": [],
        "tests": tests,
    }
    path.write_text(json.dumps(document))
    return path


BASELINE = [
    record("t.py::test_a", "strict", "passed"),
    record("t.py::test_b", "strict", "xfailed", "serialize", "known"),
    record("t.py::test_c", "strict", "passed"),
    record("t.py::test_gone", "strict", "passed"),
]
CURRENT = [
    record("t.py::test_a", "strict", "failed", "deserialize", "KeyError: 'x'"),
    record("t.py::test_b", "strict", "xpassed", None, "known"),
    record("t.py::test_c", "strict", "passed"),
    record("t.py::test_new", "strict", "passed"),
]


def test_merge_newer_file_wins_and_keeps_both_runs(tmp_path: Path) -> None:
    failed = [record("t.py::test_a", "strict", "failed", "test", "boom")]
    old = write_results(tmp_path / "old.json", failed, "2026-01-01")
    new = write_results(tmp_path / "new.json", [record("t.py::test_a", "strict", "passed")], "2026-01-02")
    other = write_results(tmp_path / "shard.json", [record("t.py::test_b", "cpp_serdes", "passed")], "2026-01-01")
    merged = merge([new, old, other])
    assert merged.records[("t.py::test_a", "strict")].outcome == "passed"
    assert merged.superseded == 1
    assert len(merged.runs) == 3
    assert merged.wrappers == ["strict", "cpp_serdes"]  # registry order


def test_expand_inputs_takes_directories_and_leaves_the_baseline_out(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a.json", BASELINE)
    baseline = write_results(tmp_path / "baseline.json", BASELINE)
    (tmp_path / ".hidden.json.tmp").write_text("{")
    assert expand_inputs([str(tmp_path)], exclude=[baseline]) == [a]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"format": "something-else"}', "not a results file"),
        (json.dumps({"format": FORMAT, "version": 99, "tests": []}), "results format version 99"),
        (json.dumps({"format": FORMAT, "version": 1, "tests": [{"test": "x"}]}), r"tests\[0\] is not a record"),
    ],
    ids=["garbage", "empty", "other-format", "newer-version", "bad-record"],
)
def test_corrupt_file_is_an_error_naming_it(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=f"^{path}: .*{message}"):
        load(path)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"^{tmp_path / 'nope.json'}: no such results file"):
        merge([tmp_path / "nope.json"])


def test_compare_lists_regressions_fixes_new_and_removed(tmp_path: Path) -> None:
    baseline = merge([write_results(tmp_path / "b.json", BASELINE)])
    current = merge([write_results(tmp_path / "c.json", CURRENT)])
    comparison = compare(baseline, current, "b.json")
    assert comparison.compared == 3
    assert [(c.test, c.before, c.after) for c in comparison.regressions] == [("t.py::test_a", "passed", "failed")]
    assert [(c.test, c.before, c.after) for c in comparison.fixes] == [("t.py::test_b", "xfailed", "xpassed")]
    assert comparison.new == [("t.py::test_new", "strict")]
    assert comparison.removed == [("t.py::test_gone", "strict")]


def test_failure_groups_by_stage_and_cause_largest_first(tmp_path: Path) -> None:
    tests = [
        record(f"t.py::test_{i}", w, "failed", "serialize", "NotImplementedError: x")
        for i in range(3)
        for w in ("strict", "cpp_serdes")
    ]
    tests.append(record("t.py::test_z", "strict", "crashed", "crash", "worker 'gw0' crashed"))
    tests.append(record("t.py::test_y", "strict", "xfailed", "serialize", "known"))
    groups = failure_groups(merge([write_results(tmp_path / "r.json", tests)]))
    assert [(g.stage, len(g.members)) for g in groups] == [("serialize", 6), ("crash", 1)]


def test_markdown_has_the_wrapper_table_changes_and_causes(tmp_path: Path) -> None:
    baseline = merge([write_results(tmp_path / "b.json", BASELINE)])
    current = merge([write_results(tmp_path / "c.json", CURRENT)])
    text = render_markdown(current, compare(baseline, current, "b.json"))
    assert "| `strict` | 2 | 1 | 0 | 0 | 0 | 1 | 0 | 4 |" in text
    assert "### Regressions (1)" in text and "### Fixes (1)" in text
    assert "### `deserialize`: KeyError: 'x' (1)" in text
    assert "test_new" not in text  # new/removed are counted, listed only when asked
    assert "test_new" in render_markdown(current, compare(baseline, current, "b.json"), show_new_removed=True)


def test_markdown_stays_under_one_mebibyte_for_a_huge_suite(tmp_path: Path) -> None:
    tests = [
        record(f"tests/ops/test_opinfo.py::test_op[op{i}-s0]", wrapper, "failed", "serialize", f"E{i}: " + "x" * 300)
        for i in range(4000)
        for wrapper in ALL_NAMES
    ]
    results = merge([write_results(tmp_path / "huge.json", tests)])
    baseline = merge([write_results(tmp_path / "base.json", [{**t, "outcome": "passed"} for t in tests])])
    text = render_markdown(results, compare(baseline, results, "base.json"))
    assert len(text.encode("utf-8")) < MARKDOWN_LIMIT < 1024 * 1024
    assert "more causes left out" in text
    assert "| wrapper |" in text and "### Regressions (44000)" in text


def test_html_escapes_everything_it_embeds(tmp_path: Path) -> None:
    nasty = "</script><script>alert(1)</script><!-- & \u2028"
    results = merge([write_results(tmp_path / "r.json", [record("t.py::test_<b>", "strict", "failed", "test", nasty)])])
    page = render_html(results)
    assert "<script>alert(1)" not in page
    assert "test_<b>" not in page
    assert page.count("</script>") == 2  # the data block and the code, nothing from the data
    data = page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["causes"] == [nasty]


def test_json_report_holds_every_result_and_the_comparison(tmp_path: Path) -> None:
    baseline = merge([write_results(tmp_path / "b.json", BASELINE)])
    current = merge([write_results(tmp_path / "c.json", CURRENT)])
    document = to_json(current, compare(baseline, current, "b.json"))
    assert len(document["tests"]) == 4
    assert document["summary"]["strict"]["failed"] == 1
    assert document["comparison"]["regressions"][0]["test"] == "t.py::test_a"
    json.dumps(document)


def test_cli_writes_three_outputs_and_ci_mode_fails_on_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    results = tmp_path / "results"
    results.mkdir()
    write_results(results / "matrix.json", CURRENT)
    baseline = write_results(results / "baseline.json", BASELINE)
    out = tmp_path / "reports"
    args = [str(results), "--out", str(out), "--baseline", str(baseline)]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "report.json"}
    assert main([*args, "--ci"]) == 1
    assert "1 regression(s)" in capsys.readouterr().err
    write_results(results / "matrix.json", BASELINE)
    assert main([*args, "--ci"]) == 0


def test_cli_names_a_missing_baseline_or_empty_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_results(tmp_path / "run.json", CURRENT)
    assert main([str(tmp_path / "run.json"), "--out", str(tmp_path), "--baseline", str(tmp_path / "gone.json")]) == 2
    assert f"{tmp_path / 'gone.json'}: no such results file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path)]) == 2
    assert "no results files" in capsys.readouterr().err


def test_cli_appends_markdown_to_the_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_results(tmp_path / "run.json", CURRENT)
    assert main([str(tmp_path / "run.json"), "--out", str(tmp_path / "out")]) == 0
    assert summary.read_text() == (tmp_path / "out" / "report.md").read_text()
