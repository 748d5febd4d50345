"""What the harness costs: overhead, per-wrapper cost, xdist scaling, start-up; a Markdown table and JSON.

    python tools/bench.py                                  # the defaults: -m quick over tests/export, 3 repeats
    python tools/bench.py --repeat 1 --select "-k test_add"  # a quick check of the tool

Four figures, all from the repository root with the shared environment already installed:

- **overhead**: the same selection with the plugin loaded but no wrapper selected (nothing is patched, torch's
  own export runs) against ``--export-wrapper non_strict`` (the pass-through wrapper: patch, rebinding, the
  program tally, the results file) with the golden-artifact checks switched off
  (``-p no:export-harness-golden``). tests/conftest.py refuses to run without the plugin, so "no wrapper" is
  the baseline; what differs is exactly what the harness does when it wraps. Ratio of median wall times, and
  the lowest and highest ratio of one repeat's pair, so the machine's noise is in the table too. The golden
  checks, which a ``non_strict`` run does on top, are timed as a figure of their own.
- **xdist**: the same selection under ``non_strict`` (golden checks off) with ``-n 0`` and ``-n 2``.
  These configurations alternate within each repeat, so a slow spell of a busy machine hits all of them, in an
  order rotated each repeat, after one warm-up run that is not counted.
- **per-wrapper cost**: one matrix run (``--export-wrapper all``, ``-n 2``) of the selection; each program's
  whole wrapper call over its first export, timed inside the process (the results file's ``timings``),
  median and p90 per wrapper.
- **start-up**: from launching ``nox -s non_strict -- -k TEST`` to the first test starting (a probe plugin,
  ``tools/bench_probe.py``, writes the time), with the shared environment already installed.

Results files go to a temporary directory: a benchmark never overwrites results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import golden, results  # noqa: E402  (needs ROOT on sys.path)
from tools import bench_probe  # noqa: E402

SUITE = "tests/export"
STARTUP_TEST = "test_unary_op_chain_keeps_its_ops"
OUT = ROOT / "reports" / "bench.json"
GOAL = 1.03
NO_GOLDEN = ("-p", f"no:{golden.PLUGIN_NAME}")
BASELINE = "no wrapper, -n 0"
WRAPPED = "non_strict, -n 0"
GOLDEN = "non_strict + golden checks, -n 0"
PARALLEL = "non_strict, -n 2"
CONFIGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    BASELINE: ((), None),
    WRAPPED: (NO_GOLDEN, "non_strict"),
    GOLDEN: ((), "non_strict"),
    PARALLEL: (("-n", "2", *NO_GOLDEN), "non_strict"),
}
"""Each configuration's extra pytest arguments and wrapper (``None``: plugin loaded, nothing selected)."""


@dataclass(frozen=True)
class Run:
    config: str
    repeat: int
    seconds: float
    cpu_seconds: float
    """User + system time of the pytest process and its children (xdist workers)."""
    exit_code: int


