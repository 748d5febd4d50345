"""The pytest side of results files: from test reports to records, and the file at the end of the run.

Workers know the exception, so :func:`annotate` attaches to each phase's report the outcome of every
program the wrapper saw, their timings, the wrapper and, for a failing phase, the stage that broke and
the first line of the cause: plain JSON-able attributes, so they cross xdist with the report. The
controller (or the only process without xdist) folds the setup, call and teardown reports of each test
into one :class:`~harness.results.Record` (:class:`Collector`) and writes the file at session finish
through :func:`harness.results.write`, so a crashed worker (reported by xdist as a failure in the
controller) still leaves a complete file.

Where the file goes (:func:`configure`, called by the plugin on the controller only):

- ``--results PATH``: exactly ``PATH`` (relative to the directory pytest was started in); it wins over
  ``--results-dir``, so ``nox -s <wrapper> -- --results PATH`` redirects a session's file;
- ``--results-dir DIR``: ``DIR/<run>-<selection key>[-shard-I-of-N].json``, where ``<run>`` is the wrapper
  or ``matrix`` and the key digests what the run selected (paths, ``-k``, ``-m``, ``--deselect``, ``--lf``
  ...; see :class:`harness.results.RunSelection`). Two runs share a file name only when they are the same
  run, selection and shard: a rerun replaces its own earlier file, never another selection's or shard's;
- neither: nothing is written (the terminal summary says so). The nox sessions pass ``--results-dir results``;
- a run that runs no test (``--collect-only``, ``--setup-plan``): nothing, whatever the options.

Give the directory as ``--results-dir=DIR``: pytest decides its rootdir from the command line before
plugins add their options, so in ``--results-dir DIR`` an existing ``DIR`` counts as a test path there,
and one outside the project moves the rootdir out of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import results
from harness.errors import EXPORT_STAGE, ExpectedFailure, wrapper_error
from harness.registry import MATRIX_RUN, split_matrix_id
from harness.results import BROKEN, CRASH_STAGE, TEST_STAGE, Record, RunFile, RunSelection

PLUGIN_NAME = "export-harness-results"
STAGE_ATTR = "export_stage"
CAUSE_ATTR = "export_cause"
OUTCOMES_ATTR = "export_wrapper_programs"
TIMINGS_ATTR = "export_wrapper_timings"
WRAPPER_ATTR = "export_wrapper_name"
MAX_CAUSE = 500
"""Characters of a cause's first line that are kept."""

RESULTS_OPTION = "--results"
RESULTS_DIR_OPTION = "--results-dir"
RESULTS_HELP = (
    "write this run's results file to exactly PATH (relative to the current directory; wins over "
    f"{RESULTS_DIR_OPTION}, so a nox session's posargs can redirect it). Default: no file (see "
    f"{RESULTS_DIR_OPTION}); never written by a collect-only run"
)
RESULTS_DIR_HELP = (
    "write this run's results file into DIR, named <wrapper or matrix>-<selection key>[-shard-I-of-N].json, "
    "so a run never replaces the file of another selection or shard (the nox sessions pass "
    f"{RESULTS_DIR_OPTION} results). Default: no file; never written by a collect-only run. Write "
    f"{RESULTS_DIR_OPTION}=DIR: pytest picks its rootdir before it knows this option, so a separate DIR "
    "that exists is taken for a test path there"
)
OFF_LINE = f"export results: not written ({RESULTS_DIR_OPTION} DIR or {RESULTS_OPTION} PATH keeps them)"

SELECTION_OPTIONS: tuple[tuple[str, str], ...] = (
    ("lf", "--lf"),
    ("stepwise", "--sw"),
    ("stepwise_skip", "--sw-skip"),
    ("pyargs", "--pyargs"),
)
"""Flags (option dest, flag) besides paths, -k, -m and --deselect that change which tests run."""
SELECTION_PATH_OPTIONS: tuple[tuple[str, str], ...] = (("ignore", "--ignore"), ("ignore_glob", "--ignore-glob"))
"""Options naming paths that change which tests are collected."""
NO_TESTS_RUN = ("collectonly", "setupplan")
"""Options under which pytest runs no test: such a run writes no results file."""


# ------------------------------------------------------------------------------------------- worker side


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped and cut to ``MAX_CAUSE`` characters."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 1] + "…"
    return ""


