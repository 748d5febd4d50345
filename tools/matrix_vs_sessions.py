"""Time one matrix run against the per-wrapper runs one after another: same tests, same machine.

    .nox/shared/bin/python tools/matrix_vs_sessions.py                 # the whole suite (tests/export tests/ops)
    .nox/shared/bin/python tools/matrix_vs_sessions.py -- -m quick     # a selection: everything after -- goes to pytest

Runs ``pytest <selection> --export-wrapper <every built-in> -n auto`` once, then ``pytest <selection> --export-wrapper W
-n auto`` for every wrapper W in registry order (what ``nox -t wrappers`` does, without nox's overhead),
and prints both wall-clock times and their ratio. Each run writes its results file to a temporary
directory, and the script checks that both sides ran the same (test, wrapper) pairs with the same outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.wrappers import BUILTIN_WRAPPERS  # noqa: E402  (needs ROOT on sys.path)

SUITE = ("tests/export", "tests/ops")


def run(args: list[str], results: Path) -> float:
    """Run pytest with ``args``, writing ``results``; return the wall-clock seconds."""
    env = {k: v for k, v in os.environ.items() if k != "EXPORT_WRAPPER"}
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "--results", str(results)]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - start
    print(f"  exit {completed.returncode}, {seconds:.1f} s", flush=True)
    return seconds


def outcomes(paths: list[Path]) -> dict[tuple[str, str], str]:
    pairs = {}
    for path in paths:
        for record in json.loads(path.read_text())["tests"]:
            pairs[(record["test"], record["wrapper"])] = record["outcome"]
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="auto", help="pytest-xdist -n value for every run (default: auto)")
    parser.add_argument("pytest_args", nargs="*", help="tests and options after --; default: the whole suite")
    options = parser.parse_args()
    selection = options.pytest_args
    if not any(not arg.startswith("-") for arg in selection):
        selection = [*SUITE, *selection]
    xdist = ["-n", options.workers]
    with tempfile.TemporaryDirectory(prefix="matrix-vs-sessions-") as tmp:
        directory = Path(tmp)
        matrix_file = directory / "matrix.json"
        every = ",".join(w.name for w in BUILTIN_WRAPPERS)  # "all" would add entry-point wrappers too
        matrix_seconds = run([*selection, *xdist, "--export-wrapper", every], matrix_file)
        session_files = []
        session_seconds = 0.0
        for wrapper in BUILTIN_WRAPPERS:
            path = directory / f"{wrapper.name}.json"
            session_seconds += run([*selection, *xdist, "--export-wrapper", wrapper.name], path)
            session_files.append(path)
        matrix_outcomes, session_outcomes = outcomes([matrix_file]), outcomes(session_files)
    same = matrix_outcomes == session_outcomes
    print()
    print(f"selection:           {' '.join(selection)}  (-n {options.workers})")
    print(f"results:             {len(matrix_outcomes)} pairs (matrix), {len(session_outcomes)} (sessions)")
    print(f"matrix (one run):    {matrix_seconds:8.1f} s")
    print(f"sessions ({len(BUILTIN_WRAPPERS)} runs):  {session_seconds:8.1f} s")
    print(f"speed-up:            {session_seconds / matrix_seconds:8.2f}x")
    if not same:
        keys = matrix_outcomes.keys() | session_outcomes.keys()
        differing = sorted(k for k in keys if matrix_outcomes.get(k) != session_outcomes.get(k))
        print(f"WARNING: {len(differing)} pairs differ between the two, e.g. {differing[:5]}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
