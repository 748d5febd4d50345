"""Results files: one record per test and wrapper, written by the process that sees every report.

Workers know the exception, so they attach the broken stage and the first line of the cause
to each report (``annotate``); the attributes cross xdist with the report. The controller
(or the only process without xdist) folds the setup, call and teardown reports of each
test into one :class:`Record` and writes the file at session finish, so a crashed worker
(reported by xdist as a failure in the controller) still leaves a complete file.

A results file is JSON::

    {"format": "torch-export-harness-results", "version": 1, "run": "matrix", "wrappers": [...],
     "torch": "2.13.0", "harness": "0.1.0", "created": "...", "shard": "1/4" | null, "exitstatus": 0,
     "args": [...], "collection_errors": [{"node": ..., "cause": ...}],
     "tests": [{"test": "tests/export/a.py::test_x", "wrapper": "serdes_strict", "outcome": "failed",
                "stage": "deserialize", "cause": "KeyError: 'foo'", "duration": 0.12,
                "timings": [[0.05, 0.09], ...]}, ...]}

``timings`` holds, per program the wrapper transformed, the seconds of its first export and of the whole
wrapper call (``tools/bench.py`` turns them into each wrapper's cost over plain export).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ExportWrapperError
from harness.matrix import MATRIX_NAME, split_nodeid
from harness.summary import FIRST_EXPORT

FORMAT = "torch-export-harness-results"
VERSION = 1
STAGE_ATTR = "export_stage"
CAUSE_ATTR = "export_cause"
TIMINGS_ATTR = "export_wrapper_timings"
RESULTS_DIR = "results"
MAX_CAUSE = 500
"""Characters of a cause's first line that are kept."""

OUTCOMES = ("passed", "failed", "error", "crashed", "xfailed", "xpassed", "skipped")
"""Every outcome a record can have, in report order."""
BROKEN = frozenset({"failed", "error", "crashed"})
"""Outcomes that fail a run (a strict XPASS fails it too, but is recorded as ``xpassed``: a stale mark)."""

TEST_STAGE = "test"
"""The stage of a failure outside export and the wrapper: the test's own assertion on the program."""
CRASH_STAGE = "crash"


@dataclass
class Record:
    """The outcome of one test under one wrapper."""

    test: str
    wrapper: str
    outcome: str = "passed"
    stage: str | None = None
    cause: str | None = None
    duration: float = 0.0
    timings: list[list[float]] = field(default_factory=list)
    """[first export, whole wrapper call] seconds per transformed program."""


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped and cut to ``MAX_CAUSE`` characters."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 1] + "…"
    return ""


