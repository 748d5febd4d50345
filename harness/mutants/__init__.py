"""Mutant wrappers: export as called, then hand the test a program that is wrong on purpose.

A mutant is a :class:`~harness.wrappers.Wrapper` like any other (``--export-wrapper mutant_shift_outputs``, or
in a comma-separated list), but it is kept apart from the real wrappers: not in ``all``, not a nox session of
its own, not in the README's wrapper table, listed in its own section by ``--export-wrapper-list``, and never
named by ``xfail_under`` / ``skip_under`` marks (those name real wrappers), so under a mutant every test is
plain. ``nox -s mutants`` runs a suite under ``non_strict`` and every mutant in one matrix run and reports,
per mutant, the share of plainly passing tests it reaches that fail (its kill rate): how strong the tests are.

Each mutant exports exactly as the test called export (as ``non_strict`` does; export errors reach the test
unchanged), then changes the program where tests look: what ``ep.module()`` computes, and the graph, the
signature and the state (``ep.state_dict``, ``ep.constants``) tests read. Neither the test's module nor its
example inputs are touched. A mutant that cannot change a program (no parameter to perturb, no dynamic
shape to drop) returns it unchanged and says so: every program a mutant sees becomes one :class:`Event`,
``mutated`` or not, with what was done or why nothing was. Events go to :data:`EVENTS` (this process) and,
when ``$EXPORT_MUTANTS_LOG`` names a directory, to ``<dir>/events-<pid>.jsonl`` (one file per process, so
xdist workers never interleave). A test counts as *reached* by a mutant when at least one of its programs was
mutated; kill rates are taken over reached tests only (:mod:`harness.mutants.analysis`).

If the mutation itself raises (a program the mutant does not understand), the program is exported again as
called and handed over unchanged, and the event records ``could not mutate: <cause>``: the test is then
not reached, the failure is counted in the report, and a bug in a mutant never passes for a killed test.

This module imports neither torch nor pytest (the transforms import torch when they run).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.wrappers import Wrapper, WrapperCall, as_called

if TYPE_CHECKING:
    from torch.export import ExportedProgram

PREFIX = "mutant_"
"""Every mutant's name starts with it."""
BASE = "non_strict"
"""The real wrapper mutants are measured against: each mutant's first export is this wrapper's."""
LOG_ENV = "EXPORT_MUTANTS_LOG"
"""A directory; when set, every process appends its events to ``events-<pid>.jsonl`` there."""
TAG = "mutant"
CURRENT_TEST_ENV = "PYTEST_CURRENT_TEST"
"""pytest sets it to ``<node id> (<phase>)`` while a test runs; read here without importing pytest."""
MAX_DETAIL = 300


@dataclass(frozen=True)
class Event:
    """One program a mutant saw: whether it changed it, and what it did or why it did nothing."""

    test: str
    """pytest's node id of the test that exported it (matrix id included), ``""`` outside a test."""
    mutant: str
    mutated: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


EVENTS: deque[Event] = deque(maxlen=10_000)
"""This process's events, oldest first (the newest 10 000)."""


def current_test() -> str:
    """The node id of the running test, without the phase; ``""`` when no test runs."""
    value = os.environ.get(CURRENT_TEST_ENV, "")
    return value.rsplit(" ", 1)[0] if value.endswith(")") else value


def note(mutant: str, mutated: bool, detail: str) -> Event:
    """Record what ``mutant`` did to one program (see the module docstring)."""
    detail = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"
    event = Event(current_test(), mutant, mutated, detail)
    EVENTS.append(event)
    directory = os.environ.get(LOG_ENV)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / f"events-{os.getpid()}.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(event.to_json()) + "\n")
    return event


def read_events(directory: Path) -> list[Event]:
    """Every event logged under ``directory`` (all ``events-*.jsonl``); a missing directory holds none."""
    events = []
    for path in sorted(Path(directory).glob("events-*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                events.append(Event(str(data["test"]), str(data["mutant"]), bool(data["mutated"]), str(data["detail"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a mutant event: {line[:200]!r}") from exc
    return events


Mutation = Callable[[WrapperCall, "ExportedProgram"], "tuple[ExportedProgram | None, str]"]
"""What a mutant does to the program as exported: ``(wrong program, what changed)``, or ``(None, why not)``."""


def mutant(name: str, description: str, mutation: Mutation) -> Wrapper:
    """A mutant wrapper: export as called, then ``mutation``; every program it sees becomes an :class:`Event`."""
    if not name.startswith(PREFIX):
        raise ValueError(f"a mutant's name starts with {PREFIX!r}: {name!r}")

    def stage(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
        try:
            mutated, detail = mutation(call, program)
        except Exception as exc:
            # The mutation may have left the program half-changed: hand over a clean export, and say so.
            note(call.wrapper, False, f"could not mutate: {type(exc).__name__}: {exc}".splitlines()[0])
            return call.export()
        note(call.wrapper, mutated is not None, detail)
        return program if mutated is None else mutated

    return Wrapper(name, description, as_called(stage), verb="handed over", tags=(BASE, TAG))


def _lazy(function: str) -> Mutation:
    """The mutation ``function`` of :mod:`harness.mutants.programs`, imported (with torch) on first use."""

    def mutation(call: WrapperCall, program: ExportedProgram) -> tuple[ExportedProgram | None, str]:
        from harness.mutants import programs

        result: tuple[ExportedProgram | None, str] = getattr(programs, function)(call, program)
        return result

    return mutation


MUTANTS: tuple[Wrapper, ...] = (
    mutant(
        "mutant_shift_outputs",
        "export as called, then shift every user output: floats +0.5, ints +1, bools negated",
        _lazy("shift_outputs"),
    ),
    mutant(
        "mutant_replay_example",
        "export as called, then compute on copies of the example inputs whatever the program is called with",
        _lazy("replay_example"),
    ),
    mutant(
        "mutant_detach_outputs",
        "export as called, then detach the floating user outputs when inputs or parameters require grad",
        _lazy("detach_outputs"),
    ),
    mutant(
        "mutant_perturb_state",
        "export as called, then replace parameters, buffers and lifted constants: floats +0.5, ints +1, bools negated",
        _lazy("perturb_state"),
    ),
    mutant(
        "mutant_drop_dynamic_shapes",
        "export as called but without dynamic_shapes: a program specialized to the example's sizes",
        _lazy("drop_dynamic_shapes"),
    ),
    mutant(
        "mutant_drop_state_mutations",
        "export as called, then buffer and parameter mutations act on copies: outputs right, state never written",
        _lazy("drop_state_mutations"),
    ),
    mutant(
        "mutant_drop_input_mutations",
        "export as called, then in-place mutations of inputs act on copies: outputs right, inputs never written",
        _lazy("drop_input_mutations"),
    ),
)
"""The mutants, in report order. Selectable by name (the registry looks them up), never part of ``all``."""


def mutant_names() -> list[str]:
    return [m.name for m in MUTANTS]


def is_mutant(name: str) -> bool:
    return name.startswith(PREFIX) and name in {m.name for m in MUTANTS}


def matrix_value(names: Iterable[str] = ()) -> str:
    """The ``--export-wrapper`` value of a mutants run: the base wrapper, then ``names`` (default: every mutant)."""
    return ",".join([BASE, *(list(names) or mutant_names())])
