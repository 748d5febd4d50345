"""Results files: the format (write, load, merge, selection keys) directly; recording from real runs (pytester)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import results
from harness.errors import ExportWrapperError
from harness.recording import OFF_LINE, Collector, describe
from harness.results import FORMAT, Record, ResultsError, RunFile, RunSelection

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper or shard selected by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    monkeypatch.delenv("EXPORT_SHARD", raising=False)
    return pytester


# ----------------------------------------------------------------------------- the format: pure code


def test_results_imports_neither_pytest_nor_torch() -> None:
    code = "import sys, harness.results; sys.exit(bool({'pytest', 'torch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _run(**changes: Any) -> RunFile:
    run = RunFile(
        run="cpp_serdes",
        wrappers=["cpp_serdes"],
        records=[
            Record("a.py::test_x", "cpp_serdes", "passed", duration=0.5, timings=[[0.25, 0.75], [1.0, 2.5]]),
            Record("a.py::test_y", "cpp_serdes", "failed", "deserialize", "KeyError: 'x'", 0.125),
        ],
        selection=RunSelection(paths=("tests/export",), keyword="dynamic", selected=2),
        shard="1/4",
        exitstatus=1,
        args=["-k", "dynamic"],
        created="2026-01-01T00:00:00.000+00:00",
        torch="2.13.0",
        harness="0.1.0",
        python="3.11.7",
    )
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def test_write_then_load_gives_the_same_run_timings_and_all(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run.json"
    results.write(path, _run())
    loaded = results.load(path)
    assert loaded == _run(path=str(path))
    assert loaded.records[0].timings == [[0.25, 0.75], [1.0, 2.5]]
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == (FORMAT, results.VERSION)
    assert document["selection"]["key"] == loaded.selection_key
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left


def test_a_version_1_file_still_loads() -> None:
    document = {
        "format": FORMAT, "version": 1, "run": "matrix", "wrappers": ["strict"], "torch": "2.13.0",
        "harness": "0.1.0", "created": "2026-11-23T15:22:27+00:00", "shard": None, "exitstatus": 0, "args": [],
        "collection_errors": [],
        "tests": [{"test": "t.py::test_a", "wrapper": "strict", "outcome": "passed", "stage": None, "cause": None,
                   "duration": 0.3}],
    }
    run = RunFile.from_json(document, "old.json")
    assert (run.version, run.selection, run.python) == (1, None, "?")
    assert run.records == [Record("t.py::test_a", "strict", "passed", duration=0.3)]


def test_the_committed_baseline_loads() -> None:
    baseline = results.load(Path(__file__).parents[2] / "results" / "baseline.json")
    assert len(baseline.records) > 100


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"format": "something-else"}', "not a results file"),
        (json.dumps({"format": FORMAT, "version": 99, "tests": []}), "results format version 99"),
        (json.dumps({"format": FORMAT, "version": 1, "tests": [{"test": "x"}]}), r"tests\[0\] is not a record"),
        (
            json.dumps({"format": FORMAT, "version": 2, "tests": [
                {"test": "x", "wrapper": "strict", "outcome": "passed", "timings": [[1.0]]}
            ]}),
            r"tests\[0\].timings",
        ),
        (json.dumps({"format": FORMAT, "version": 2, "tests": [], "selection": {"paths": "x"}}), "selection.paths"),
        (
            json.dumps({"format": FORMAT, "version": 2, "tests": [], "selection": {"paths": [], "key": "0"}}),
            "selection.key '0' does not match",
        ),
    ],
    ids=["garbage", "empty", "other-format", "newer-version", "bad-record", "bad-timings", "bad-selection", "bad-key"],
)
def test_a_corrupt_file_is_an_error_naming_it(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=f"^{path}: .*{message}"):
        results.load(path)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=f"^{tmp_path / 'nope.json'}: no such results file"):
        results.load(tmp_path / "nope.json")


def test_merge_newest_file_wins_and_counts_what_it_superseded() -> None:
    old = _run(created="2026-01-01T00:00:00+00:00", path="old.json")
    new = _run(created="2026-01-01T00:00:00.500+00:00", path="new.json",
               records=[Record("a.py::test_y", "cpp_serdes", "passed")])
    merged = results.merge([new, old])
    assert [f.name for f in merged.files] == ["old.json", "new.json"]
    assert merged.records[("a.py::test_y", "cpp_serdes")].outcome == "passed"
    assert merged.records[("a.py::test_x", "cpp_serdes")].timings == [[0.25, 0.75], [1.0, 2.5]]
    assert merged.superseded == 1


def test_expand_inputs_takes_directories_and_leaves_the_baseline_and_hidden_files_out(tmp_path: Path) -> None:
    a, baseline = tmp_path / "a.json", tmp_path / "baseline.json"
    for path in (a, baseline):
        results.write(path, _run())
    (tmp_path / ".a.json.123.tmp").write_text("{")
    assert results.expand_inputs([str(tmp_path)], exclude=[baseline]) == [a]


def test_the_selection_key_is_stable_and_ignores_order_count_shard_and_wrappers() -> None:
    quick = RunSelection(paths=("tests/export", "tests/ops"), markexpr="quick")
    assert quick.key == "8767d6cb8d"  # the same on every machine and Python: keys name files across runs
    assert RunSelection(paths=("tests/ops", "tests/export"), markexpr="quick", selected=85).key == quick.key
    others = [
        RunSelection(paths=("tests/export", "tests/ops")),
        RunSelection(paths=("tests/export",), markexpr="quick"),
        RunSelection(paths=("tests/export", "tests/ops"), markexpr="quick", keyword="dynamic"),
        RunSelection(paths=("tests/export", "tests/ops"), markexpr="quick", deselect=("tests/export/a.py",)),
        RunSelection(paths=("tests/export", "tests/ops"), markexpr="quick", other=("--lf",)),
    ]
    assert len({quick.key, *(s.key for s in others)}) == 1 + len(others)


def test_file_names_differ_by_run_selection_and_shard_only() -> None:
    quick = RunSelection(paths=("tests/export",), markexpr="quick")
    dynamic = RunSelection(paths=("tests/export",), keyword="dynamic")
    assert results.file_name("matrix", quick, None) == f"matrix-{quick.key}.json"
    assert results.file_name("cpp_serdes", quick, (2, 4)) == f"cpp_serdes-{quick.key}-shard-2-of-4.json"
    names = {
        results.file_name(run, selection, shard)
        for run in ("matrix", "cpp_serdes")
        for selection in (quick, dynamic)
        for shard in (None, (1, 2), (2, 2))
    }
    assert len(names) == 12


# ----------------------------------------------------------------------------- reports to records


def _wrapper_error() -> ExportWrapperError:
    try:
        try:
            raise ValueError("no such node\nsecond line")
        except ValueError as cause:
            raise ExportWrapperError("serdes_strict", "deserialize", cause) from cause
    except ExportWrapperError as exc:
        return exc


def test_describe_names_the_wrapper_stage_and_the_cause_first_line() -> None:
    assert describe(_wrapper_error(), [], "call") == ("deserialize", "ValueError: no such node")


def test_describe_finds_the_wrapper_error_behind_a_test_exception() -> None:
    try:
        try:
            raise _wrapper_error()
        except ExportWrapperError as exc:
            raise AssertionError("check_export failed") from exc
    except AssertionError as outer:
        assert describe(outer, [], "call")[0] == "deserialize"


def test_describe_export_and_test_and_setup_failures() -> None:
    error = ValueError("bad\nmore")
    assert describe(error, ["export"], "call") == ("export", "ValueError: bad")
    assert describe(error, [None], "call") == ("test", "ValueError: bad")
    assert describe(error, [], "setup") == ("setup", "ValueError: bad")


def _report(nodeid: str, when: str, outcome: str, **attrs: Any) -> pytest.TestReport:
    longrepr = attrs.pop("longrepr", None)
    report = pytest.TestReport(nodeid, ("a.py", 1, "x"), {}, outcome, longrepr, when, duration=0.5)  # type: ignore[arg-type]
    for name, value in attrs.items():
        setattr(report, name, value)
    return report


def test_collector_folds_phases_into_one_record_per_test_and_wrapper() -> None:
    collector = Collector(["strict", "non_strict"], matrix=True)
    for when in ("setup", "call", "teardown"):
        collector.add(_report("a.py::test_ok[strict]", when, "passed"))
    collector.add(_report("a.py::test_ok[non_strict]", "setup", "passed"))
    collector.add(
        _report(
            "a.py::test_ok[non_strict]", "call", "failed", longrepr="E long", export_stage="retrace",
            export_cause="TypeError: x",
        )
    )
    collector.add(_report("a.py::test_ok[non_strict]", "teardown", "failed", longrepr="teardown broke"))
    collector.add(_report("a.py::test_x[strict]", "call", "skipped", longrepr="xfail", wasxfail="known"))
    collector.add(_report("a.py::test_y[strict]", "call", "failed", longrepr="[XPASS(strict)] stale"))
    collector.add(_report("a.py::test_z[strict]", "???", "failed", longrepr="worker 'gw0' crashed while running"))
    collector.add(_report("a.py::test_s[strict]", "setup", "skipped", longrepr=("a.py", 1, "Skipped: not today")))
    records = {(r.test, r.wrapper): r for r in collector.records.values()}
    assert records[("a.py::test_ok", "strict")].outcome == "passed"
    assert records[("a.py::test_ok", "strict")].duration == pytest.approx(1.5)
    failed = records[("a.py::test_ok", "non_strict")]
    assert (failed.outcome, failed.stage, failed.cause) == ("failed", "retrace", "TypeError: x")
    assert records[("a.py::test_x", "strict")].outcome == "xfailed"
    assert records[("a.py::test_y", "strict")].outcome == "xpassed"
    crashed = records[("a.py::test_z", "strict")]
    assert (crashed.outcome, crashed.stage) == ("crashed", "crash")
    assert "crashed" in (crashed.cause or "")
    skipped = records[("a.py::test_s", "strict")]
    assert (skipped.outcome, skipped.cause) == ("skipped", "not today")


def test_single_wrapper_ids_are_kept_whole() -> None:
    collector = Collector(["strict"], matrix=False)
    collector.add(_report("a.py::test_x[strict]", "call", "passed"))
    assert list(collector.records) == [("a.py::test_x[strict]", "strict")]


def test_collector_keeps_the_timings_of_every_phase() -> None:
    collector = Collector(["cpp_serdes"], matrix=False)
    for when, timings in (("setup", [[0.5, 0.75]]), ("call", [[1.0, 2.0], [2.0, 3.0]]), ("teardown", [])):
        collector.add(_report("a.py::t", when, "passed", export_wrapper_timings=timings))
    [record] = collector.records.values()
    assert record.timings == [[0.5, 0.75], [1.0, 2.0], [2.0, 3.0]]


# ----------------------------------------------------------------------------- real runs (pytester)


CRASHING_SUITE = """
    import os
    import torch
    import harness
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    def test_a():
        export(Double(), (torch.randn(2),))

    def test_dies_under_strict():
        if harness.active_wrapper() == "strict":
            os._exit(3)

    def test_b():
        pass

    def test_c():
        assert False, "the program is wrong\\nsecond line"
