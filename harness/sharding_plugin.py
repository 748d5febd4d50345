"""The pytest side of ``--shard I/N``: drive pytest-split with the plan's shard and the wrapper's durations.

This module only:

- points pytest-split at the run's durations file, ``durations/<run>.json`` under the rootdir, and
  rejects a corrupt one or a ``--durations-path`` that does not exist;
- makes an empty shard (every selected test went to another shard) exit 0 instead of pytest's 5,
  while a selection that is empty before splitting (``-k`` matched nothing) still exits 5;
- keeps xdist workers from writing the durations file (the controller sees every report and
  writes it once) and hands them the durations path; the shard itself reaches them with the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.plan import RunPlan
from harness.sharding import ALGORITHM, HELP, OPTION, Shard, ShardError, durations_file, load_durations

WORKERINPUT_KEY = "export_shard_durations"
WORKEROUTPUT_KEY = "export_shard_counts"
REPORT_PLUGIN = "export-harness-shard-report"


def addoption(group: Any) -> None:
    group.addoption(OPTION, dest="export_shard", default=None, metavar="I/N", help=HELP)


def configure(config: pytest.Config, plan: RunPlan) -> None:
    """Set pytest-split's options from the plan; call from ``pytest_cmdline_main``, before configure.

    pytest-split reads ``config.option`` in its ``pytest_configure``, so setting them here
    is enough, on the controller and (from ``workerinput``) on every xdist worker.
    """
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        # Only the controller sees every test's report, so it alone stores durations.
        config.option.store_durations = False
        if plan.shard is not None:
            _apply(config, plan.shard, workerinput[WORKERINPUT_KEY])
        return
    shard = plan.shard
    try:
        if not hasattr(config.option, "splits"):
            if shard is not None:
                raise ShardError(f"{shard.source} needs the pytest-split plugin (pip install pytest-split)")
            return
        if shard is not None and (config.option.splits is not None or config.option.group is not None):
            raise ShardError(f"{shard.source} and pytest-split's --splits/--group both ask for a shard; use one")
        path = Path(config.option.durations_path)
        named = path != config.invocation_params.dir / ".test_durations"  # --durations-path was given
        if plan.run_name is not None and not named:
            path = durations_file(config.rootpath, plan.run_name)
        if shard is not None and named and not config.option.store_durations and not path.exists():
            # The default file may be missing (a wrapper not timed yet: tests count equal); one the
            # user named must exist, or a typo would silently give an unbalanced split.
            raise ShardError(f"--durations-path {path} does not exist; {shard.source} needs it to balance the shards")
        durations = load_durations(path) if shard is not None or config.option.store_durations else {}
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if config.option.store_durations:
        path.parent.mkdir(parents=True, exist_ok=True)
    config.option.durations_path = str(path)
    if shard is not None:
        _apply(config, shard, str(path))
        config.pluginmanager.register(ShardReport(shard, path, len(durations)), REPORT_PLUGIN)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(ShardXdistHooks(str(path)), "export-harness-shard-xdist")


def _apply(config: pytest.Config, shard: Shard, durations_path: str) -> None:
    config.option.splits = shard.count
    config.option.group = shard.index
    config.option.splitting_algorithm = ALGORITHM
    config.option.durations_path = durations_path
    # Registered now, before pytest-split registers its splitter in pytest_configure: of two
    # trylast hooks the one registered first runs first, so this one sees the selection that
    # pytest-split is about to divide (after -k and -m) and, at collection end, this shard.
    config.pluginmanager.register(ShardCounts(config), "export-harness-shard-counts")


class ShardCounts:
    """How many selected tests were divided, and how many fell in this shard (where tests are collected)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.divided = 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.divided = len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        counts = (self.divided, len(session.items))
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_KEY] = counts
        report = self.config.pluginmanager.get_plugin(REPORT_PLUGIN)
        if isinstance(report, ShardReport):
            report.counts = counts


class ShardReport:
    """On the controller (or a plain run): the header line, and exit 0 for an empty shard."""

    def __init__(self, shard: Shard, durations_path: Path, known: int) -> None:
        self.shard = shard
        self.durations_path = durations_path
        self.known = known
        self.counts: tuple[int, int] | None = None

    def pytest_report_header(self, config: pytest.Config) -> str:
        stored = f"{self.known} stored durations" if self.known else "no stored durations (tests count equal)"
        path = self.durations_path
        shown = path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
        return f"export shard: {self.shard} ({self.shard.source}), {ALGORITHM} over {shown}: {stored}"

    @property
    def empty(self) -> bool:
        return self.counts is not None and self.counts[0] > 0 and self.counts[1] == 0

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # pytest exits 5 (NO_TESTS_COLLECTED) when nothing runs. For a shard that got none of
        # the selected tests that is expected, not an error; an empty selection stays 5.
        if self.empty and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.empty and self.counts is not None:
            terminalreporter.write_line(
                f"export shard {self.shard}: empty (all {self.counts[0]} selected tests are in other shards); exit 0"
            )


class ShardXdistHooks:
    """Hand the durations path to each worker, and collect the workers' counts on the controller."""

    def __init__(self, durations_path: str) -> None:
        self.durations_path = durations_path

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.durations_path

    def pytest_testnodedown(self, node: Any) -> None:
        counts = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        report = node.config.pluginmanager.get_plugin(REPORT_PLUGIN)
        if counts is not None and isinstance(report, ShardReport):
            report.counts = (int(counts[0]), int(counts[1]))