def describe(exc: BaseException, outcomes: Iterable[str | None], when: str) -> tuple[str, str]:
    """``(stage, cause)`` of a failure: the wrapper's stage if one broke, else ``export`` or ``test``.

    ``outcomes`` are what the patch recorded during the phase (a stage name per broken program).
    A failure its ``xfail_under`` mark accepted is described by the failure behind it.
    """
    if isinstance(exc, ExpectedFailure) and exc.__cause__ is not None:
        exc = exc.__cause__
    broken = wrapper_error(exc)
    if broken is not None:
        cause = broken.__cause__ or broken
        return broken.stage, first_line(f"{type(cause).__name__}: {cause}")
    cause_line = first_line(f"{type(exc).__name__}: {exc}")
    if EXPORT_STAGE in outcomes:
        return EXPORT_STAGE, cause_line
    return (TEST_STAGE if when == "call" else when), cause_line


def annotate(
    report: pytest.TestReport,
    call: pytest.CallInfo[None],
    outcomes: Sequence[str | None],
    timings: Sequence[tuple[float, float]],
    wrapper: str,
) -> None:
    """Attach what the wrapper did in this phase to its report (worker side; read back on the controller).

    ``outcomes`` has one entry per program the wrapper saw: ``None`` when transformed, else the stage
    that broke (``export``: torch's first export raised). ``timings`` holds (first export, whole call)
    seconds per transformed program. A failing (or expectedly failing) phase also gets its stage and cause.
    """
    setattr(report, OUTCOMES_ATTR, list(outcomes))
    setattr(report, TIMINGS_ATTR, [[float(first), float(total)] for first, total in timings])
    setattr(report, WRAPPER_ATTR, wrapper)
    excinfo = call.excinfo
    if excinfo is None or isinstance(excinfo.value, pytest.skip.Exception):
        return
    stage, cause = describe(excinfo.value, outcomes, call.when)
    setattr(report, STAGE_ATTR, stage)
    setattr(report, CAUSE_ATTR, cause)


def report_outcomes(report: pytest.TestReport) -> Sequence[str | None]:
    """The program outcomes :func:`annotate` attached (none for a report it never saw, e.g. a crash)."""
    outcomes: Sequence[str | None] = getattr(report, OUTCOMES_ATTR, None) or ()
    return outcomes


def report_wrapper(report: pytest.TestReport) -> str | None:
    """The wrapper :func:`annotate` attached, or ``None`` (xdist's report of a test whose worker died)."""
    wrapper = getattr(report, WRAPPER_ATTR, None)
    return wrapper if isinstance(wrapper, str) else None


def report_timings(report: pytest.TestReport) -> Sequence[Sequence[float]]:
    """The (first export, whole call) seconds per transformed program :func:`annotate` attached."""
    timings: Sequence[Sequence[float]] = getattr(report, TIMINGS_ATTR, None) or ()
    return timings


# ------------------------------------------------------------------------------------------- controller


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
        test, wrapper = split_matrix_id(report.nodeid, self.wrappers) if self.matrix else (report.nodeid, None)
        wrapper = wrapper or (self.wrappers[0] if len(self.wrappers) == 1 else "?")
        record = self.records.setdefault((test, wrapper), Record(test, wrapper))
        record.duration += float(getattr(report, "duration", 0.0) or 0.0)
        record.timings.extend([round(first, 6), round(total, 6)] for first, total in report_timings(report))
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


def _relative(arg: str, base: Path, root: Path) -> str:
    """A path argument (``dir``, ``a.py::test_x``) relative to the rootdir, in POSIX form."""
    path, separator, rest = arg.partition("::")
    absolute = Path(os.path.normpath(base / path))
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        relative = absolute.as_posix()
    return relative + separator + rest


def selection_of(config: pytest.Config, selected: int | None = None) -> RunSelection:
    """What this run selects: its path arguments (rootdir-relative), -k, -m, --deselect and the like."""
    base, root = config.invocation_params.dir, config.rootpath
    pyargs = bool(config.getoption("pyargs", False))
    paths = sorted({arg if pyargs else _relative(arg, base, root) for arg in config.args})
    other = [flag for dest, flag in SELECTION_OPTIONS if config.getoption(dest, None)]
    for dest, flag in SELECTION_PATH_OPTIONS:
        values = config.getoption(dest, None) or []
        other += sorted(f"{flag}={_relative(value, base, root)}" for value in values)
    return RunSelection(
        paths=tuple(paths),
        keyword=config.getoption("keyword", "") or None,
        markexpr=config.getoption("markexpr", "") or None,
        deselect=tuple(sorted(_relative(d, base, root) for d in config.getoption("deselect", None) or [])),
        other=tuple(other),
        selected=selected,
    )


