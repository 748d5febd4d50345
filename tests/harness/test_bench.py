"""The bench's arithmetic and table (tools/bench.py), from runs made up here: no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import golden, results
from tools import bench
from tools.bench import BASELINE, GOLDEN, PARALLEL, WRAPPED, Run


def runs(seconds: dict[str, list[float]], exit_code: int = 0) -> list[Run]:
    return [
        Run(config, repeat, wall, wall * 2, exit_code)
        for config, walls in seconds.items()
        for repeat, wall in enumerate(walls)
    ]


SECONDS = {
    BASELINE: [10.0, 12.0, 11.0],
    WRAPPED: [10.5, 12.0, 11.0],
    GOLDEN: [14.0, 15.0, 13.0],
    PARALLEL: [6.0, 5.0, 5.5],
}


def test_overhead_is_the_ratio_of_medians_with_the_paired_range() -> None:
    summary = bench.summarise(runs(SECONDS))
    assert summary["medians"] == {BASELINE: 11.0, WRAPPED: 11.0, GOLDEN: 14.0, PARALLEL: 5.5}
    assert summary["overhead"] == 1.0
    assert summary["overhead_range"] == [pytest.approx(1.0), pytest.approx(1.05)]
    assert summary["overhead_cpu"] == 1.0
    assert summary["golden_checks_seconds"] == 3.0
    assert summary["xdist_speedup"] == 2.0
    assert summary["failed_runs"] == []


def test_failed_runs_are_kept_for_the_exit_status() -> None:
    summary = bench.summarise(runs(SECONDS, exit_code=1))
    assert len(summary["failed_runs"]) == 12
    assert {r["exit_code"] for r in summary["failed_runs"]} == {1}


def test_the_overhead_configuration_leaves_out_only_the_golden_checks() -> None:
    extra, wrapper = bench.CONFIGS[WRAPPED]
    assert wrapper == "non_strict"
    assert extra == ("-p", f"no:{golden.PLUGIN_NAME}")
    assert bench.CONFIGS[GOLDEN] == ((), "non_strict")
    assert bench.CONFIGS[BASELINE] == ((), None)


def test_table_says_whether_the_goal_is_met() -> None:
    document = {
        **bench.summarise(runs(SECONDS)),
        "overhead_goal": bench.GOAL,
        "startup": [3.0, 4.0, 5.0],
        "wrapper_costs": {"serdes_strict": {"programs": 7, "median": 1.5, "p90": 2.25, "after_ms": 12.345}},
    }
    text = "\n".join(bench.table(document))
    assert "| harness overhead (non_strict / no wrapper), wall | **1.000** (within the goal 1.03); " in text
    assert "one repeat's pair: 1.000 to 1.050 |" in text
    assert f"| median wall (cpu), {GOLDEN} | 14.0 s (28.0 s) |" in text
    assert "| golden checks on top of non_strict | +3.0 s |" in text
    assert "| first result, `nox -s cpp_serdes -- -k dynamic` | median 4.0 s (goal 5 s) |" in text
    assert "| `serdes_strict` | 7 | 1.50 | 2.25 | 12.35 ms |" in text
    document["overhead"] = 1.031
    assert "**1.031** (over the goal 1.03)" in "\n".join(bench.table(document))


def test_wrapper_costs_from_a_results_document() -> None:
    run = results.RunFile(
        run="matrix",
        wrappers=["non_strict", "cpp_serdes"],
        records=[
            results.Record("t1", "cpp_serdes", timings=[[1.0, 2.0], [1.0, 3.0], [0.0, 1.0]]),
            results.Record("t2", "cpp_serdes", timings=[[2.0, 2.0]]),
            results.Record("t3", "non_strict"),
        ],
    )
    costs = bench.wrapper_costs(run)
    assert set(costs) == {"cpp_serdes"}  # no timed programs under non_strict: no row rather than a 0
    assert costs["cpp_serdes"]["programs"] == 3  # the zero-second first export is left out
    assert costs["cpp_serdes"]["median"] == 2.0
    assert costs["cpp_serdes"]["p90"] == pytest.approx(2.8)
    assert costs["cpp_serdes"]["after_ms"] == 1000.0  # of 1000, 2000 and 0 ms


def test_every_configuration_takes_every_place_in_the_run_order() -> None:
    orders = [bench.run_order(repeat) for repeat in range(len(bench.CONFIGS))]
    assert all(sorted(order) == sorted(bench.CONFIGS) for order in orders)
    for place in range(len(bench.CONFIGS)):
        assert {order[place] for order in orders} == set(bench.CONFIGS)


# --- the peer comparison (PyTorch's own variant files against the harness): its pure parts ---------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_a_serdes_nonstrict" time="1.5"/>
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_b_serdes_nonstrict" time="2.0">
 <failure message="AssertionError: no">trace</failure></testcase>
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_c_serdes_nonstrict" time="0.1">
 <skipped type="pytest.xfail" message="">expected</skipped></testcase>
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_d_serdes_nonstrict" time="0.1">
 <skipped type="pytest.skip" message="not on CPU">skip</skipped></testcase>
<testcase classname="test_serdes.SerDesExportNonStrictTestDynamismExpression" name="test_e_serdes_nonstrict"
 time="0.2"><failure message="Unexpected success">x</failure></testcase>
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_f_serdes_nonstrict" time="0.3">
 <error message="failed on setup">x</error></testcase>
<testcase classname="test_serdes.SerDesExportNonStrictTestExport" name="test_g_serdes_nonstrict" time="0.3">
 <failure message="[XPASS(strict)] reason">x</failure></testcase>
</testsuite></testsuites>"""


