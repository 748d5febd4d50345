"""``-n auto`` without the worker start-up cost when a ``-k`` selection is too small to gain from workers.

Each pytest-xdist worker starts an interpreter, imports torch and collects the suite before it runs a
test: seconds of fixed cost that a large run earns back and a small selection does not (the first
result of `nox -s cpp_serdes -- -k dynamic` would wait for them). The run's stored durations
(``durations/<run>.json``) say how long the tests a ``-k`` expression picks take; below
:data:`SMALL_SELECTION_SECONDS` the run uses no workers. Only ``-k`` is judged, since markers are not
in the durations file; anything else (``-m``, explicit test ids, no stored durations) keeps xdist's
own ``auto``. ``-n 2`` (a number) is always obeyed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SMALL_SELECTION_SECONDS = 20.0
"""Stored test-seconds under which workers cost more than they give on this project's 2-core machines."""


class _NodeIdMatcher:
    """pytest's ``-k`` matching (case-insensitive substring of a node's names) from a node id alone."""

    def __init__(self, nodeid: str) -> None:
        path, _, rest = nodeid.partition("::")
        self.names = [part.lower() for part in (*path.split("/"), *rest.split("::")) if part]

    def __call__(self, name: str, /, **kwargs: Any) -> bool:
        if kwargs:
            return False  # keyword arguments match markers' arguments, which ids do not carry
        return any(name.lower() in part for part in self.names)


@dataclass(frozen=True)
class Estimate:
    """How many stored tests a ``-k`` expression picks and their stored seconds."""

    tests: int
    seconds: float


def estimate(durations: Mapping[str, float], keyword: str) -> Estimate:
    """The stored tests ``keyword`` selects (as ``-k`` would, by their ids) and how long they took."""
    from _pytest.mark.expression import Expression

    expression = Expression.compile(keyword)
    picked = [seconds for nodeid, seconds in durations.items() if expression.evaluate(_NodeIdMatcher(nodeid))]
    return Estimate(len(picked), sum(picked))


def workers_for(durations: Mapping[str, float], keyword: str, markexpr: str) -> tuple[int | None, Estimate | None]:
    """``(0, estimate)`` for a small ``-k`` selection; ``(None, ...)`` to leave ``auto`` to xdist."""
    if not keyword or markexpr or not durations:
        return None, None
    try:
        found = estimate(durations, keyword)
    except Exception:  # a -k pytest will reject itself, with its own message
        return None, None
    return (0 if found.seconds < SMALL_SELECTION_SECONDS else None), found
