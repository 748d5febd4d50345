"""How even the CI shards are: longest shard / mean shard for N = 2, 4, 8, from the stored durations.

    python tools/shard_imbalance.py                       # every durations/<wrapper>.json
    python tools/shard_imbalance.py serdes_strict cpp_serdes --shards 2 4 8 16 --goal 1.10

Shards are computed by harness.sharding.split, i.e. pytest-split's least_duration algorithm exactly as
``--shard I/N`` runs it. Prints a Markdown table; each cell is "imbalance (longest shard in s)". The
estimate leaves out what every shard pays once (interpreter start, torch import, collection).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.sharding import DURATIONS_DIR, ShardError, imbalance, load_durations, shard_seconds

ROOT = Path(__file__).resolve().parent.parent


def table(durations_by_wrapper: dict[str, dict[str, float]], counts: Sequence[int]) -> list[str]:
    """The Markdown rows; one per wrapper."""
    header = ["wrapper", "tests", "total s", "longest test s", *(f"N={n}" for n in counts)]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for wrapper, durations in durations_by_wrapper.items():
        ids = sorted(durations)
        cells = [f"`{wrapper}`", str(len(ids)), f"{sum(durations.values()):.1f}", f"{max(durations.values()):.1f}"]
        for n in counts:
            seconds = shard_seconds(ids, durations, n)
            cells.append(f"{imbalance(seconds):.3f} ({max(seconds):.1f} s)")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("wrappers", nargs="*", help=f"wrapper names (default: every {DURATIONS_DIR}/*.json)")
    parser.add_argument("--shards", type=int, nargs="+", default=[2, 4, 8], metavar="N", help="default: 2 4 8")
    parser.add_argument("--durations-dir", type=Path, default=ROOT / DURATIONS_DIR)
    parser.add_argument("--goal", type=float, default=None, help="exit 1 if any imbalance is above this")
    args = parser.parse_args(argv)
    names = args.wrappers or sorted(p.stem for p in args.durations_dir.glob("*.json"))
    loaded: dict[str, dict[str, float]] = {}
    for name in names:
        path = args.durations_dir / f"{name}.json"
        try:
            durations = load_durations(path)
        except ShardError as exc:
            print(f"shard_imbalance: {exc}", file=sys.stderr)
            return 2
        if not durations:
            print(f"shard_imbalance: no durations in {path}; run `nox -s durations -- {name}`", file=sys.stderr)
            return 2
        loaded[name] = durations
    if not loaded:
        print(f"shard_imbalance: no durations files in {args.durations_dir}", file=sys.stderr)
        return 2
    print("\n".join(table(loaded, args.shards)))
    if args.goal is not None:
        worst = max(
            imbalance(shard_seconds(sorted(d), d, n)) for d in loaded.values() for n in args.shards
        )
        print(f"\nworst imbalance {worst:.3f}; goal <= {args.goal:.2f}: {'met' if worst <= args.goal else 'NOT met'}")
        return 0 if worst <= args.goal else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
