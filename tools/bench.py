"""What the harness costs: overhead, per-wrapper cost, xdist scaling, start-up; a Markdown table and JSON.

    python tools/bench.py                                  # the defaults: -m quick over tests/export, 3 repeats
    python tools/bench.py --repeat 1 --select "-k test_add"  # a quick check of the tool

Four figures, all from the repository root with the shared environment already installed:

- **overhead**: the same selection with the plugin loaded but no wrapper selected (nothing is patched, torch's
  own export runs) against ``--export-wrapper non_strict`` (the pass-through wrapper: patch, rebinding, the
  program tally, the results file). tests/conftest.py refuses to run without the plugin, so "no wrapper" is
  the baseline; what differs is exactly what the harness does when it wraps. Ratio of median wall times.
- **xdist**: the same selection under ``non_strict`` with ``-n 0`` and ``-n 2``.
  These three configurations alternate within each repeat, so a slow spell of a busy machine hits all of them.
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

from tools import bench_probe  # noqa: E402  (needs ROOT on sys.path)

SUITE = "tests/export"
STARTUP_TEST = "test_unary_op_chain_keeps_its_ops"
OUT = ROOT / "reports" / "bench.json"
GOAL = 1.03
CONFIGS = {
    "no wrapper, -n 0": ([], None),
    "non_strict, -n 0": ([], "non_strict"),
    "non_strict, -n 2": (["-n", "2"], "non_strict"),
}


@dataclass(frozen=True)
class Run:
    config: str
    seconds: float
    exit_code: int


def _env(wrapper: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXPORT_WRAPPER", "EXPORT_SHARD")}
    if wrapper is not None:
        env["EXPORT_WRAPPER"] = wrapper
    return {**env, **extra}


def run_pytest(python: str, args: Sequence[str], wrapper: str | None) -> tuple[float, int]:
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=_env(wrapper), capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done.returncode


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation (statistics' 'inclusive' method)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def wrapper_costs(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per wrapper: programs timed, median and p90 of whole call / first export, from a results document."""
    ratios: dict[str, list[float]] = {w: [] for w in results["wrappers"]}
    for record in results["tests"]:
        for first, whole in record.get("timings", []):
            if first > 0:
                ratios.setdefault(record["wrapper"], []).append(whole / first)
    return {
        w: {"programs": len(r), "median": statistics.median(r), "p90": quantile(r, 0.9)}
        for w, r in ratios.items()
        if r
    }


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--select", default="-m quick", help="pytest selection over tests/export (default: -m quick)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (median reported; default 3)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON output (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--python", default=sys.executable, help="the shared environment's python")
    args = parser.parse_args(argv)
    selection = [SUITE, *shlex.split(args.select)]
    runs: list[Run] = []
    startups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        for repeat in range(args.repeat):
            for config, (extra, wrapper) in CONFIGS.items():
                results = ["--results", str(scratch / "run.json")] if wrapper else []
                seconds, code = run_pytest(args.python, [*selection, *extra, *results], wrapper)
                print(f"[{repeat + 1}/{args.repeat}] {config}: {seconds:.1f} s (exit {code})", flush=True)
                runs.append(Run(config, seconds, code))
            seconds, code = startup(args.python, scratch)
            print(f"[{repeat + 1}/{args.repeat}] start-up: {seconds:.1f} s (exit {code})", flush=True)
            startups.append(seconds)
        matrix_file = scratch / "matrix.json"
        seconds, code = run_pytest(
            args.python, [*selection, "--export-wrapper", "all", "-n", "2", "--results", str(matrix_file)], None
        )
        print(f"matrix: {seconds:.1f} s (exit {code})", flush=True)
        costs = wrapper_costs(json.loads(matrix_file.read_text())) if matrix_file.exists() else {}
    medians = {c: statistics.median(r.seconds for r in runs if r.config == c) for c in CONFIGS}
    overhead = medians["non_strict, -n 0"] / medians["no wrapper, -n 0"]
    speedup = medians["non_strict, -n 0"] / medians["non_strict, -n 2"]
    document = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "selection": selection,
        "repeat": args.repeat,
        "runs": [asdict(r) for r in runs],
        "medians": medians,
        "overhead": overhead,
        "overhead_goal": GOAL,
        "xdist_speedup": speedup,
        "startup": startups,
        "wrapper_costs": costs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print("\n".join(table(document)))
    return 0


def table(document: dict[str, Any]) -> list[str]:
    medians = document["medians"]
    ok = "within" if document["overhead"] <= document["overhead_goal"] else "over"
    rows = [
        "| figure | value |",
        "|---|---|",
        *(f"| median wall, {config} | {seconds:.1f} s |" for config, seconds in medians.items()),
        f"| harness overhead (non_strict / no wrapper) | {document['overhead']:.3f} ({ok} the goal "
        f"{document['overhead_goal']}) |",
        f"| xdist speed-up (-n 0 / -n 2) | {document['xdist_speedup']:.2f}x |",
        f"| start-up, `nox -s non_strict` to first test | median {statistics.median(document['startup']):.1f} s |",
        "",
        "| wrapper | programs | whole call / first export, median | p90 |",
        "|---|---|---|---|",
    ]
    for wrapper, cost in document["wrapper_costs"].items():
        rows.append(f"| `{wrapper}` | {cost['programs']} | {cost['median']:.2f} | {cost['p90']:.2f} |")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