def test_junit_outcomes_tell_every_outcome_apart() -> None:
    outcomes = bench.junit_outcomes(JUNIT)
    cls = "SerDesExportNonStrictTestExport"
    assert outcomes[cls, "test_a_serdes_nonstrict"] == ("passed", 1.5)
    assert outcomes[cls, "test_b_serdes_nonstrict"] == ("failed", 2.0)
    assert outcomes[cls, "test_c_serdes_nonstrict"][0] == "xfailed"
    assert outcomes[cls, "test_d_serdes_nonstrict"][0] == "skipped"
    assert outcomes["SerDesExportNonStrictTestDynamismExpression", "test_e_serdes_nonstrict"][0] == "xpassed"
    assert outcomes[cls, "test_f_serdes_nonstrict"][0] == "error"
    assert outcomes[cls, "test_g_serdes_nonstrict"][0] == "xpassed"


def test_variant_ids_map_back_with_the_registrys_prefix_and_suffix() -> None:
    prefix, suffix = bench.peer_prefix("serdes_non_strict"), bench.peer_suffix("serdes_non_strict")
    classes = ("TestExport", "TestDynamismExpression")
    assert bench.map_peer_id(f"{prefix}TestExport", f"test_a{suffix}", prefix, suffix, classes) == "TestExport::test_a"
    # a class outside the comparison is left out, even one whose name ends like a compared one's
    assert bench.map_peer_id(f"{prefix}TestExportCustomClass", "test_x", prefix, suffix, classes) is None
    # a prefix the registry does not know still maps (the comparison reports the prefix it saw)
    assert bench.map_peer_id("CppSerdesTestExport", "test_a_cpp_serdes", "CppSerdesExport", "_cpp_serdes",
                             classes) == "TestExport::test_a"
    assert bench.peer_prefixes_seen({("CppSerdesTestExport", "t"): 0}, classes) == ["CppSerdes"]


