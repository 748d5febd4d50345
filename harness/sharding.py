"""Duration-balanced shards: the shard spec, the durations files, and the split itself (pure code).

pytest-split does the splitting (its ``least_duration`` algorithm: longest test first, onto the
shard with the least time so far) and owns the durations file format. This module parses and
validates ``--shard I/N`` (or ``$EXPORT_SHARD``), reads a wrapper's durations file
(``durations/<wrapper>.json`` under the rootdir: wrappers change test times, so each has its own),
and computes the shards a run would get, which ``python -m harness.sharding`` (``nox -s shards``)
prints as a balance table. ``harness/sharding_plugin.py`` is the pytest side.

Tests missing from the durations file get pytest-split's estimate: the mean duration of the
selected tests that are in the file (1 s each when none are).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTION = "--shard"
ENV_VAR = "EXPORT_SHARD"
DURATIONS_DIR = "durations"
"""Under the rootdir; ``noxfile.py`` imports it (this module imports neither pytest nor torch)."""
ALGORITHM = "least_duration"
HELP = (
    f"run only shard I of N (e.g. 2/4), balanced by the wrapper's stored test durations in "
    f"{DURATIONS_DIR}/<wrapper>.json (also ${ENV_VAR}; the option wins)"
)

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``, and where the spec came from (quoted in errors)."""

    index: int
    count: int
    source: str

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class ShardError(ValueError):
    """A shard spec or durations file that cannot be used; the text names the value and its source."""


def parse_shard(value: str, source: str) -> Shard:
    """Parse ``I/N`` with ``1 <= I <= N``."""
    match = _SPEC.fullmatch(value)
    if match is None:
        raise ShardError(f"{source} is {value!r}, not a shard spec I/N (e.g. 2/4: the second of four shards)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ShardError(f"{source} is {value!r}: the number of shards N must be at least 1")
    if not 1 <= index <= count:
        raise ShardError(f"{source} is {value!r}: the shard I must be between 1 and N={count}")
    return Shard(index, count, source)


def resolve_shard(cli_value: str | None, environ: Mapping[str, str]) -> Shard | None:
    """The command-line option, else the environment variable, else no sharding.

    An explicitly empty value is an error, not "no sharding": a CI job that sets
    ``EXPORT_SHARD=$UNSET_VAR`` must not silently run every test in every shard.
    """
    candidates = (
        (cli_value, f"command-line option {OPTION}"),
        (environ.get(ENV_VAR), f"environment variable {ENV_VAR}"),
    )
    for value, source in candidates:
        if value is not None:
            return parse_shard(value, source)
    return None


def durations_file(root: Path, wrapper: str) -> Path:
    """Where the stored durations of ``wrapper``'s run live."""
    return root / DURATIONS_DIR / f"{wrapper}.json"


def load_durations(path: Path) -> dict[str, float]:
    """Read a pytest-split durations file; a missing file is ``{}``, a corrupt one a ShardError naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ShardError(f"durations file {path} cannot be read: {exc}") from exc
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShardError(f"durations file {path} is not valid JSON ({exc}); {_REFRESH}") from exc
    if isinstance(data, list):  # pytest-split's older format: [[nodeid, seconds], ...]
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in data):
            raise ShardError(f"durations file {path} is a list but not of [test id, seconds] pairs; {_REFRESH}")
        data = dict(data)
    if not isinstance(data, dict):
        raise ShardError(f"durations file {path} holds a {type(data).__name__}, not {{test id: seconds}}; {_REFRESH}")
    bad = [key for key, seconds in data.items() if not _is_duration(seconds)]
    if bad:
        raise ShardError(f"durations file {path}: {bad[0]!r} has no duration in seconds; {_REFRESH}")
    return {str(key): float(seconds) for key, seconds in data.items()}


_REFRESH = "fix or delete it, then refresh it with `nox -s durations -- <wrapper>`"


def _is_duration(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class _TestId:
    """Enough of a pytest item for pytest-split's algorithms: a node id and the item's ``str``."""

    nodeid: str

    def __str__(self) -> str:  # what str(item) gives for a test function; pytest-split sorts on it
        return f"<Function {self.nodeid.rpartition('::')[2]}>"


def _groups(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[Any]:
    """pytest-split's ``least_duration`` groups for these test ids (the assignment a ``--shard`` run makes)."""
    from pytest_split.algorithms import Algorithms

    groups: list[Any] = Algorithms[ALGORITHM].value(count, [_TestId(t) for t in test_ids], dict(durations))
    return groups


def split(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[list[str]]:
    """The test ids of each shard, exactly as a ``--shard i/count`` run assigns them (same algorithm)."""
    return [[item.nodeid for item in group.selected] for group in _groups(test_ids, durations, count)]


def shard_seconds(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[float]:
    """Estimated seconds of each shard (missing tests at the mean, as pytest-split counts them)."""
    return [group.duration for group in _groups(test_ids, durations, count)]


def imbalance(seconds: Sequence[float]) -> float:
    """Longest shard over mean shard: 1.0 is perfect balance."""
    mean = sum(seconds) / len(seconds)
    return max(seconds) / mean if mean > 0 else 1.0



def balance_table(durations_by_wrapper: Mapping[str, Mapping[str, float]], counts: Sequence[int]) -> list[str]:
    """Markdown rows, one per wrapper: tests, total and longest seconds, and per N "imbalance (longest shard s)"."""
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
    """``python -m harness.sharding [WRAPPER ...] [--shards N ...] [--goal X]``: how even the shards are.

    The estimate leaves out what every shard pays once (interpreter start, torch import, collection).
    """
    parser = argparse.ArgumentParser(
        prog="python -m harness.sharding",
        description="How even --shard I/N shards are: longest shard / mean shard, from the stored durations.",
    )
    parser.add_argument("wrappers", nargs="*", help=f"wrapper names (default: every {DURATIONS_DIR}/*.json)")
    parser.add_argument("--shards", type=int, nargs="+", default=[2, 4, 8], metavar="N", help="default: 2 4 8")
    parser.add_argument("--durations-dir", type=Path, default=Path(DURATIONS_DIR), help=f"default: ./{DURATIONS_DIR}")
    parser.add_argument("--goal", type=float, default=None, help="exit 1 if any imbalance is above this")
    args = parser.parse_args(argv)
    names = args.wrappers or sorted(p.stem for p in args.durations_dir.glob("*.json"))
    loaded: dict[str, dict[str, float]] = {}
    for name in names:
        path = args.durations_dir / f"{name}.json"
        try:
            durations = load_durations(path)
        except ShardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not durations:
            print(f"error: no durations in {path}; run `nox -s durations -- {name}`", file=sys.stderr)
            return 2
        loaded[name] = durations
    if not loaded:
        print(f"error: no durations files in {args.durations_dir}", file=sys.stderr)
        return 2
    print("\n".join(balance_table(loaded, args.shards)))
    if args.goal is None:
        return 0
    worst = max(imbalance(shard_seconds(sorted(d), d, n)) for d in loaded.values() for n in args.shards)
    print(f"\nworst imbalance {worst:.3f}; goal <= {args.goal:.2f}: {'met' if worst <= args.goal else 'NOT met'}")
    return 0 if worst <= args.goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
