"""Repro bundles: for each failing (test, wrapper), a folder a PyTorch developer can run with plain torch.

With ``--repro-dir DIR`` (the nox sessions pass ``--repro-dir=reports/repro``), a test phase that fails
at a wrapper stage, or in the test's own check after the wrapper transformed the program, leaves
``DIR/<test id>__<wrapper>/`` holding the first exported program (``program.pt2``; its printed graph and
a dump where torch cannot save it), the example inputs, the transformed program where there is one,
``error.txt`` (wrapper, stage, torch's exception and traceback, versions), ``bundle.json`` and
``repro.py``, a standalone script that re-runs the failing stage with plain torch
(:mod:`harness.repro.script`; writing: :mod:`harness.repro.bundle`).

How it stays cheap and bounded:

- the patch keeps, per wrapper call, a few references (:class:`harness.patching.Capture`) and drops them at
  the end of every test phase; files are written only when the phase failed (or was an expected failure
  and ``--repro-xfail`` asks for those), so a green run writes nothing;
- at most ``--repro-max`` bundles per run (default :data:`MAX_BUNDLES`), counted across xdist workers by
  claiming numbered slot files; the end of the run says how many were not written;
- a test that runs again without failing removes its older bundle, so the folder holds the bundles of
  the failures of the latest run of each test (and wrapper).

Under xdist each worker writes its tests' bundles (it has the objects); the path reaches the controller
on the report (:data:`BUNDLE_ATTR`), from where the terminal line and the results file's records take it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import patching, recording
from harness.errors import EXPORT_STAGE, ExpectedFailure, ExportWrapperError, chain
from harness.matrix import item_wrapper
from harness.patching import Capture
from harness.registry import split_matrix_id
from harness.results import CRASH_STAGE, TEST_STAGE

PLUGIN_NAME = "export-harness-repro"
DIR_OPTION = "--repro-dir"
XFAIL_OPTION = "--repro-xfail"
MAX_OPTION = "--repro-max"
MAX_BUNDLES = 200
"""Bundles written per run by default; the rest are counted and named in one line at the end."""
BUNDLE_ATTR = "export_repro_bundle"
"""Report attribute: the bundle's path as the run names it (``reports/repro/<name>``)."""
CAPPED_ATTR = "export_repro_capped"
"""Report attribute: a bundle was due but the cap had been reached."""
PROBLEM_ATTR = "export_repro_problem"
"""Report attribute: a bundle was due but writing it raised (the line says why; the test's outcome stands)."""
TOKEN_KEY = "export_repro_token"
"""workerinput key: the run's token, naming the slot folder every process of the run claims from."""
MAX_NAME = 150
"""Characters of a bundle folder's name (longer test ids are cut and end in a digest)."""
NOT_A_WRAPPER_STAGE = frozenset({EXPORT_STAGE, TEST_STAGE, CRASH_STAGE, "setup", "teardown"})

DIR_HELP = (
    "write a repro bundle into DIR/<test id>__<wrapper>/ for each test phase that fails at a wrapper stage, or "
    "in the test's own check after the wrapper transformed the program: the first exported program, the example "
    "inputs, the transformed program, error.txt and repro.py, which re-runs the failing stage with plain torch. "
    "Files are written only for failures. Default: off (the nox sessions pass --repro-dir=reports/repro). "
    "Write --repro-dir=DIR (see --results-dir)"
)
XFAIL_HELP = (
    "also write bundles for expected failures (xfail_under, PyTorch-style _expected_failure_* marks): the "
    "repros of known torch bugs"
)
MAX_HELP = f"write at most N bundles per run, counted over xdist workers (default {MAX_BUNDLES})"

KEY = pytest.StashKey["Bundles"]()


def addoption(group: Any) -> None:
    group.addoption(DIR_OPTION, dest="export_repro_dir", default=None, metavar="DIR", help=DIR_HELP)
    group.addoption(XFAIL_OPTION, dest="export_repro_xfail", action="store_true", default=False, help=XFAIL_HELP)
    group.addoption(MAX_OPTION, dest="export_repro_max", type=int, default=MAX_BUNDLES, metavar="N", help=MAX_HELP)