def _env(wrapper: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXPORT_WRAPPER", "EXPORT_SHARD")}
    if wrapper is not None:
        env["EXPORT_WRAPPER"] = wrapper
    return {**env, **extra}


def run_pytest(python: str, args: Sequence[str], wrapper: str | None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the process and its children) and exit code of one pytest run."""
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=_env(wrapper), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def run_config(python: str, selection: Sequence[str], config: str, scratch: Path) -> tuple[float, float, int]:
    """One run of ``selection`` in the configuration ``config`` (see :data:`CONFIGS`); results go to ``scratch``."""
    extra, wrapper = CONFIGS[config]
    results = ["--results", str(scratch / "run.json")] if wrapper else []
    return run_pytest(python, [*selection, *extra, *results], wrapper)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation (statistics' 'inclusive' method)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def wrapper_costs(run: results.RunFile) -> dict[str, dict[str, float]]:
    """Per wrapper, from a results file (read by ``harness.results.load``): programs timed; whole call / first
    export, median and p90; and the median milliseconds the wrapper spends after its first export (its own
    stages, and under a plain wrapper only the harness's bookkeeping around the call)."""
    timings: dict[str, list[tuple[float, float]]] = {w: [] for w in run.wrappers}
    for record in run.records:
        timings.setdefault(record.wrapper, []).extend((first, whole) for first, whole in record.timings if first > 0)
    costs = {}
    for w, pairs in timings.items():
        if not pairs:
            continue
        ratios = [whole / first for first, whole in pairs]
        costs[w] = {
            "programs": len(pairs), "median": statistics.median(ratios), "p90": quantile(ratios, 0.9),
            "after_ms": statistics.median((whole - first) * 1000 for first, whole in pairs),
        }
    return costs


def startup(python: str, selection_dir: Path) -> tuple[float, int]:
    """Seconds from launching ``nox -s non_strict`` to its first test starting."""
    probe = selection_dir / f"first-test-{time.monotonic_ns()}"
    results = selection_dir / "startup-results.json"
    command = [
        python, "-m", "nox", "-s", "non_strict", "--",
        "-k", STARTUP_TEST, "-p", "tools.bench_probe", "-p", "no:cacheprovider", "--results", str(results),
    ]
    start = time.time()
    done = subprocess.run(
        command, cwd=ROOT, env=_env(None, **{bench_probe.ENV_VAR: str(probe)}), capture_output=True, check=False
    )
    if not probe.exists():
        return float("nan"), done.returncode
    return float(probe.read_text()) - start, done.returncode


def run_order(repeat: int) -> list[str]:
    """The configurations of one repeat, rotated by one each repeat so that none always runs first.

    On this machine a run's place in the sequence moved its time by more than the harness does (the first
    run after a pause was up to 30 % slower), so each configuration takes every place equally often over
    ``len(CONFIGS)`` repeats.
    """
    configs = list(CONFIGS)
    shift = repeat % len(configs)
    return configs[shift:] + configs[:shift]


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians per configuration and the ratios the table quotes, from the runs of every repeat.

    A ratio of medians is the headline; the lowest and highest ratio of the pairs run in the same repeat
    show how much of it the machine's noise could move.
    """

    def median(config: str, attr: str = "seconds") -> float:
        return statistics.median(float(getattr(r, attr)) for r in runs if r.config == config)

    def paired(numerator: str, denominator: str) -> list[float]:
        by_repeat = {(r.config, r.repeat): r.seconds for r in runs}
        repeats = sorted({r.repeat for r in runs})
        return [by_repeat[numerator, i] / by_repeat[denominator, i] for i in repeats]

    configs = list(dict.fromkeys(r.config for r in runs))
    pairs = paired(WRAPPED, BASELINE)
    return {
        "medians": {c: median(c) for c in configs},
        "cpu_medians": {c: median(c, "cpu_seconds") for c in configs},
        "overhead": median(WRAPPED) / median(BASELINE),
        "overhead_range": [min(pairs), max(pairs)],
        "overhead_cpu": median(WRAPPED, "cpu_seconds") / median(BASELINE, "cpu_seconds"),
        "golden_checks_seconds": median(GOLDEN) - median(WRAPPED),
        "xdist_speedup": median(WRAPPED) / median(PARALLEL),
        "failed_runs": [asdict(r) for r in runs if r.exit_code != 0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--select", default="-m quick", help="pytest selection over tests/export (default: -m quick)")
    parser.add_argument(
        "--repeat", type=int, default=len(CONFIGS),
        help=f"runs per configuration (median reported; default {len(CONFIGS)}, one full rotation of the order)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON output (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--python", default=sys.executable, help="the shared environment's python")
    args = parser.parse_args(argv)
    selection = [SUITE, *shlex.split(args.select)]
    runs: list[Run] = []
    startups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        seconds, _, code = run_config(args.python, selection, WRAPPED, scratch)
        print(f"warm-up ({WRAPPED}), not counted: {seconds:.1f} s (exit {code})", flush=True)
        for repeat in range(args.repeat):
            for config in run_order(repeat):
                seconds, cpu, code = run_config(args.python, selection, config, scratch)
                print(f"[{repeat + 1}/{args.repeat}] {config}: {seconds:.1f} s, cpu {cpu:.1f} s (exit {code})",
                      flush=True)
                runs.append(Run(config, repeat, seconds, cpu, code))
            seconds, code = startup(args.python, scratch)
            print(f"[{repeat + 1}/{args.repeat}] start-up: {seconds:.1f} s (exit {code})", flush=True)
            startups.append(seconds)
        matrix_file = scratch / "matrix.json"
        seconds, _, code = run_pytest(
            args.python, [*selection, "--export-wrapper", "all", "-n", "2", "--results", str(matrix_file)], None
        )
        print(f"matrix: {seconds:.1f} s (exit {code})", flush=True)
        costs = wrapper_costs(results.load(matrix_file)) if matrix_file.exists() else {}
    document = {
        "machine": {
            "cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        },
        "selection": selection,
        "repeat": args.repeat,
        "runs": [asdict(r) for r in runs],
        **summarise(runs),
        "overhead_goal": GOAL,
        "startup": startups,
        "matrix_exit_code": code,
        "wrapper_costs": costs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print("\n".join(table(document)))
    if document["failed_runs"] or code != 0:
        print(f"bench: {len(document['failed_runs'])} timed run(s) and the matrix run (exit {code}) must all pass; "
              "their figures time failing tests", file=sys.stderr)
        return 1
    return 0


def table(document: dict[str, Any]) -> list[str]:
    """The Markdown tables ``nox -s bench`` prints and the README quotes."""
    medians, cpu = document["medians"], document["cpu_medians"]
    ok = "within" if document["overhead"] <= document["overhead_goal"] else "over"
    low, high = document["overhead_range"]
    rows = [
        "| figure | value |",
        "|---|---|",
        *(f"| median wall (cpu), {c} | {medians[c]:.1f} s ({cpu[c]:.1f} s) |" for c in medians),
        f"| harness overhead (non_strict / no wrapper), wall | **{document['overhead']:.3f}** ({ok} the goal "
        f"{document['overhead_goal']}); one repeat's pair: {low:.3f} to {high:.3f} |",
        f"| harness overhead, cpu | {document['overhead_cpu']:.3f} |",
        f"| golden checks on top of non_strict | {document['golden_checks_seconds']:+.1f} s |",
        f"| xdist speed-up (-n 0 / -n 2) | {document['xdist_speedup']:.2f}x |",
        f"| start-up, `nox -s non_strict` to first test | median {statistics.median(document['startup']):.1f} s |",
        "",
        "| wrapper | programs | whole call / first export, median | p90 | after the first export, median |",
        "|---|---|---|---|---|",
    ]
    for wrapper, cost in document["wrapper_costs"].items():
        rows.append(
            f"| `{wrapper}` | {cost['programs']} | {cost['median']:.2f} | {cost['p90']:.2f} "
            f"| {cost['after_ms']:.2f} ms |"
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
