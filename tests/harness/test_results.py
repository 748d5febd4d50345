"""Results files: folding reports into records (directly) and writing them from real runs (pytester)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.errors import ExportWrapperError
from harness.results import Collector, default_path, describe

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper selected by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    return pytester


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


def test_default_path_names_the_run_and_shard(tmp_path: Any) -> None:
    assert default_path(tmp_path, "matrix", None) == tmp_path / "results" / "matrix.json"
    assert default_path(tmp_path, "cpp_serdes", (2, 4)) == tmp_path / "results" / "cpp_serdes-shard-2-of-4.json"


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


def test_results_written_by_the_controller_even_when_a_worker_crashed(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_crashing=CRASHING_SUITE)
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", "strict,non_strict", "-n", "2", "--results", "out/run.json"
    )
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_dies_under_strict[[]strict[]]*"])
    document = json.loads((tester.path / "out" / "run.json").read_text())
    assert document["exitstatus"] == 1
    assert document["torch"].startswith("2.") and document["harness"]
    records = {(r["test"], r["wrapper"]): r for r in document["tests"]}
    assert len(records) == 8, sorted(records)
    crashed = records[("test_crashing.py::test_dies_under_strict", "strict")]
    assert crashed["outcome"] == "crashed" and "crashed" in crashed["cause"]
    assert records[("test_crashing.py::test_dies_under_strict", "non_strict")]["outcome"] == "passed"
    wrong = records[("test_crashing.py::test_c", "non_strict")]
    assert (wrong["outcome"], wrong["stage"]) == ("failed", "test")
    assert wrong["cause"].startswith("AssertionError: the program is wrong")
    assert not (tester.path / "results").exists()


def test_single_wrapper_run_writes_results_under_its_name(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_one="def test_one():\n    pass\n")
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "cpp_serdes")
    result.assert_outcomes(passed=1)
    document = json.loads((tester.path / "results" / "cpp_serdes.json").read_text())
    assert document["run"] == "cpp_serdes" and document["shard"] is None
    assert document["tests"] == [
        {
            "test": "test_one.py::test_one",
            "wrapper": "cpp_serdes",
            "outcome": "passed",
            "stage": None,
            "cause": None,
            "duration": pytest.approx(document["tests"][0]["duration"]),
            "timings": [],
        }
    ]


def test_collector_keeps_the_timings_of_every_phase() -> None:
    collector = Collector(["cpp_serdes"], matrix=False)
    for when, timings in (("setup", [(0.5, 0.75)]), ("call", [(1.0, 2.0), (2.0, 3.0)]), ("teardown", [])):
        report = pytest.TestReport("a.py::t", ("a.py", 0, "t"), {}, "passed", None, when, [])
        report.export_wrapper_timings = timings  # type: ignore[attr-defined]
        collector.add(report)
    [record] = collector.records.values()
    assert record.timings == [[0.5, 0.75], [1.0, 2.0], [2.0, 3.0]]
