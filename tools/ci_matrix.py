"""The CI job matrix, wrapper x shard, from nox's own session list (the wrappers are typed once, in the registry).

    nox -l --json -t wrappers | python tools/ci_matrix.py --shards 4

prints, on one line, ``{"include": [{"wrapper": "non_strict", "shard": 1, "shards": 4}, ...]}`` for
``strategy.matrix: ${{ fromJSON(...) }}``. Only sessions tagged ``wrappers`` are kept, in nox's order.
Needs only the standard library: the CI job that runs it has nothing but nox installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TAG = "wrappers"
"""The tag noxfile.py gives every per-wrapper session."""
MAX_JOBS = 256
"""GitHub Actions runs at most this many jobs from one matrix."""


class MatrixError(ValueError):
    """The nox listing or the shard count cannot make a usable matrix."""


def wrapper_sessions(listing: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of the sessions tagged ``wrappers`` in ``nox -l --json`` output."""
    names = [str(entry["session"]) for entry in listing if TAG in entry.get("tags", ())]
    if not names:
        raise MatrixError(f"no session tagged {TAG!r} in the nox listing; run `nox -l --json -t {TAG}`")
    return names


def build_matrix(wrappers: Sequence[str], shards: int) -> dict[str, list[dict[str, str | int]]]:
    """One job per wrapper and shard, shard numbers 1-based as ``--shard I/N`` takes them."""
    if shards < 1:
        raise MatrixError(f"--shards is {shards}; it must be at least 1")
    jobs: list[dict[str, str | int]] = [
        {"wrapper": wrapper, "shard": shard, "shards": shards} for wrapper in wrappers for shard in range(1, shards + 1)
    ]
    if len(jobs) > MAX_JOBS:
        raise MatrixError(f"{len(wrappers)} wrappers x {shards} shards = {len(jobs)} jobs, over GitHub's {MAX_JOBS}")
    return {"include": jobs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shards", type=int, required=True, help="shards per wrapper (N of --shard I/N)")
    parser.add_argument("listing", nargs="?", default="-", help="`nox -l --json` output file (default: stdin)")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.listing == "-" else Path(args.listing).read_text()
        listing = json.loads(text)
        if not isinstance(listing, list):
            raise MatrixError("the nox listing is not a JSON list; give the output of `nox -l --json`")
        matrix = build_matrix(wrapper_sessions(listing), args.shards)
    except (MatrixError, json.JSONDecodeError, OSError) as exc:
        print(f"ci_matrix: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(matrix, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