def folder_name(test: str, wrapper: str) -> str:
    """``<sanitized test id>__<wrapper>``, at most :data:`MAX_NAME` characters, the same for the same pair."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", test.replace("::", "__")).strip("._")
    limit = MAX_NAME - len(wrapper) - 2
    if len(safe) > limit:
        digest = hashlib.sha256(test.encode("utf-8")).hexdigest()[:10]
        safe = safe[: limit - 11].rstrip("._") + "-" + digest
    return f"{safe}__{wrapper}"


@dataclass
class Bundles:
    """This process's share of the run's bundles: where they go, how many it may write, which it wrote."""

    directory: Path
    """Where the folders go (absolute)."""
    shown: str
    """The directory as the command line named it (what reports and error lines show)."""
    xfail: bool
    cap: int
    token: str
    controller: bool
    written: set[str] = field(default_factory=set)
    """Folder names written by this process in this run."""
    counted: int = 0
    """Bundles the controller has seen reported (all processes)."""
    capped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def slots(self) -> Path:
        return self.directory / f".slots-{self.token}"

    def claim(self) -> bool:
        """One of the run's :attr:`cap` slots, shared by every process of the run; ``False`` when all are taken."""
        self.slots.mkdir(parents=True, exist_ok=True)
        for index in range(self.cap):
            try:
                os.close(os.open(self.slots / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return True
        return False

    def after_phase(
        self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], captures: Sequence[Capture]
    ) -> Path | None:
        """Write this phase's bundle if it is due; at the end of a test, remove the test's stale bundle."""
        bundle = None
        wrapper = recording.report_wrapper(report)
        if wrapper is None:
            return None
        # a matrix id names its wrapper as its last parameter; the folder name says it once, at the end
        test = split_matrix_id(report.nodeid, [wrapper])[0] if item_wrapper(item) else report.nodeid
        failure = self._failure(test, report, call, captures)
        if failure is not None:
            name = folder_name(failure.test, failure.wrapper)
            if name not in self.written:
                bundle = self._write(report, name, failure)
        if report.when == "teardown":
            stale = folder_name(test, wrapper)
            if stale not in self.written and (self.directory / stale).exists():
                shutil.rmtree(self.directory / stale, ignore_errors=True)
        return bundle

    def _failure(
        self, test: str, report: pytest.TestReport, call: pytest.CallInfo[None], captures: Sequence[Capture]
    ) -> Any:
        from harness.repro.bundle import Failure

        excinfo = call.excinfo
        if excinfo is None or not captures:
            return None
        xfailed = report.skipped and hasattr(report, "wasxfail")
        if not (report.failed or (xfailed and self.xfail)):
            return None
        exc: BaseException = excinfo.value
        if isinstance(exc, ExpectedFailure) and exc.__cause__ is not None:
            exc = exc.__cause__
        stage = getattr(report, recording.STAGE_ATTR, None)
        errors = chain(exc)
        capture: Capture | None = None
        if stage is not None and stage not in NOT_A_WRAPPER_STAGE:
            capture = next((c for c in reversed(captures) if any(c.error is e for e in errors)), None)
            capture = capture or next((c for c in reversed(captures) if c.stage == stage), None)
            stage_error = capture.error if capture is not None else None
            if isinstance(stage_error, ExportWrapperError):
                error: BaseException = stage_error.__cause__ or stage_error
            else:
                error = exc
        elif stage == TEST_STAGE and report.when == "call":
            capture = next(
                (c for c in reversed(captures) if c.transformed is not None and c.transformed is not c.first), None
            )
            error = exc
        if capture is None or capture.first is None:
            return None
        wrapper = capture.wrapper
        return Failure(
            test=test,
            nodeid=report.nodeid,
            wrapper=wrapper.name,
            tags=tuple(wrapper.tags),
            stage=str(stage),
            cause=recording.first_line(f"{type(error).__name__}: {error}"),
            phase=report.when or "?",
            outcome="xfailed" if xfailed else "failed",
            error=error,
            capture=capture,
        )

    def _write(self, report: pytest.TestReport, name: str, failure: Any) -> Path | None:
        from harness.repro.bundle import write

        if not self.claim():
            setattr(report, CAPPED_ATTR, True)
            return None
        try:
            write(self.directory, name, failure)
        except Exception as error:  # a bundle must never change the test's outcome
            setattr(report, PROBLEM_ATTR, f"{name}: {type(error).__name__}: {error}"[:500])
            return None
        self.written.add(name)
        shown = Path(self.shown) / name
        setattr(report, BUNDLE_ATTR, str(shown))
        return shown


def after_phase(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], captures: Sequence[Capture]
) -> Path | None:
    """The plugin's call at the end of each test phase (after recording.annotate): the bundle written, if any.

    ``captures`` are the phase's wrapper calls (drained from the patch whatever happens, so their
    references go); without ``--repro-dir`` they are simply dropped.
    """
    bundles = item.config.stash.get(KEY, None)
    if bundles is None:
        return None
    return bundles.after_phase(item, report, call, captures)