"""

TWO_TESTS = """
    def test_dynamic_one():
        pass

    def test_static_two():
        pass
"""


def _files(tester: pytest.Pytester) -> set[str]:
    return {str(p.relative_to(tester.path)) for p in tester.path.rglob("*") if p.is_file()}


def test_results_written_by_the_controller_even_when_a_worker_crashed(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_crashing=CRASHING_SUITE)
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", "strict,non_strict", "-n", "2", "--results", "out/run.json"
    )
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_dies_under_strict[[]strict[]]*"])
    run = results.load(tester.path / "out" / "run.json")
    assert run.exitstatus == 1
    assert run.torch.startswith("2.") and run.harness
    assert run.selection is not None and run.selection.selected == 8  # counted by the workers' collection
    records = {(r.test, r.wrapper): r for r in run.records}
    assert len(records) == 8, sorted(records)
    crashed = records[("test_crashing.py::test_dies_under_strict", "strict")]
    assert crashed.outcome == "crashed" and "crashed" in (crashed.cause or "")
    assert records[("test_crashing.py::test_dies_under_strict", "non_strict")].outcome == "passed"
    assert len(records[("test_crashing.py::test_a", "strict")].timings) == 1  # one program exported
    wrong = records[("test_crashing.py::test_c", "non_strict")]
    assert (wrong.outcome, wrong.stage) == ("failed", "test")
    assert (wrong.cause or "").startswith("AssertionError: the program is wrong")
    assert not (tester.path / "results").exists()


def test_without_an_option_nothing_is_written_into_the_project(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_two=TWO_TESTS)
    before = _files(tester)
    result = tester.runpytest_subprocess("--export-wrapper", "serdes_strict")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([OFF_LINE])
    # pytest's own caches (.pytest_cache, and __pycache__ where Python may write bytecode) are not ours
    new = {p for p in _files(tester) - before if not p.startswith(".pytest_cache/") and "__pycache__/" not in p}
    assert new <= {"stdout", "stderr"}  # pytester's own capture of the subprocess
    assert not (tester.path / "results").exists()


def test_help_says_the_default_is_no_file(tester: pytest.Pytester) -> None:
    result = tester.runpytest_subprocess("--help")
    text = " ".join(result.stdout.str().split())
    assert "--results=PATH" in text and "--results-dir=DIR" in text
    assert text.count("Default: no file") == 2


def test_results_dir_names_each_selection_apart(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_two=TWO_TESTS)
    args = ("-p", "no:cacheprovider", "--export-wrapper", "cpp_serdes", "--results-dir", "results")
    tester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    result = tester.runpytest_subprocess(*args, "-k", "dynamic")
    result.assert_outcomes(passed=1, deselected=1)
    files = sorted((tester.path / "results").iterdir())
    assert len(files) == 2
    runs = {path.name: results.load(path) for path in files}
    for name, run in runs.items():
        assert run.selection is not None
        assert name == f"cpp_serdes-{run.selection.key}.json"
    by_keyword = {run.selection.keyword: run for run in runs.values() if run.selection is not None}
    assert set(by_keyword) == {None, "dynamic"}
    assert [r.test for r in by_keyword["dynamic"].records] == ["test_two.py::test_dynamic_one"]
    assert by_keyword["dynamic"].selection is not None and by_keyword["dynamic"].selection.selected == 1
    assert len(by_keyword[None].records) == 2
    assert by_keyword[None].records[0] == Record(
        "test_two.py::test_dynamic_one", "cpp_serdes", "passed", duration=by_keyword[None].records[0].duration
    )
    key = by_keyword["dynamic"].selection.key
    result.stdout.fnmatch_lines([f"export results: 1 records written to *cpp_serdes-{key}.json (selection {key}: *"])


def test_collect_only_writes_nothing_and_leaves_an_earlier_shard_intact(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_two=TWO_TESTS)
    args = ("-p", "no:cacheprovider", "--export-wrapper", "strict", "--results-dir", "results", "--shard", "1/2")
    tester.runpytest_subprocess(*args).assert_outcomes(passed=1, deselected=1)
    [shard_file] = (tester.path / "results").iterdir()
    assert shard_file.name.endswith("-shard-1-of-2.json")
    written = shard_file.read_bytes()
    for extra in (("--co",), ("--co", "-k", "static"), ("--setup-plan",)):
        result = tester.runpytest_subprocess(*args, *extra)
        result.stdout.fnmatch_lines(["export results: not written (a run that runs no test)"])
    assert list((tester.path / "results").iterdir()) == [shard_file]
    assert shard_file.read_bytes() == written


def test_an_explicit_path_that_held_another_selection_is_replaced_and_said(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_two=TWO_TESTS)
    args = ("-p", "no:cacheprovider", "--export-wrapper", "strict", "--results", "run.json")
    tester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    result = tester.runpytest_subprocess(*args, "-k", "static")
    result.stdout.fnmatch_lines(["export results: replaced *run.json, which held another selection: *: ."])
    assert len(results.load(tester.path / "run.json").records) == 1


def test_results_wins_over_results_dir(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_two=TWO_TESTS)
    result = tester.runpytest_subprocess("--export-wrapper", "strict", "--results-dir", "r", "--results", "a.json")
    result.assert_outcomes(passed=2)
    assert len(results.load(tester.path / "a.json").records) == 2
    assert not (tester.path / "r").exists()
