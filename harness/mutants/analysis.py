"""Kill rates from a mutants run: its results file and the mutants' events. Pure code: no torch, no pytest.

For each mutant, over the tests that passed under the base wrapper (``non_strict``; xfailed, skipped and
failing tests are left out):

- *reached*: the mutant changed at least one program the test exported (an :class:`~harness.mutants.Event`
  with ``mutated``); a test it reached nowhere (its programs had nothing to change, or it made none) is
  *not reached* and counts neither way;
- *killed*: reached, and the test failed under the mutant (``failed``, ``error`` or ``crashed``);
- *survived*: reached, and the test did not fail (passed, or skipped / xfailed at run time: named with the
  outcome);
- *kill rate*: killed / reached.

Tests that pass under the base and that no mutant reaches are listed apart: error-path tests (the export
raises, so there is no program to change) and tests that make no program.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.mutants import BASE, Event
from harness.registry import split_matrix_id
from harness.results import BROKEN, RunFile

COULD_NOT_MUTATE = "could not mutate:"
"""How an event's detail starts when the mutation raised (the program was handed over unchanged)."""
FORMAT = "torch-export-harness-mutants"
VERSION = 1


@dataclass
class MutantScore:
    """One mutant against the tests that passed under the base wrapper."""

    name: str
    reached: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    survivors: dict[str, str] = field(default_factory=dict)
    """Reached tests that did not fail, with their outcome under the mutant."""
    not_reached: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Base-passing tests with no record under this mutant (deselected, or the run stopped early)."""
    why_not: Counter[str] = field(default_factory=Counter)
    """Why programs were handed over unchanged (an event's detail), over every program of the run."""
    could_not_mutate: Counter[str] = field(default_factory=Counter)
    """Causes of mutations that raised, over every program of the run."""

    @property
    def kill_rate(self) -> float | None:
        """Killed / reached, ``None`` when the mutant reached no test."""
        return len(self.killed) / len(self.reached) if self.reached else None

    def survivors_by_module(self) -> dict[str, list[tuple[str, str]]]:
        """``{module: [(test without its module, outcome)]}``, sorted."""
        grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for test, outcome in sorted(self.survivors.items()):
            grouped[module_of(test)].append((test.partition("::")[2] or test, outcome))
        return dict(grouped)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reached": len(self.reached),
            "killed": len(self.killed),
            "survived": len(self.survivors),
            "kill_rate": self.kill_rate,
            "not_reached": len(self.not_reached),
            "missing": len(self.missing),
            "survivors": {module: [{"test": test, "outcome": outcome} for test, outcome in tests]
                          for module, tests in self.survivors_by_module().items()},
            "why_not_mutated": dict(self.why_not.most_common()),
            "could_not_mutate": dict(self.could_not_mutate.most_common()),
        }


@dataclass
class Analysis:
    """Every mutant's score, and the base-passing tests no mutant reached."""

    base: str
    passed: list[str]
    """Tests that passed under the base wrapper, sorted."""
    mutants: list[MutantScore]
    unreached: list[str]
    """Base-passing tests no mutant reached (error-path tests, tests that make no program)."""
    source: str = ""

    def below(self, minimum: float) -> list[MutantScore]:
        """Mutants whose kill rate is under ``minimum`` (a fraction); a mutant that reached nothing is not."""
        return [m for m in self.mutants if m.kill_rate is not None and m.kill_rate < minimum]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "results": self.source,
            "base": self.base,
            "passed": len(self.passed),
            "mutants": [m.to_json() for m in self.mutants],
            "unreached": by_module(self.unreached),
        }


def module_of(test: str) -> str:
    """``tests/export/test_a.py`` for ``tests/export/test_a.py::test_x[p]``."""
    return test.split("::", 1)[0]


