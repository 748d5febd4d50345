"""pytest hooks: resolve the run plan, patch torch.export.export before collection, register what the run needs.

Registered through the ``pytest11`` entry point, so it works in any project once the package is
installed. The hooks here only wire things together; each concern lives in its own module: the plan
(``plan``), the patch (``patching``), marks (``marks``), matrix mode (``matrix``), shards
(``sharding_plugin``), results files (``recording``), golden artifacts (``golden.plugin``) and
PyTorch-compat mode (``compat``). torch is imported only when a wrapper is selected.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from harness import active_wrapper, failures, marks, patching, recording, sharding_plugin, torch_quirks, worker_count
from harness.compat import PyTorchCompat
from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.golden import plugin as golden
from harness.matrix import MatrixRun, item_wrapper
from harness.plan import (
    COMPAT_HELP,
    COMPAT_INI_KEY,
    COMPAT_OPTION,
    INI_KEY,
    OPTION,
    WRAPPER_HELP,
    WRAPPER_INI_HELP,
    PlanError,
    RunPlan,
    resolve,
)
from harness.registry import available_wrappers, selectable_wrappers
from harness.sharding import ShardError, durations_file, load_durations
from harness.summary import ProgramTally, WarningTally
from harness.wrappers import Wrapper

PLAN_KEY = pytest.StashKey[RunPlan]()
PATCH_KEY = pytest.StashKey[patching.ExportPatch]()
WORKERINPUT_KEY = "export_harness_plan"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from harness import repro

    group = parser.getgroup("export-harness", "torch.export wrapper harness")
    group.addoption(OPTION, dest="export_wrapper", default=None, metavar="NAME", help=WRAPPER_HELP)
    group.addoption(
        "--export-wrapper-list",
        action="store_true",
        default=False,
        help="list the available export wrappers with their descriptions and exit",
    )
    group.addoption(COMPAT_OPTION, dest="export_pytorch_compat", action="store_true", default=False, help=COMPAT_HELP)
    recording.addoption(group)
    sharding_plugin.addoption(group)
    golden.addoption(group)
    repro.addoption(group)
    pluginmanager.register(repro.ReproRun(), repro.PLUGIN_NAME)  # --repro-dir: bundles of failures (harness/repro)
    parser.addini(INI_KEY, help=WRAPPER_INI_HELP, default="")
    parser.addini(COMPAT_INI_KEY, help=COMPAT_HELP, type="bool", default=False)


def _list_wrappers() -> str:
    """The real wrappers, then the mutants in a section of their own (selectable by name, not in ``all``)."""
    from harness.registry import mutant_wrappers

    wrappers, mutants = available_wrappers(), mutant_wrappers()
    width = max(map(len, [*wrappers, *mutants]))
    lines = [f"{name:<{width}}  {w.description}" for name, w in wrappers.items()]
    lines += ["", "mutants (wrong on purpose; selectable by name, not in 'all'; `nox -s mutants` measures a suite):"]
    lines += [f"{name:<{width}}  {w.description}" for name, w in mutants.items()]
    return "\n".join(lines)


def _resolve_plan(config: pytest.Config) -> RunPlan:
    """The controller resolves the plan; an xdist worker takes the controller's."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        return RunPlan.from_workerinput(workerinput[WORKERINPUT_KEY])
    try:
        return resolve(
            cli_wrapper=config.getoption("export_wrapper"),
            cli_compat=config.getoption("export_pytorch_compat"),
            cli_shard=config.getoption("export_shard"),
            environ=os.environ,
            ini_wrapper=config.getini(INI_KEY),
            ini_compat=bool(config.getini(COMPAT_INI_KEY)),
        )
    except (PlanError, UnknownWrapperError, WrapperPluginError) as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Resolve and validate the plan before anything is collected, so a bad value runs nothing."""
    if config.getoption("export_wrapper_list"):
        try:
            print(_list_wrappers())
        except WrapperPluginError as exc:
            raise pytest.UsageError(str(exc)) from exc
        return 0
    if config.getoption("help", False):
        return None
    plan = config.stash[PLAN_KEY] if PLAN_KEY in config.stash else _resolve_plan(config)
    config.stash[PLAN_KEY] = plan
    golden.validate(config, plan.run_name)
    sharding_plugin.configure(config, plan)  # --shard: pytest-split over durations/<run>.json
    return None


AUTO_WORKERS_KEY = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # an xdist hook: pytest -p no:xdist must still run
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` with a small ``-k`` selection of the run's stored durations: no workers (see worker_count)."""
    # xdist's own pytest_cmdline_main (tryfirst, like ours) may run first and ask this before ours has run.
    if PLAN_KEY not in config.stash:
        config.stash[PLAN_KEY] = _resolve_plan(config)
    plan = config.stash[PLAN_KEY]
    if plan.run_name is None or any("::" in arg for arg in config.option.file_or_dir or ()):
        return None
    try:
        durations = load_durations(durations_file(config.rootpath, plan.run_name))
    except ShardError:
        return None  # --shard reports a corrupt file itself
    workers, found = worker_count.workers_for(durations, config.option.keyword, config.option.markexpr)
    if workers is not None and found is not None:
        config.stash[AUTO_WORKERS_KEY] = (
            f"export harness: -n auto runs without workers: -k {config.option.keyword!r} picks {found.tests} stored "
            f"tests, {found.seconds:.1f} s of test time (under {worker_count.SMALL_SELECTION_SECONDS:.0f} s); "
            "-n 2 forces workers"
        )
    return workers


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(AUTO_WORKERS_KEY, None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marks.XFAIL_HELP)
    config.addinivalue_line("markers", marks.SKIP_HELP)
    config.add_cleanup(torch_quirks.install())
    if config.getoption("disable_warnings", False) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(WarningsByCategory(), "export-harness-warnings")
    plan = config.stash.get(PLAN_KEY, None)
    if plan is None:  # --help, or a worker of a run whose controller had no harness
        return
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(plan), "export-harness-xdist")
    if not plan.wrapped:
        return
    selectable = selectable_wrappers()  # the plan's names were checked by the registry; mutants included
    wrappers = [selectable[name] for name in plan.names]
    config.pluginmanager.register(ProgramCount(wrappers), "export-harness-count")
    patch = None
    if not hands_tests_to_workers(config):
        choices = wrappers if plan.matrix else ()
        patch = patching.install(wrappers[0], patch_attribute=not plan.compat.value, choices=choices)
        config.add_cleanup(lambda: patching.uninstall(patch))
        config.stash[PATCH_KEY] = patch
        config.pluginmanager.register(WrappedRun(patch, wrappers), "export-harness-run")
        config.pluginmanager.register(marks, "export-harness-marks")
        if plan.matrix:
            config.pluginmanager.register(MatrixRun(patch, wrappers), "export-harness-matrix")
        if plan.compat.value:
            config.pluginmanager.register(PyTorchCompat(patch), "export-harness-pytorch-compat")
    if not plan.matrix and plan.run_name == golden.WRAPPER:
        config.pluginmanager.register(golden.GoldenRun(config, patch), golden.PLUGIN_NAME)
    if not hasattr(config, "workerinput"):
        shard = None if plan.shard is None else (plan.shard.index, plan.shard.count)
        recording.configure(config, plan.run_name or "", list(plan.names), shard)


