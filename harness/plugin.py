"""pytest hooks: select a wrapper, patch torch.export.export before collection, apply expected failures, sum up.

Registered through the ``pytest11`` entry point, so it works in any project once
the package is installed. torch is imported only when a wrapper is selected.
"""

from __future__ import annotations

import os
import unittest
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import active_wrapper, golden, matrix, patching, results, sharding
from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.registry import available_wrappers
from harness.selection import (
    COMPAT_ENV_VAR,
    COMPAT_INI_KEY,
    COMPAT_OPTION,
    ENV_VAR,
    INI_KEY,
    OPTION,
    Selection,
    SelectionError,
    resolve_compat,
    resolve_selection,
)
from harness.summary import ProgramTally
from harness.wrappers import Wrapper

MARKER = "xfail_under"
SKIP_MARKER = "skip_under"
REPORT_ATTR = "export_wrapper_programs"
WORKERINPUT_KEY = "export_wrapper"
WORKERINPUT_COMPAT_KEY = "export_pytorch_compat"
WRAPPER_ATTR = "export_wrapper_name"

SELECTION_KEY = pytest.StashKey[Selection | None]()
COMPAT_KEY = pytest.StashKey[bool]()
PATCH_KEY = pytest.StashKey[patching.ExportPatch]()

HELP = (
    "export wrapper to install in place of torch.export.export for the whole run "
    f"(overrides ${ENV_VAR} and the {INI_KEY} ini option); see --export-wrapper-list. "
    f"'{matrix.ALL}' or a comma-separated list runs every test once per wrapper (matrix mode)"
)
RESULTS_HELP = (
    "where to write the results file of a wrapped run (default: results/<wrapper, or matrix>[-shard-I-of-N].json "
    "under the rootdir)"
)
COMPAT_HELP = (
    "PyTorch-compat mode: wrap only the `export` names bound in test modules (the qualified "
    "torch.export.export stays the original, PyTorch's escape hatch) and show unittest tests "
    f"their variant through self._testMethodName's suffix (also ${COMPAT_ENV_VAR}=1)"
)
MARKER_HELP = (
    f"{MARKER}(*wrappers, reason, raises=None): strict xfail when the run's export wrapper "
    "is one of *wrappers; reason must say what torch does wrong"
)
SKIP_MARKER_HELP = (
    f"{SKIP_MARKER}(*wrappers, reason): skip when the run's export wrapper is one of *wrappers; "
    "reason must say why the test tells nothing there (a skip is reported, never silent)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("export-harness", "torch.export wrapper harness")
    group.addoption(OPTION, dest="export_wrapper", default=None, metavar="NAME", help=HELP)
    group.addoption(
        "--export-wrapper-list",
        action="store_true",
        default=False,
        help="list the available export wrappers with their descriptions and exit",
    )
    group.addoption("--results", dest="export_results", default=None, metavar="PATH", help=RESULTS_HELP)
    group.addoption(COMPAT_OPTION, dest="export_pytorch_compat", action="store_true", default=False, help=COMPAT_HELP)
    sharding.addoption(group)
    golden.addoption(group)
    parser.addini(INI_KEY, help=HELP, default="")
    parser.addini(COMPAT_INI_KEY, help=COMPAT_HELP, type="bool", default=False)


def _list_wrappers() -> str:
    wrappers = available_wrappers()
    width = max(map(len, wrappers))
    return "\n".join(f"{name:<{width}}  {w.description}" for name, w in wrappers.items())


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Validate the selection before anything is collected, so a bad name runs nothing."""
    if config.getoption("export_wrapper_list"):
        try:
            print(_list_wrappers())
        except WrapperPluginError as exc:
            raise pytest.UsageError(str(exc)) from exc
        return 0
    if config.getoption("help", False):
        return None
    try:
        selection = resolve_selection(
            config.getoption("export_wrapper"), os.environ, config.getini(INI_KEY)
        )
        if selection is not None:
            matrix.resolve_wrappers(selection)
        compat = resolve_compat(
            config.getoption("export_pytorch_compat"), os.environ, bool(config.getini(COMPAT_INI_KEY))
        )
    except (SelectionError, UnknownWrapperError, WrapperPluginError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    if compat and selection is not None and matrix.is_matrix(selection.name):
        raise pytest.UsageError(
            f"{COMPAT_OPTION} cannot be combined with matrix mode ({selection.name!r} from {selection.source}): "
            "PyTorch-style suites are unittest.TestCase classes, which pytest cannot parametrize per wrapper; "
            "run them one wrapper at a time"
        )
    config.stash[SELECTION_KEY] = selection
    config.stash[COMPAT_KEY] = compat
    name = None if selection is None else matrix.MATRIX_NAME if matrix.is_matrix(selection.name) else selection.name
    golden.validate(config, name)
    sharding.configure(config, name)  # --shard: pytest-split over durations/<name>.json
    return None


def _selection(config: pytest.Config) -> tuple[Selection | None, bool]:
    """The wrapper and compat mode: the controller's when this is an xdist worker."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        name = workerinput[WORKERINPUT_KEY]
        selection = None if name is None else Selection(name, "the xdist controller")
        return selection, bool(workerinput[WORKERINPUT_COMPAT_KEY])
    return config.stash.get(SELECTION_KEY, None), config.stash.get(COMPAT_KEY, False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", SKIP_MARKER_HELP)
    selection, compat = _selection(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(selection, compat), "export-harness-xdist")
    if selection is None:
        return
    wrappers = matrix.resolve_wrappers(selection)
    in_matrix = matrix.is_matrix(selection.name)
    patch = patching.install(wrappers[0], patch_attribute=not compat, choices=wrappers if in_matrix else ())
    config.add_cleanup(lambda: patching.uninstall(patch))
    config.stash[PATCH_KEY] = patch
    config.pluginmanager.register(WrappedRun(patch, wrappers), "export-harness-run")
    if in_matrix:
        config.pluginmanager.register(matrix.MatrixRun(patch, wrappers), "export-harness-matrix")
    elif wrappers[0].name == golden.WRAPPER:
        config.pluginmanager.register(golden.GoldenRun(config, patch), golden.PLUGIN_NAME)
    if not hasattr(config, "workerinput"):
        _register_results(config, [w.name for w in wrappers], matrix.MATRIX_NAME if in_matrix else wrappers[0].name)
    if compat:
        config.pluginmanager.register(PyTorchCompat(patch), "export-harness-pytorch-compat")


def _register_results(config: pytest.Config, wrappers: list[str], run: str) -> None:
    """Record every test's outcome in this process (the controller under xdist) and write it at the end."""
    shard = results.shard_of(config)
    option = config.getoption("export_results")
    path = Path(option) if option else results.default_path(config.rootpath, run, shard)
    recorder = results.ResultsRecorder(path, run, wrappers, shard, config.invocation_params.args)
    config.pluginmanager.register(recorder, "export-harness-results")


class XdistHooks:
    """Hand the controller's resolved selection to every worker, so all of them patch the same way."""

    def __init__(self, selection: Selection | None, compat: bool) -> None:
        self.selection = selection
        self.compat = compat

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = None if self.selection is None else self.selection.name
        node.workerinput[WORKERINPUT_COMPAT_KEY] = self.compat


def _marks_naming(item: pytest.Item, marker: str, wrapper: Wrapper) -> list[pytest.Mark]:
    """The item's ``marker`` marks that name ``wrapper``; refuses unknown names and a missing reason."""
    known = available_wrappers()
    naming = []
    for mark in item.iter_markers(marker):
        unknown = [name for name in mark.args if name not in known]
        if unknown or not mark.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{marker} names unknown wrapper(s) {unknown or '(none)'}; "
                f"valid names: {', '.join(known)}"
            )
        if not mark.kwargs.get("reason"):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{marker} needs reason=... saying why")
        if wrapper.name in mark.args:
            naming.append(mark)
    return naming


def expected_failure(item: pytest.Item, wrapper: Wrapper) -> pytest.MarkDecorator | None:
    """The strict xfail this item gets under ``wrapper``, from our marker or PyTorch's attribute."""
    for mark in _marks_naming(item, MARKER, wrapper)[:1]:
        return pytest.mark.xfail(
            reason=f"[{wrapper.name}] {mark.kwargs['reason']}", strict=True, raises=mark.kwargs.get("raises")
        )
    attr = wrapper.pytorch_xfail_attr
    function = getattr(item, "obj", None)
    if attr and function is not None and getattr(function, attr, False):
        return pytest.mark.xfail(reason=f"[{wrapper.name}] PyTorch-style {attr} attribute", strict=True)
    return None


def skip(item: pytest.Item, wrapper: Wrapper) -> pytest.MarkDecorator | None:
    """The skip this item gets under ``wrapper`` from ``skip_under``, with its reason."""
    for mark in _marks_naming(item, SKIP_MARKER, wrapper)[:1]:
        return pytest.mark.skip(reason=f"[{wrapper.name}] {mark.kwargs['reason']}")
    return None


class WrappedRun:
    """The hooks that matter only while a wrapper is installed: expected failures and the program tally.

    The same code path counts with and without xdist: workers attach each test phase's
    outcomes (and its wrapper, and what broke) to its report, and ``pytest_runtest_logreport``
    (which runs wherever reports end up, the controller under xdist) adds them up, one
    summary line per wrapper.
    """

    def __init__(self, patch: patching.ExportPatch, wrappers: Sequence[Wrapper] = ()) -> None:
        self.patch = patch
        self.wrappers = {w.name: w for w in (wrappers or (patch.wrapper,))}
        self.tallies = {name: ProgramTally() for name in self.wrappers}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            name = matrix.item_wrapper(item) if len(self.wrappers) > 1 else None
            wrapper = self.wrappers.get(name or "", self.patch.wrapper)
            for mark in (skip(item, wrapper), expected_failure(item, wrapper)):
                if mark is not None:
                    item.add_marker(mark)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        programs = self.patch.drain()
        setattr(report, REPORT_ATTR, programs)
        setattr(report, results.TIMINGS_ATTR, self.patch.drain_timings())
        setattr(report, WRAPPER_ATTR, self.patch.wrapper.name)
        results.annotate(report, call, programs)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A report without a wrapper (xdist's report of a crashed test) carries no programs either.
        name = getattr(report, WRAPPER_ATTR, None) or next(iter(self.tallies))
        self.tallies[name].add(getattr(report, REPORT_ATTR, None) or ())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for name, wrapper in self.wrappers.items():
            terminalreporter.write_line(self.tallies[name].line(name, wrapper.verb))


class PyTorchCompat:
    """Behave like PyTorch's generated per-variant wrapper files (``--pytorch-compat``).

    Those files patch only the ``export`` name bound in the test module, so a qualified
    ``torch.export.export(...)`` call is an escape hatch, and they rename every test with
    a variant suffix that tests read from ``self._testMethodName``. pytest's own test ids
    stay unchanged so results and durations line up across wrappers.
    """

    def __init__(self, patch: patching.ExportPatch) -> None:
        self.patch = patch

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        seen: set[int] = set()
        for item in items:
            module = getattr(item, "module", None)
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                self.patch.bind_into(module)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        testcase = getattr(item, "instance", None)
        suffix = self.patch.wrapper.pytorch_suffix
        if not isinstance(testcase, unittest.TestCase) or not suffix:
            yield
            return
        name = testcase._testMethodName
        variant_name = name + suffix
        # unittest looks the method up by _testMethodName; the alias keeps skips and
        # expectedFailure working, since they are attributes of the same function.
        setattr(testcase, variant_name, getattr(testcase, name))
        testcase._testMethodName = variant_name
        try:
            yield
        finally:
            testcase._testMethodName = name
            delattr(testcase, variant_name)


@pytest.fixture
def export_wrapper() -> str | None:
    """The name of the export wrapper this run installed, or ``None``: for tests that must branch on it."""
    return active_wrapper()


@pytest.fixture
def original_export() -> Any:
    """torch.export.export itself, never the wrapper: the documented escape hatch for our own suite."""
    return patching.real_export()