def by_module(tests: Iterable[str]) -> dict[str, list[str]]:
    """Tests grouped by module, modules and tests sorted; each test without its module."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for test in sorted(tests):
        grouped[module_of(test)].append(test.split("::", 1)[1] if "::" in test else test)
    return dict(sorted(grouped.items()))


def reached_tests(events: Iterable[Event], wrappers: Sequence[str]) -> dict[str, set[str]]:
    """``{mutant: tests it mutated a program of}``; matrix ids lose their wrapper (``test_x[mutant_a]``)."""
    reached: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.mutated and event.test:
            reached[event.mutant].add(split_matrix_id(event.test, [*wrappers, event.mutant])[0])
    return reached


def analyse(run: RunFile, events: Iterable[Event], base: str = BASE, mutants: Sequence[str] | None = None) -> Analysis:
    """Score each mutant of ``run`` (default: every wrapper of the run but ``base``) with ``events``.

    Raises ``ValueError`` when the run holds no record of ``base`` (nothing to measure against).
    """
    events = list(events)
    names = list(mutants) if mutants is not None else [w for w in run.wrappers if w != base]
    outcome = {(r.test, r.wrapper): r.outcome for r in run.records}
    if not any(wrapper == base for _, wrapper in outcome):
        raise ValueError(f"{run.name}: no test ran under the base wrapper {base!r} (wrappers: {run.wrappers})")
    passed = sorted(test for (test, wrapper), result in outcome.items() if wrapper == base and result == "passed")
    reached = reached_tests(events, [*run.wrappers, *names])
    scores = []
    for name in names:
        score = MutantScore(name)
        for event in events:
            if event.mutant == name and not event.mutated:
                target = score.could_not_mutate if event.detail.startswith(COULD_NOT_MUTATE) else score.why_not
                target[event.detail.removeprefix(COULD_NOT_MUTATE).strip()] += 1
        for test in passed:
            result = outcome.get((test, name))
            if result is None:
                score.missing.append(test)
            elif test not in reached.get(name, set()):
                score.not_reached.append(test)
            else:
                score.reached.append(test)
                if result in BROKEN:
                    score.killed.append(test)
                else:
                    score.survivors[test] = result
        scores.append(score)
    everywhere = set().union(*(reached.get(name, set()) for name in names)) if names else set()
    unreached = [test for test in passed if test not in everywhere]
    return Analysis(base, passed, scores, unreached, source=run.name)


# --- text ---------------------------------------------------------------------------------------------------


def percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f} %"


def table(analysis: Analysis) -> list[str]:
    """The Markdown table: one row per mutant."""
    rows = [
        "| mutant | reached | killed | survived | kill rate | not reached | could not mutate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in analysis.mutants:
        rows.append(
            f"| `{m.name}` | {len(m.reached)} | {len(m.killed)} | {len(m.survivors)} | {percent(m.kill_rate)} "
            f"| {len(m.not_reached)} | {sum(m.could_not_mutate.values())} |"
        )
    return rows


def markdown(analysis: Analysis, *, why_not: int = 3) -> str:
    """The whole report: the table, survivors per module, the tests no mutant reached."""
    unreached = by_module(analysis.unreached)
    lines = [
        f"Base `{analysis.base}`: {len(analysis.passed)} tests passed; kill rates are over the tests each mutant "
        f"reached (changed a program of); {len(analysis.unreached)} passing tests no mutant reached are listed apart.",
        "",
        *table(analysis),
        "",
        "Survivors (reached, not failed), per module:",
        "",
    ]
    any_survivor = False
    for m in analysis.mutants:
        if not m.survivors:
            continue
        any_survivor = True
        lines.append(f"- `{m.name}` ({len(m.survivors)}):")
        for module, tests in m.survivors_by_module().items():
            lines.append(f"  - `{module}`: {', '.join(_with_outcome(test, outcome) for test, outcome in tests)}")
    if not any_survivor:
        lines.append("- none")
    lines += ["", "Why programs were handed over unchanged (most common, per mutant):", ""]
    for m in analysis.mutants:
        reasons = [f"{detail} ({count})" for detail, count in m.why_not.most_common(why_not)]
        reasons += [f"could not mutate: {detail} ({count})" for detail, count in m.could_not_mutate.most_common()]
        if reasons:
            lines.append(f"- `{m.name}`: " + "; ".join(reasons))
    lines += ["", f"Passing tests no mutant reached ({len(analysis.unreached)}; error-path tests and tests that "
              "make no program), per module:", ""]
    for module, names in unreached.items():
        lines.append(f"- `{module}` ({len(names)}): " + ", ".join(f"`{name}`" for name in names))
    if not unreached:
        lines.append("- none")
    missing = {m.name: len(m.missing) for m in analysis.mutants if m.missing}
    if missing:
        lines += ["", "Passing tests without a record under a mutant (deselected, or the run stopped): "
                  + ", ".join(f"`{name}` {count}" for name, count in missing.items())]
    return "\n".join(lines) + "\n"


def _with_outcome(test: str, outcome: str) -> str:
    return f"`{test}`" if outcome == "passed" else f"`{test}` ({outcome})"


def dumps(analysis: Analysis) -> str:
    return json.dumps(analysis.to_json(), indent=1) + "\n"
