"""Report rendering, choosing and merging files by selection, and the baseline comparison: pure code, no pytest run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import results
from harness.report import (
    MARKDOWN_LIMIT,
    compare,
    failure_groups,
    main,
    merge,
    render_html,
    render_markdown,
    to_json,
)
from harness.results import Record, ResultsError, RunFile, RunSelection
from harness.wrappers import BUILTIN_WRAPPERS

ALL_NAMES = [w.name for w in BUILTIN_WRAPPERS]
SUITE = RunSelection(paths=("tests/export", "tests/ops"))
QUICK = RunSelection(paths=("tests/export", "tests/ops"), markexpr="quick", selected=4)
DYNAMIC = RunSelection(paths=("tests/export", "tests/ops"), keyword="dynamic", selected=2)


def record(test: str, wrapper: str, outcome: str, stage: str | None = None, cause: str | None = None) -> dict[str, Any]:
    return {"test": test, "wrapper": wrapper, "outcome": outcome, "stage": stage, "cause": cause, "duration": 0.25}


def write_results(
    path: Path,
    tests: list[dict[str, Any]],
    created: str = "2026-01-01T00:00:00+00:00",
    selection: RunSelection | None = SUITE,
    shard: str | None = None,
) -> Path:
    """A results file written by the one writer, as a run would leave it."""
    run = RunFile(
        run=path.stem.split("-")[0],
        wrappers=sorted({t["wrapper"] for t in tests}),
        records=[Record(**t) for t in tests],
        selection=selection,
        shard=shard,
        exitstatus=0,
        created=created,
        torch="2.13.0",
        harness="0.1.0",
    )
    results.write(path, run)
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


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=f"^{tmp_path / 'nope.json'}: no such results file"):
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


# ------------------------------------------------------------------------ which files: grouping by selection


def _run_dir(tmp_path: Path) -> Path:
    """What `nox -s serdes_strict -- -k dynamic`, then `nox -s matrix -- -m quick` (2 shards) leave in results/."""
    directory = tmp_path / "results"
    directory.mkdir()
    write_results(
        directory / f"serdes_strict-{DYNAMIC.key}.json",
        [record("t.py::test_dyn", "serdes_strict", "failed", "serialize", "boom")],
        "2026-01-01T10:00:00+00:00",
        DYNAMIC,
    )
    for shard, test in ((1, "t.py::test_a"), (2, "t.py::test_b")):
        write_results(
            directory / f"matrix-{QUICK.key}-shard-{shard}-of-2.json",
            [record(test, "strict", "passed"), record(test, "serdes_strict", "passed")],
            f"2026-01-01T11:00:0{shard}+00:00",
            QUICK,
            shard=f"{shard}/2",
        )
    return directory


def test_report_takes_the_newest_selection_and_names_the_files_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    out = tmp_path / "reports"
    assert main([str(directory), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"selection {QUICK.key}: tests/export tests/ops -m quick (the newest results file's selection)" in stdout
    assert stdout.count("  merged   ") == 2 and "shard 1/2" in stdout and "shard 2/2" in stdout
    assert f"left out {directory / f'serdes_strict-{DYNAMIC.key}.json'}: selection {DYNAMIC.key}" in stdout
    document = json.loads((out / "report.json").read_text())
    assert sorted(test for test, _ in {(t["test"], t["wrapper"]) for t in document["tests"]}) == [
        "t.py::test_a", "t.py::test_a", "t.py::test_b", "t.py::test_b"
    ]
    assert document["selection"]["mixed"] is False
    assert [s["key"] for s in document["selection"]["selections"]] == [QUICK.key]
    assert [left["path"] for left in document["left_out"]] == [str(directory / f"serdes_strict-{DYNAMIC.key}.json")]
    assert all(run["selection"]["key"] == QUICK.key for run in document["runs"])
    markdown = (out / "report.md").read_text()
    assert "left out 1 file(s) of other selections" in markdown and f"serdes_strict-{DYNAMIC.key}.json`" in markdown
    page = (out / "report.html").read_text()
    assert f"selection {QUICK.key}" in page and f"serdes_strict-{DYNAMIC.key}.json" in page


def test_all_selections_merges_everything_and_says_it_mixed_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    out = tmp_path / "reports"
    assert main([str(directory), "--out", str(out), "--all-selections"]) == 0
    stdout = capsys.readouterr().out
    assert "MIXED SELECTIONS (all selections (--all-selections)): 3 files of 2 different selections" in stdout
    assert "left out" not in stdout
    document = json.loads((out / "report.json").read_text())
    assert document["selection"]["mixed"] is True
    assert {s["key"] for s in document["selection"]["selections"]} == {QUICK.key, DYNAMIC.key}
    assert len(document["tests"]) == 5
    assert "**MIXED SELECTIONS" in (out / "report.md").read_text()
    assert 'id=selection class=mixed' in (out / "report.html").read_text()


def test_selection_key_picks_an_older_selection_and_an_unknown_key_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    out = tmp_path / "reports"
    assert main([str(directory), "--out", str(out), "--selection", DYNAMIC.key]) == 0
    assert [t["test"] for t in json.loads((out / "report.json").read_text())["tests"]] == ["t.py::test_dyn"]
    assert "left out 2 file(s)" in capsys.readouterr().out
    assert main([str(directory), "--out", str(out), "--selection", "0000000000"]) == 2
    err = capsys.readouterr().err
    assert "no results file of selection '0000000000'" in err and QUICK.key in err and DYNAMIC.key in err


def test_files_named_one_by_one_are_used_as_given_and_a_mix_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    named = sorted(str(p) for p in directory.iterdir())
    assert main([*named, "--out", str(tmp_path / "reports")]) == 0
    stdout = capsys.readouterr().out
    assert "MIXED SELECTIONS (the files named): 3 files of 2 different selections" in stdout


def test_version_1_files_are_read_and_grouped_as_an_unknown_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    old = {"format": results.FORMAT, "version": 1, "run": "matrix", "created": "2025-01-01T00:00:00+00:00",
           "tests": [record("t.py::test_old", "strict", "passed")]}
    (directory / "matrix.json").write_text(json.dumps(old))
    assert main([str(directory), "--out", str(tmp_path / "reports")]) == 0
    stdout = capsys.readouterr().out
    assert f"left out {directory / 'matrix.json'}: selection unknown (a version-1 file" in stdout


def test_write_baseline_goes_through_the_results_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    directory = _run_dir(tmp_path)
    baseline = tmp_path / "baseline.json"
    assert main([str(directory), "--out", str(tmp_path / "reports"), "--write-baseline", str(baseline)]) == 0
    written = results.load(baseline)
    assert (written.version, written.run, written.selection) == (results.VERSION, "merged", QUICK)
    assert len(written.records) == 4 and len(written.merged_from or []) == 2
    assert written.created == "2026-01-01T11:00:02+00:00"  # the newest file's
    assert not list(tmp_path.glob(".baseline.json.*"))  # no temporary left behind
