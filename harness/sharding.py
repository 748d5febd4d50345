"""Duration-balanced shards of a run: ``--shard I/N`` (or ``$EXPORT_SHARD``) on top of pytest-split.

pytest-split does the splitting (its ``least_duration`` algorithm: longest test first, onto the
shard with the least time so far) and owns the durations file format. This module only:

- parses and validates the shard spec, naming the bad value and where it came from;
- points pytest-split at the active wrapper's durations file, ``durations/<wrapper>.json`` under
  the rootdir (wrappers change test times, so each has its own), and rejects a corrupt one;
- makes an empty shard (every selected test went to another shard) exit 0 instead of pytest's 5,
  while a selection that is empty before splitting (``-k`` matched nothing) still exits 5;
- hands the controller's decision to pytest-xdist workers, and keeps workers from writing the
  durations file (the controller sees every report and writes it once).

Tests missing from the durations file get pytest-split's estimate: the mean duration of the
selected tests that are in the file (1 s each when none are).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OPTION = "--shard"
ENV_VAR = "EXPORT_SHARD"
DURATIONS_DIR = "durations"
"""Under the rootdir; ``noxfile.py`` writes the same place (it stays importable without pytest)."""
ALGORITHM = "least_duration"
WORKERINPUT_KEY = "export_shard"
WORKEROUTPUT_KEY = "export_shard_counts"
HELP = (
    f"run only shard I of N (e.g. 2/4), balanced by the wrapper's stored test durations in "
    f"{DURATIONS_DIR}/<wrapper>.json (also ${ENV_VAR}; the option wins)"
)

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``, and where the spec came from (quoted in errors)."""

    index: int
    count: int
    source: str

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class ShardError(ValueError):
    """A shard spec or durations file that cannot be used; the text names the value and its source."""


