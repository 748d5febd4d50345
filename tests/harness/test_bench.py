"""The bench's arithmetic and table (tools/bench.py), from runs made up here: no timing is asserted."""

from __future__ import annotations

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
    assert "| start-up, `nox -s non_strict` to first test | median 4.0 s |" in text
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