def describe(exc: BaseException, programs: Iterable[str | None], when: str) -> tuple[str, str]:
    """``(stage, cause)`` of a failure: the wrapper's stage if one broke, else ``export`` or ``test``.

    ``programs`` are what the patch recorded during the phase (a stage name per broken program).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ExportWrapperError):
            cause = current.__cause__ or current
            return current.stage, first_line(f"{type(cause).__name__}: {cause}")
        current = current.__cause__ or current.__context__
    cause_line = first_line(f"{type(exc).__name__}: {exc}")
    if FIRST_EXPORT in programs:
        return FIRST_EXPORT, cause_line
    return (TEST_STAGE if when == "call" else when), cause_line


def annotate(report: pytest.TestReport, call: pytest.CallInfo[None], programs: Sequence[str | None]) -> None:
    """Attach the stage and cause of a failing (or expectedly failing) phase to its report (worker side)."""
    excinfo = call.excinfo
    if excinfo is None or isinstance(excinfo.value, pytest.skip.Exception):
        return
    stage, cause = describe(excinfo.value, programs, call.when)
    setattr(report, STAGE_ATTR, stage)
    setattr(report, CAUSE_ATTR, cause)


def _longrepr_line(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        return first_line(str(longrepr[2]).removeprefix("Skipped: "))
    return first_line(str(longrepr or ""))


class Collector:
    """Folds the phase reports of each test into one record per (test, wrapper)."""

    def __init__(self, wrappers: Sequence[str], matrix: bool) -> None:
        self.wrappers = list(wrappers)
        self.matrix = matrix
        self.records: dict[tuple[str, str], Record] = {}
        self.collection_errors: list[dict[str, str]] = []

    def add(self, report: pytest.TestReport) -> None:
        # A single wrapper's ids are the tests' own (a test may be parametrized by wrapper names).
        test, wrapper = split_nodeid(report.nodeid, self.wrappers) if self.matrix else (report.nodeid, None)
        wrapper = wrapper or (self.wrappers[0] if len(self.wrappers) == 1 else "?")
        record = self.records.setdefault((test, wrapper), Record(test, wrapper))
        record.duration += float(getattr(report, "duration", 0.0) or 0.0)
        record.timings.extend([round(first, 6), round(total, 6)] for first, total in getattr(report, TIMINGS_ATTR, ()))
        outcome = self._outcome(report)
        if outcome is None:
            return
        if report.when == "teardown" and record.outcome in BROKEN:
            return  # the first failure is the interesting one
        record.outcome = outcome
        if outcome == "passed":
            return
        stage = getattr(report, STAGE_ATTR, None)
        cause = getattr(report, CAUSE_ATTR, None)
        if outcome == "crashed":
            stage, cause = CRASH_STAGE, _longrepr_line(report)
        elif outcome in ("skipped", "xpassed") or cause is None:
            cause = str(getattr(report, "wasxfail", "") or "") if outcome == "xpassed" else _longrepr_line(report)
        record.stage, record.cause = stage, cause

    @staticmethod
    def _outcome(report: pytest.TestReport) -> str | None:
        """This phase's contribution, or ``None`` when it changes nothing (a passing setup or teardown)."""
        when = report.when
        if when not in ("setup", "call", "teardown"):
            return "crashed"  # xdist's report for the test a dying worker was running ("???")
        wasxfail = hasattr(report, "wasxfail")
        if report.passed:
            if when == "call":
                return "xpassed" if wasxfail else "passed"
            return None
        if report.skipped:
            return "xfailed" if wasxfail else "skipped"
        if when == "call":
            longrepr = str(report.longrepr or "")
            return "xpassed" if longrepr.startswith("[XPASS(strict)]") else "failed"
        return "error"

    def add_collect(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append({"node": report.nodeid, "cause": first_line(str(report.longrepr or ""))})


def versions() -> dict[str, str]:
    """The torch, harness and Python versions of this process (torch without importing it if possible)."""
    from harness import __version__

    torch = sys.modules.get("torch")
    torch_version = getattr(torch, "__version__", None)
    if torch_version is None:
        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = "not installed"
    return {"torch": str(torch_version), "harness": __version__, "python": platform.python_version()}


def shard_of(config: pytest.Config) -> tuple[int, int] | None:
    """``(i, n)`` when this run is shard i of n: from a ``--shard I/N`` option or pytest-split's options."""
    shard = config.getoption("export_shard", None)
    if isinstance(shard, str) and "/" in shard:
        index, _, count = shard.partition("/")
        if index.strip().isdigit() and count.strip().isdigit():
            return int(index), int(count)
    if isinstance(shard, tuple) and len(shard) == 2 and all(isinstance(v, int) for v in shard):
        return shard[0], shard[1]
    splits, group = config.getoption("splits", None), config.getoption("group", None)
    if isinstance(splits, int) and isinstance(group, int):
        return group, splits
    return None


def default_path(rootpath: Path, run: str, shard: tuple[int, int] | None) -> Path:
    """``results/<run>.json`` or ``results/<run>-shard-<i>-of-<n>.json`` under the rootdir."""
    suffix = f"-shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return rootpath / RESULTS_DIR / f"{run}{suffix}.json"


def write(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


class ResultsRecorder:
    """Plugin object of the controller (or the single process): collect, then write the file."""

    def __init__(
        self, path: Path, run: str, wrappers: Sequence[str], shard: tuple[int, int] | None, args: Sequence[str]
    ) -> None:
        self.path = path
        self.run = run
        self.wrappers = list(wrappers)
        self.shard = shard
        self.args = list(args)
        self.collector = Collector(wrappers, matrix=run == MATRIX_NAME)
        self.written = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.collector.add_collect(report)

    def document(self, exitstatus: int) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "run": self.run,
            "wrappers": self.wrappers,
            **versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            "exitstatus": int(exitstatus),
            "args": self.args,
            "collection_errors": self.collector.collection_errors,
            "tests": [asdict(record) for record in self.collector.records.values()],
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        write(self.path, self.document(exitstatus))
        self.written = True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written:
            count = len(self.collector.records)
            terminalreporter.write_line(f"export results: {count} records written to {self.path}")