def parse_shard(value: str, source: str) -> Shard:
    """Parse ``I/N`` with ``1 <= I <= N``."""
    match = _SPEC.fullmatch(value)
    if match is None:
        raise ShardError(f"{source} is {value!r}, not a shard spec I/N (e.g. 2/4: the second of four shards)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ShardError(f"{source} is {value!r}: the number of shards N must be at least 1")
    if not 1 <= index <= count:
        raise ShardError(f"{source} is {value!r}: the shard I must be between 1 and N={count}")
    return Shard(index, count, source)


def resolve_shard(cli_value: str | None, environ: Mapping[str, str]) -> Shard | None:
    """The command-line option, else the environment variable, else no sharding.

    An explicitly empty value is an error, not "no sharding": a CI job that sets
    ``EXPORT_SHARD=$UNSET_VAR`` must not silently run every test in every shard.
    """
    candidates = (
        (cli_value, f"command-line option {OPTION}"),
        (environ.get(ENV_VAR), f"environment variable {ENV_VAR}"),
    )
    for value, source in candidates:
        if value is not None:
            return parse_shard(value, source)
    return None


def durations_file(root: Path, wrapper: str) -> Path:
    """Where the stored durations of ``wrapper``'s run live."""
    return root / DURATIONS_DIR / f"{wrapper}.json"


def load_durations(path: Path) -> dict[str, float]:
    """Read a pytest-split durations file; a missing file is ``{}``, a corrupt one a ShardError naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ShardError(f"durations file {path} cannot be read: {exc}") from exc
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShardError(f"durations file {path} is not valid JSON ({exc}); {_REFRESH}") from exc
    if isinstance(data, list):  # pytest-split's older format: [[nodeid, seconds], ...]
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in data):
            raise ShardError(f"durations file {path} is a list but not of [test id, seconds] pairs; {_REFRESH}")
        data = dict(data)
    if not isinstance(data, dict):
        raise ShardError(f"durations file {path} holds a {type(data).__name__}, not {{test id: seconds}}; {_REFRESH}")
    bad = [key for key, seconds in data.items() if not _is_duration(seconds)]
    if bad:
        raise ShardError(f"durations file {path}: {bad[0]!r} has no duration in seconds; {_REFRESH}")
    return {str(key): float(seconds) for key, seconds in data.items()}


_REFRESH = "fix or delete it, then refresh it with `nox -s durations -- <wrapper>`"


def _is_duration(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class _TestId:
    """Enough of a pytest item for pytest-split's algorithms: a node id and the item's ``str``."""

    nodeid: str

    def __str__(self) -> str:  # what str(item) gives for a test function; pytest-split sorts on it
        return f"<Function {self.nodeid.rpartition('::')[2]}>"


def _groups(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[Any]:
    """pytest-split's ``least_duration`` groups for these test ids (the assignment a ``--shard`` run makes)."""
    from pytest_split.algorithms import Algorithms

    groups: list[Any] = Algorithms[ALGORITHM].value(count, [_TestId(t) for t in test_ids], dict(durations))
    return groups


def split(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[list[str]]:
    """The test ids of each shard, exactly as a ``--shard i/count`` run assigns them (same algorithm)."""
    return [[item.nodeid for item in group.selected] for group in _groups(test_ids, durations, count)]


def shard_seconds(test_ids: Sequence[str], durations: Mapping[str, float], count: int) -> list[float]:
    """Estimated seconds of each shard (missing tests at the mean, as pytest-split counts them)."""
    return [group.duration for group in _groups(test_ids, durations, count)]


def imbalance(seconds: Sequence[float]) -> float:
    """Longest shard over mean shard: 1.0 is perfect balance."""
    mean = sum(seconds) / len(seconds)
    return max(seconds) / mean if mean > 0 else 1.0


# -- pytest side -------------------------------------------------------------------------------------------------


def addoption(group: Any) -> None:
    group.addoption(OPTION, dest="export_shard", default=None, metavar="I/N", help=HELP)


def configure(config: pytest.Config, wrapper: str | None) -> None:
    """Set pytest-split's options from the shard spec; call from ``pytest_cmdline_main``, before configure.

    pytest-split reads ``config.option`` in its ``pytest_configure``, so setting them here
    is enough, on the controller and (from ``workerinput``) on every xdist worker.
    """
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        # An xdist worker: the controller resolved and validated everything. It alone stores
        # durations, since only it sees every test's report.
        config.option.store_durations = False
        handed: dict[str, Any] | None = workerinput.get(WORKERINPUT_KEY)
        if handed is not None:
            _apply(config, Shard(handed["index"], handed["count"], "the xdist controller"), handed["durations_path"])
        return
    try:
        shard = resolve_shard(config.getoption("export_shard"), os.environ)
        if not hasattr(config.option, "splits"):
            if shard is not None:
                raise ShardError(f"{shard.source} needs the pytest-split plugin (pip install pytest-split)")
            return
        if shard is not None and (config.option.splits is not None or config.option.group is not None):
            raise ShardError(f"{shard.source} and pytest-split's --splits/--group both ask for a shard; use one")
        path = Path(config.option.durations_path)
        named = path != config.invocation_params.dir / ".test_durations"  # --durations-path was given
        if wrapper is not None and not named:
            path = durations_file(config.rootpath, wrapper)
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
        config.pluginmanager.register(ShardReport(shard, path, len(durations)), "export-harness-shard-report")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(ShardXdistHooks(shard, str(path)), "export-harness-shard-xdist")


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
        report = self.config.pluginmanager.get_plugin("export-harness-shard-report")
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
    """Hand the shard to each worker, and collect the workers' counts on the controller."""

    def __init__(self, shard: Shard, durations_path: str) -> None:
        self.shard = shard
        self.durations_path = durations_path

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = {
            "index": self.shard.index,
            "count": self.shard.count,
            "durations_path": self.durations_path,
        }

    def pytest_testnodedown(self, node: Any) -> None:
        counts = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        report = node.config.pluginmanager.get_plugin("export-harness-shard-report")
        if counts is not None and isinstance(report, ShardReport):
            report.counts = (int(counts[0]), int(counts[1]))
