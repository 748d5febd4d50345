"""pytest side of golden artifacts: catch a ``golden`` test's first program, then store it or check it.

Active only when the run's one wrapper is :data:`WRAPPER` (``non_strict``: the program as torch
exports it), so the stored programs are torch's own; under any other wrapper, and in matrix mode,
golden tests just run. The program is caught through the patch's observer at the moment torch returns
it, before the test can run or mutate it; the comparison happens after the test body, and its failure
fails that test (never the run). :mod:`harness.golden.artifacts` does the torch work.

``harness/plugin.py`` calls :func:`addoption`, :func:`validate` and registers :class:`GoldenRun` under
:data:`PLUGIN_NAME` when the run's wrapper is :data:`WRAPPER`.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from harness import patching
from harness.golden import ACCEPT_HINT, ASPECTS, DEFAULT_DIR, MARKER, artifacts

# Re-exported: harness/plugin.py reads golden.WRAPPER and golden.PLUGIN_NAME from this module.
from harness.golden import PLUGIN_NAME as PLUGIN_NAME
from harness.golden import WRAPPER as WRAPPER
from harness.wrappers import WrapperCall

PROPERTY = "golden"
"""The ``user_properties`` key of each golden test's verdict; xdist carries it to the controller."""

ACCEPT_HELP = (
    f"store the first exported program of every @pytest.mark.{MARKER} test (with its outputs and a JSON "
    f"sidecar) instead of checking it; needs --export-wrapper {WRAPPER}"
)
DIR_HELP = f"directory of the golden artifacts (default: {DEFAULT_DIR}/ under the rootdir)"
REPORT_HELP = "write every golden test's verdict (load, outputs, graph, signature) to this JSON file"


def addoption(group: Any) -> None:
    """The golden options, in the harness's option group."""
    group.addoption("--golden-accept", dest="golden_accept", action="store_true", default=False, help=ACCEPT_HELP)
    group.addoption("--golden-dir", dest="golden_dir", default=None, metavar="DIR", help=DIR_HELP)
    group.addoption("--golden-report", dest="golden_report", default=None, metavar="PATH", help=REPORT_HELP)


def validate(config: pytest.Config, wrapper: str | None) -> None:
    """Refuse ``--golden-accept`` unless the run's one wrapper is :data:`WRAPPER`: it would store nothing."""
    if config.getoption("golden_accept") and wrapper != WRAPPER:
        raise pytest.UsageError(
            f"--golden-accept stores programs exported under the {WRAPPER!r} wrapper; the run's wrapper is "
            f"{wrapper!r}. Add --export-wrapper {WRAPPER} (or run `{ACCEPT_HINT}`)"
        )


def directory(config: pytest.Config) -> Path:
    option = config.getoption("golden_dir")
    return Path(option) if option else config.rootpath / DEFAULT_DIR


class _Catch:
    """The first program of one test, snapshotted when torch returned it, and how many programs followed."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.exports = 0
        self.shot: artifacts.Snapshot | None = None
        self.error: BaseException | None = None

    def __call__(self, call: WrapperCall, program: Any) -> None:
        self.exports += 1
        if self.exports > 1:
            return
        try:
            self.shot = artifacts.snapshot(program, accept=self.accept)
        except Exception as exc:  # reported after the test body, never from inside the test's export call
            self.error = exc


class GoldenRun:
    """Registered when the run's wrapper is :data:`WRAPPER`: stores or checks each golden test's program."""

    def __init__(self, config: pytest.Config, patch: patching.ExportPatch | None) -> None:
        self.patch = patch
        """None in an xdist controller, which runs no test: there it only gathers the verdicts."""
        self.accept: bool = config.getoption("golden_accept")
        self.directory = directory(config)
        report = config.getoption("golden_report")
        self.report = Path(report) if report else None
        self.is_worker = hasattr(config, "workerinput")
        self.verdicts: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        patch = self.patch
        if item.get_closest_marker(MARKER) is None or patch is None:
            return (yield)
        catch = _Catch(self.accept)
        patch.observer = catch
        try:
            result = yield
        except BaseException:
            try:
                self._conclude(item, catch, test_failed=True)
            except Exception as exc:  # the test's own failure is the one to report
                item.user_properties.append((PROPERTY, {"error": artifacts.first_line(exc)}))
            raise
        finally:
            patch.observer = None
        self._conclude(item, catch, test_failed=False)
        return result

    def _conclude(self, item: pytest.Item, catch: _Catch, *, test_failed: bool) -> None:
        """Store or check after the test body; the test's own failure, if any, stays the one reported."""
        paths = artifacts.ArtifactPaths.of(self.directory, item.nodeid)
        if test_failed and catch.exports == 0:
            return  # skipped, or failed before exporting: nothing to store or judge
        problem: str | None = None
        if catch.exports != 1:
            problem = f"a @pytest.mark.{MARKER} test must export exactly one program; this one exported {catch.exports}"
        elif catch.error is not None or catch.shot is None:
            problem = f"snapshotting the program failed: {catch.error!r}"
        if problem is not None:
            item.user_properties.append((PROPERTY, {"error": problem}))
            if not test_failed:
                pytest.fail(f"golden artifact {paths.sidecar}: {problem}", pytrace=False)
            return
        assert catch.shot is not None
        if self.accept:
            if test_failed:
                item.user_properties.append((PROPERTY, {"error": "the test failed; nothing stored"}))
            else:
                artifacts.write(paths, item.nodeid, catch.shot)
                item.user_properties.append((PROPERTY, {"accepted": str(paths.sidecar)}))
            return
        verdict = artifacts.check(paths, item.nodeid, catch.shot)
        item.user_properties.append((PROPERTY, verdict.as_record()))
        if verdict.failures and not test_failed:
            failed = [aspect for aspect in ASPECTS if aspect in verdict.failures]
            details = "\n".join(f"[{aspect}] {verdict.failures[aspect]}" for aspect in failed)
            pytest.fail(
                f"golden artifact {paths.sidecar} ({', '.join(failed)} failed; saved by torch {verdict.saved_by}):\n"
                f"{details}\nIf the change is intended, review it and re-accept with `{ACCEPT_HINT}`",
                pytrace=False,
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == PROPERTY and isinstance(value, dict):
                self.verdicts[report.nodeid] = value

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.verdicts:
            return
        if self.accept:
            accepted = sum("accepted" in v for v in self.verdicts.values())
            files, size = artifacts.total_size(self.directory)
            terminalreporter.write_line(
                f"golden artifacts: {accepted} of {len(self.verdicts)} golden tests stored in {self.directory} "
                f"({files} files in the directory, {size / 1e6:.2f} MB in total)"
            )
            return
        checked = [v for v in self.verdicts.values() if "error" not in v]
        held = sum(all(v.get(aspect) is None for aspect in ASPECTS) for v in checked)
        counts = ", ".join(f"{sum(v.get(aspect) is None for v in checked)} {aspect}" for aspect in ASPECTS)
        terminalreporter.write_line(
            f"golden artifacts in {self.directory}: {held} of {len(self.verdicts)} golden tests hold ({counts})"
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report is None or self.is_worker:
            return
        import torch

        self.report.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "torch_version": torch.__version__,
            "directory": str(self.directory),
            "accept": self.accept,
            "tests": dict(sorted(self.verdicts.items())),
        }
        self.report.write_text(json.dumps(document, indent=1) + "\n")
