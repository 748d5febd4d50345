"""``python -m harness.mutants report RESULTS --events DIR``: kill rates of a mutants run (``nox -s mutants``).

Prints the Markdown report and writes the JSON one (``--out``, default ``reports/mutants.json``). Exit
status 0; 1 when ``--min-kill-rate PCT`` is given and a mutant kills fewer of the tests it reaches; 2 on
unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import results
from harness.mutants import BASE, read_events
from harness.mutants.analysis import analyse, dumps, markdown, percent

DEFAULT_OUT = Path("reports") / "mutants.json"


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m harness.mutants", description=__doc__.splitlines()[0])
    commands = main.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="kill rates of a mutants run, from its results file and events")
    report.add_argument("results", type=Path, help="the results file of the run (--results PATH of pytest)")
    report.add_argument("--events", type=Path, required=True,
                        help="the directory $EXPORT_MUTANTS_LOG named during the run (events-<pid>.jsonl files)")
    report.add_argument("--base", default=BASE, help=f"the wrapper the mutants are measured against (default {BASE})")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON report (default {DEFAULT_OUT})")
    report.add_argument("--markdown", type=Path, default=None, help="also write the Markdown report here")
    report.add_argument("--min-kill-rate", type=float, default=None, metavar="PCT",
                        help="exit 1 when a mutant kills less than PCT %% of the tests it reaches")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run = results.load(args.results)
        events = read_events(args.events)
        analysis = analyse(run, events, base=args.base)
    except (results.ResultsError, ValueError, OSError) as exc:
        print(f"python -m harness.mutants: {exc}", file=sys.stderr)
        return 2
    text = markdown(analysis)
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(analysis), encoding="utf-8")
    print(f"mutants report written to {args.out}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    if args.min_kill_rate is not None:
        weak = analysis.below(args.min_kill_rate / 100)
        if weak:
            shown = ", ".join(f"{m.name} {percent(m.kill_rate)}" for m in weak)
            print(f"kill rate under {args.min_kill_rate:g} %: {shown}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