class ResultsRecorder:
    """Plugin object of the controller (or the single process): collect every report, write the file at the end.

    ``explicit``: ``path`` was named with ``--results``; the summary then says when the file it replaced
    held another selection.
    """

    def __init__(
        self,
        path: Path,
        run: str,
        wrappers: Sequence[str],
        shard: tuple[int, int] | None,
        args: Sequence[str],
        selection: RunSelection,
        explicit: bool = False,
    ) -> None:
        self.path = path
        self.run = run
        self.wrappers = list(wrappers)
        self.shard = shard
        self.args = list(args)
        self.selection = selection
        self.explicit = explicit
        self.collector = Collector(wrappers, matrix=run == MATRIX_RUN)
        self.written = False
        self.replaced: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._selected(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self._selected(len(ids))  # every worker collects (and deselects) the same items

    def _selected(self, count: int) -> None:
        if self.selection.selected is None:
            self.selection = RunSelection(**{**vars(self.selection), "selected": count})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.collector.add_collect(report)

    def document(self, exitstatus: int) -> RunFile:
        here = results.versions()
        return RunFile(
            run=self.run,
            wrappers=self.wrappers,
            records=list(self.collector.records.values()),
            selection=self.selection,
            shard=f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            exitstatus=int(exitstatus),
            args=self.args,
            collection_errors=self.collector.collection_errors,
            created=results.now(),
            torch=here["torch"],
            harness=here["harness"],
            python=here["python"],
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if not self.collector.records and exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            return  # nothing ran: keep whatever file is there
        if self.explicit:
            self.replaced = self._other_selection()
        results.write(self.path, self.document(exitstatus))
        self.written = True

    def _other_selection(self) -> str | None:
        """What the file about to be replaced selected, when that differs from this run's selection."""
        if not self.path.exists():
            return None
        try:
            earlier = results.load(self.path)
        except results.ResultsError:
            return "not a readable results file"
        if earlier.selection_key == self.selection.key:
            return None
        return results.describe_selection(earlier.selection)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            terminalreporter.write_line(f"export results: not written (the run ended with no test run): {self.path}")
            return
        count = len(self.collector.records)
        terminalreporter.write_line(
            f"export results: {count} records written to {self.path} "
            f"(selection {results.describe_selection(self.selection)})"
        )
        if self.replaced is not None:
            terminalreporter.write_line(f"export results: replaced {self.path}, which held another selection: "
                                        f"{self.replaced}")


class NotWritten:
    """Says, at the end of the run, why no results file was written."""

    def __init__(self, line: str) -> None:
        self.line = line

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(self.line)


def addoption(group: Any) -> None:
    """``--results PATH`` and ``--results-dir DIR`` (``group`` is the harness's pytest OptionGroup)."""
    group.addoption(RESULTS_OPTION, dest="export_results", default=None, metavar="PATH", help=RESULTS_HELP)
    group.addoption(
        RESULTS_DIR_OPTION, dest="export_results_dir", default=None, metavar="DIR", help=RESULTS_DIR_HELP
    )


def configure(config: pytest.Config, run: str, wrappers: Sequence[str], shard: tuple[int, int] | None) -> None:
    """Register the recorder (plugin name ``export-harness-results``) if this run writes a results file.

    Call on the controller only (or the single process). ``run`` is the wrapper's name or ``matrix``.
    """
    path_option = config.getoption("export_results", None)
    dir_option = config.getoption("export_results_dir", None)
    if any(config.getoption(dest, False) for dest in NO_TESTS_RUN):
        if path_option or dir_option:
            config.pluginmanager.register(NotWritten("export results: not written (a run that runs no test)"),
                                          PLUGIN_NAME)
        return
    if not (path_option or dir_option):
        config.pluginmanager.register(NotWritten(OFF_LINE), PLUGIN_NAME)
        return
    base = config.invocation_params.dir
    selection = selection_of(config)
    directory = base / str(dir_option)
    path = base / str(path_option) if path_option else directory / results.file_name(run, selection, shard)
    recorder = ResultsRecorder(
        path, run, wrappers, shard, config.invocation_params.args, selection, explicit=bool(path_option)
    )
    config.pluginmanager.register(recorder, PLUGIN_NAME)