class ReproRun:
    """The plugin object: options in, capture switched on, slots shared, the count at the end."""

    def __init__(self) -> None:
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        option = config.getoption("export_repro_dir", None)
        if not option or config.getoption("collectonly", False):
            return
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        token = (workerinput or {}).get(TOKEN_KEY) or f"{os.getpid()}-{time.time_ns()}"
        directory = Path(option)
        if not directory.is_absolute():
            directory = config.invocation_params.dir / directory
        config.stash[KEY] = Bundles(
            directory=directory,
            shown=str(option),
            xfail=bool(config.getoption("export_repro_xfail", False)),
            cap=max(0, int(config.getoption("export_repro_max", MAX_BUNDLES))),
            token=str(token),
            controller=workerinput is None,
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        patch = patching.installed()
        if patch is not None and KEY in session.config.stash:
            patch.capturing = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        bundles = node.config.stash.get(KEY, None)
        if bundles is not None:
            node.workerinput[TOKEN_KEY] = bundles.token

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self.config
        bundles = config.stash.get(KEY, None) if config is not None else None
        if config is None or bundles is None or not bundles.controller:
            return
        path = getattr(report, BUNDLE_ATTR, None)
        if isinstance(path, str):
            bundles.counted += 1
            _record_bundle(config, report, path)
        if getattr(report, CAPPED_ATTR, False):
            bundles.capped += 1
        problem = getattr(report, PROBLEM_ATTR, None)
        if isinstance(problem, str):
            bundles.problems.append(problem)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        bundles = config.stash.get(KEY, None)
        if bundles is None or not bundles.controller:
            return
        for line in summary_lines(bundles):
            terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        bundles = config.stash.get(KEY, None)
        if bundles is not None and bundles.controller:
            shutil.rmtree(bundles.slots, ignore_errors=True)


def summary_lines(bundles: Bundles) -> list[str]:
    """The end-of-run lines: how many bundles were written where, and how many were not (and why)."""
    lines = []
    if bundles.counted:
        lines.append(f"repro bundles: {bundles.counted} written to {bundles.shown}")
    if bundles.capped:
        lines.append(
            f"repro bundles: {bundles.capped} not written: the cap of {bundles.cap} per run was reached "
            f"({MAX_OPTION} N raises it)"
        )
    for problem in bundles.problems[:5]:
        lines.append(f"repro bundles: could not write {problem}")
    if len(bundles.problems) > 5:
        lines.append(f"repro bundles: … and {len(bundles.problems) - 5} more that could not be written")
    return lines


def _record_bundle(config: pytest.Config, report: pytest.TestReport, path: str) -> None:
    """Put the bundle's path on the results file's record of this (test, wrapper), if a file is being written."""
    recorder = config.pluginmanager.get_plugin(recording.PLUGIN_NAME)
    collector = getattr(recorder, "collector", None)
    wrapper = recording.report_wrapper(report)
    if collector is None or wrapper is None:
        return
    test = split_matrix_id(report.nodeid, [wrapper])[0] if collector.matrix else report.nodeid
    record = collector.records.get((test, wrapper))
    if record is not None:
        record.bundle = path