def test_every_peer_variant_selects_its_own_files_classes() -> None:
    for wrapper, (variant_file, prefix, classes) in bench.PEER_VARIANTS.items():
        commands = bench.peer_commands(wrapper, Path("/tmp/x.xml"), Path("/tmp/x.json"), "-k test_a")
        assert commands["pytorch"][: len(classes)] == [f"{variant_file}::{prefix}{c}" for c in classes]
        assert commands["harness"][: len(classes)] == [f"{bench.PEER_SUITE}::{c}" for c in classes]
        assert ["--export-wrapper", wrapper, "--pytorch-compat"] == commands["harness"][
            commands["harness"].index("--export-wrapper"):][:3]
        assert "no:export_harness" in commands["pytorch"] and "--pytorch-compat" not in commands["pytorch"]
        for side in bench.PEER_SIDES:  # log capture off on both sides alike
            assert "no:logging" in commands[side]
        for side in bench.PEER_SIDES:  # the same workers and selection on both sides
            assert commands[side][commands[side].index("-n"):][:4] == ["-n", "2", "-k", "test_a"]


def test_agreement_lists_every_difference() -> None:
    pytorch = {"T::a": ("passed", 1.0), "T::b": ("failed", 1.0), "T::c": ("xfailed", 1.0), "T::p": ("passed", 1.0)}
    harness = {"T::a": ("passed", 3.0), "T::b": ("passed", 1.5), "T::c": ("xfailed", 0.5), "T::h": ("passed", 1.0)}
    summary = bench.agreement(pytorch, harness)
    assert (summary["tests"], summary["matches"]) == (3, 2)
    assert summary["agreement"] == pytest.approx(2 / 3)
    assert summary["differences"] == [{"test": "T::b", "pytorch": "failed", "harness": "passed"}]
    assert (summary["only_pytorch"], summary["only_harness"]) == (["T::p"], ["T::h"])
    assert summary["outcomes"]["pytorch"] == {"passed": 1, "failed": 1, "xfailed": 1}
    slowest = bench.slowest_differences(pytorch, harness, top=2)
    assert [(s["test"], s["extra"]) for s in slowest] == [("T::a", 2.0), ("T::b", 0.5)]


def test_peer_order_alternates_and_the_ratio_is_paired() -> None:
    assert [bench.peer_order(i) for i in range(3)] == [
        ("pytorch", "harness"), ("harness", "pytorch"), ("pytorch", "harness")
    ]
    ratio = bench.peer_ratio({"pytorch": [10.0, 20.0, 12.0], "harness": [11.0, 18.0, 12.0]})
    assert ratio["median_seconds"] == {"pytorch": 12.0, "harness": 12.0}
    assert ratio["ratio"] == 1.0
    assert ratio["ratio_range"] == [pytest.approx(0.9), pytest.approx(1.1)]


def test_unstable_tests_are_the_ones_whose_outcome_changed_between_repeats() -> None:
    first = {("T", "a"): ("passed", 1.0), ("T", "b"): ("failed", 1.0)}
    second = {("T", "a"): ("passed", 1.0), ("T", "b"): ("passed", 1.0)}
    assert bench.unstable([first, second]) == ["T::b"]
    assert bench.unstable([]) == []


def test_peer_comparison_is_skipped_with_one_line(tmp_path: Path) -> None:
    assert "no --pytorch-dir" in (bench.peer_skip_reason(None) or "")
    assert "does not exist" in (bench.peer_skip_reason(tmp_path / "nowhere") or "")
    (tmp_path / bench.PEER_SUITE).write_text("")
    assert bench.peer_skip_reason(tmp_path) is None


def test_peer_table_gives_the_ratio_against_the_goal_and_every_difference() -> None:
    peer = {
        "wrapper": "cpp_serdes", "variant_file": "test_cpp_serdes.py", "tests": 465, "matches": 462,
        "agreement": 462 / 465, "median_seconds": {"pytorch": 100.0, "harness": 98.0}, "ratio": 0.98,
        "ratio_range": [0.95, 1.01], "cpu_ratio": 0.97, "test_seconds": {"pytorch": 80.0, "harness": 84.0},
        "registry_prefix": "CppSerdesExport", "prefixes_seen": ["CppSerdes"],
        "only_pytorch": [], "only_harness": ["TestExport::x"],
        "differences": [{"test": "TestExport::test_a", "pytorch": "passed", "harness": "failed"}],
    }
    text = "\n".join(bench.peer_table([peer]))
    assert "| `cpp_serdes` (test_cpp_serdes.py) | 465 | 462 (99.4 %) | 100.0 s / 98.0 s " in text
    assert "| **0.980** (within the goal 1.00) | 0.950 to 1.010 | 0.970 |" in text
    assert "the registry's pytorch_class_prefix is 'CppSerdesExport'" in text
    assert "1 test(s) only harness" in text
    assert "summed over the 465 tests: PyTorch 80.0 s, harness 84.0 s (1.05)" in text
    assert "- `TestExport::test_a`: passed / failed" in text
    peer["ratio"] = 1.001
    assert "**1.001** (over the goal 1.00)" in "\n".join(bench.peer_table([peer]))


