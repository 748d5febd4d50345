"""Wall time of the export suite under each pytest-xdist distribution mode, per wrapper, as a Markdown table.

    python tools/xdist_modes.py serdes_strict cpp_serdes                   # the measurement (long)
    python tools/xdist_modes.py strict --repeat 1 -- -k "test_add"         # a quick check of the tool

Each run is ``python -m pytest tests/export tests/ops -n WORKERS --dist MODE -p no:cacheprovider -q``
with EXPORT_WRAPPER set, from the repository root. Runs are interleaved (repeat, wrapper, mode) so a slow
spell of a busy machine does not land on one mode; the table gives the median wall time and, to show
the modes agree on what happened, each mode's pytest outcome line. Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ("tests/export", "tests/ops")
MODES = ("load", "worksteal", "loadscope", "loadfile")
_OUTCOME = re.compile(r"^=*\s*(\d+ [a-z]+(?:, \d+ [a-z]+)*|no tests ran(?:, \d+ [a-z]+)*) in [\d.]+s\b")
_WARNINGS = re.compile(r",? ?\d+ warnings?")


@dataclass(frozen=True)
class Run:
    wrapper: str
    mode: str
    seconds: float
    exit_code: int
    outcome: str


def outcome_line(output: str) -> str:
    """pytest's closing counts ("1790 passed, 12 xfailed"), without the time and the warnings."""
    for line in reversed(output.splitlines()):
        match = _OUTCOME.match(line.strip())
        if match:
            return _WARNINGS.sub("", match[1]).strip(", ")  # warning counts may differ by mode
    return "(no pytest summary line)"


def run_once(python: str, wrapper: str, mode: str, workers: str, extra: Sequence[str]) -> Run:
    command = [python, "-m", "pytest", *SUITE, "-n", workers, "--dist", mode, "-p", "no:cacheprovider", "-q", *extra]
    env = {**os.environ, "EXPORT_WRAPPER": wrapper}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    return Run(wrapper, mode, seconds, done.returncode, outcome_line(done.stdout))


def table(runs: Sequence[Run], wrappers: Sequence[str], modes: Sequence[str]) -> list[str]:
    rows = ["| wrapper | mode | median wall s | runs s | exit | outcome |", "|---|---|---|---|---|---|"]
    for wrapper in wrappers:
        for mode in modes:
            mine = [r for r in runs if r.wrapper == wrapper and r.mode == mode]
            times = ", ".join(f"{r.seconds:.1f}" for r in mine)
            exits = ",".join(sorted({str(r.exit_code) for r in mine}))
            outcomes = "; ".join(sorted({r.outcome for r in mine}))
            median = statistics.median(r.seconds for r in mine)
            rows.append(f"| `{wrapper}` | {mode} | {median:.1f} | {times} | {exits} | {outcomes} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("wrappers", nargs="+", help="wrapper names, e.g. serdes_strict cpp_serdes")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, metavar="MODE")
    parser.add_argument("--workers", default="2", help="-n value (default 2: the machine's cores)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per wrapper and mode (median reported)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter with torch and the harness")
    args = parser.parse_args(argv)
    runs: list[Run] = []
    for repeat in range(args.repeat):
        for wrapper in args.wrappers:
            # Rotate the mode order each repeat so no mode always runs first (cold file cache).
            shift = repeat % len(args.modes)
            for mode in args.modes[shift:] + args.modes[:shift]:
                run = run_once(args.python, wrapper, mode, args.workers, extra)
                print(f"{wrapper} --dist {mode}: {run.seconds:.1f} s, exit {run.exit_code}, {run.outcome}",
                      file=sys.stderr, flush=True)
                runs.append(run)
    print("\n".join(table(runs, args.wrappers, args.modes)))
    # The modes must agree on what happened; a difference is a harness bug, so say so loudly.
    for wrapper in args.wrappers:
        outcomes = {r.outcome for r in runs if r.wrapper == wrapper}
        if len(outcomes) > 1:
            print(f"\nWARNING: {wrapper}: the modes disagree on the outcome: {sorted(outcomes)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