class WarningsByCategory:
    """With pytest's warnings summary switched off, one line still says how many warnings of which kind."""

    def __init__(self) -> None:
        self.tally = WarningTally()

    def pytest_warning_recorded(self, warning_message: Any) -> None:
        self.tally.add(getattr(warning_message.category, "__name__", str(warning_message.category)))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.tally.categories:
            terminalreporter.write_line(self.tally.line())


class XdistHooks:
    """Hand the controller's plan to every worker once, so all of them patch the same way."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.plan.to_workerinput()


def hands_tests_to_workers(config: pytest.Config) -> bool:
    """True in an xdist controller that starts workers: it collects and runs no test, so it installs no patch.

    Not installing there keeps torch out of the controller, whose start-up is on the way to every worker's (and
    so to the first test result). The test mirrors xdist's own (``dist`` other than ``no`` and workers to
    start, not ``--collect-only``), read after xdist's ``pytest_cmdline_main`` has settled ``-n auto``.
    """
    if hasattr(config, "workerinput") or config.getoption("collectonly", False):
        return False
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


class ProgramCount:
    """Programs per wrapper and stage, added up wherever reports end up (the controller under xdist).

    Workers attach each test phase's outcomes (and its wrapper, and what broke) to its report; one summary
    line per wrapper at the end.
    """

    def __init__(self, wrappers: Sequence[Wrapper]) -> None:
        self.wrappers = {w.name: w for w in wrappers}
        self.tallies = {name: ProgramTally() for name in self.wrappers}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A report without a wrapper (xdist's report of a crashed test) carries no programs either.
        name = recording.report_wrapper(report) or next(iter(self.tallies))
        self.tallies[name].add(recording.report_outcomes(report), test_failed=report.failed)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for name, wrapper in self.wrappers.items():
            terminalreporter.write_line(self.tallies[name].line(name, wrapper.verb))


class WrappedRun:
    """Where tests run with a wrapper installed: marks per item, and each phase's programs onto its report."""

    def __init__(self, patch: patching.ExportPatch, wrappers: Sequence[Wrapper]) -> None:
        self.patch = patch
        self.wrappers = {w.name: w for w in wrappers}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            name = item_wrapper(item) if len(self.wrappers) > 1 else None
            marks.apply(item, self.wrappers.get(name or "", self.patch.wrapper))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        from harness import repro

        outcome = yield
        report = outcome.get_result()
        recording.annotate(report, call, self.patch.drain(), self.patch.drain_timings(), self.patch.wrapper.name)
        bundle = repro.after_phase(item, report, call, self.patch.drain_captures())  # off: captures just dropped
        if report.failed and call.excinfo is not None:
            failures.headline(report, call.excinfo.value, bundle=bundle)


@pytest.fixture
def export_wrapper() -> str | None:
    """The name of the export wrapper this run installed, or ``None``: for tests that must branch on it."""
    return active_wrapper()


@pytest.fixture
def original_export() -> Any:
    """torch.export.export itself, never the wrapper: the documented escape hatch for our own suite."""
    return patching.real_export()