def test_peer_summary_maps_the_variant_files_ids_and_times_every_repeat() -> None:
    harness_xml = JUNIT.replace("test_serdes.SerDesExportNonStrict", "test_export.").replace("_serdes_nonstrict", "")
    harness_xml = harness_xml.replace('message="AssertionError: no"', 'message="x"').replace(
        '<failure message="x">trace</failure>', "")  # test_b passes under the harness
    repeats = [
        {"pytorch": {"wall": wall, "cpu": 1.0, "exit_code": 1, "report": JUNIT},
         "harness": {"wall": wall * 0.9, "cpu": 1.0, "exit_code": 1, "report": harness_xml}}
        for wall in (10.0, 20.0)
    ]
    summary = bench.peer_summary("serdes_non_strict", repeats)
    assert summary["tests"] == 7
    assert summary["differences"] == [{"test": "TestExport::test_b", "pytorch": "failed", "harness": "passed"}]
    assert summary["ratio"] == pytest.approx(0.9)
    assert summary["cpu_ratio"] == 1.0
    assert summary["test_seconds"]["pytorch"] == pytest.approx(4.5)  # summed over the tests both sides ran
    assert summary["prefixes_seen"] == ["SerDesExportNonStrict"]
    assert summary["unstable"] == {"pytorch": [], "harness": []}
    assert summary["unexplained"] == ["TestExport::test_b"]  # an AssertionError is no documented difference
    assert summary["deliberate"] == {}


def test_deliberate_differences_are_recognised_by_outcome_and_message() -> None:
    differences = [
        {"test": "T::log", "pytorch": "failed", "harness": "passed"},
        {"test": "T::mock", "pytorch": "passed", "harness": "failed"},
        {"test": "T::other", "pytorch": "passed", "harness": "failed"},
    ]
    messages = {
        "pytorch": {"T::log": "TypeError: not enough arguments for format string"},
        "harness": {"T::mock": "[cpp_serdes: serialize] SerializeError: Failed serializing node round",
                    "T::other": "AssertionError: Tensor-likes are not close!"},
    }
    found = bench.explain_differences("cpp_serdes", differences, messages)
    assert found["unexplained"] == ["T::other"]
    assert [tests for tests in found["deliberate"].values()] == [["T::log"], ["T::mock"]]
    # the C++ mock's difference belongs to cpp_serdes only
    assert bench.explain_differences("serdes_non_strict", differences, messages)["unexplained"] == [
        "T::mock", "T::other"
    ]
    peer = {
        "wrapper": "cpp_serdes", "variant_file": "test_cpp_serdes.py", "tests": 10, "matches": 7,
        "agreement": 0.7, "median_seconds": {"pytorch": 1.0, "harness": 1.0}, "ratio": 1.0,
        "ratio_range": [1.0, 1.0], "registry_prefix": "CppSerdes", "prefixes_seen": ["CppSerdes"],
        "only_pytorch": [], "only_harness": [], "differences": differences, **found,
        "agreement_outside_deliberate": 7 / 8,
    }
    text = "\n".join(bench.peer_table([peer]))
    assert "- `T::other`: passed / failed (NOT a documented difference)" in text
    assert "- `T::mock`: passed / failed (deliberate: no silent fallback" in text
    assert "cpp_serdes: 2 difference(s) documented as deliberate, 1 not; the other 8 tests agree 87.5 %" in text
