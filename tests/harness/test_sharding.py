"""Sharding (``--shard I/N`` over pytest-split): the pure parts directly, the plugin through pytester subprocesses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_split.algorithms import Algorithms

from harness import sharding
from harness.sharding import Shard, ShardError, load_durations, parse_shard, resolve_shard

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- the shard spec --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "index", "count"), [("1/1", 1, 1), ("2/4", 2, 4), (" 8 / 8 ", 8, 8)])
def test_parse_shard(value: str, index: int, count: int) -> None:
    assert parse_shard(value, "here") == Shard(index, count, "here")


@pytest.mark.parametrize("value", ["0/4", "5/4", "x", "1/0", "0/0", "", "1/", "/4", "-1/4", "1.5/4", "1/4/2"])
def test_bad_shard_spec_names_the_value_and_its_source(value: str) -> None:
    with pytest.raises(ShardError) as excinfo:
        parse_shard(value, "the place")
    assert repr(value) in str(excinfo.value)
    assert "the place" in str(excinfo.value)


def test_resolve_shard_command_line_then_environment() -> None:
    env = {sharding.ENV_VAR: "3/4"}
    assert resolve_shard("1/2", env) == Shard(1, 2, f"command-line option {sharding.OPTION}")
    assert resolve_shard(None, env) == Shard(3, 4, f"environment variable {sharding.ENV_VAR}")
    assert resolve_shard(None, {}) is None
    with pytest.raises(ShardError, match=f"environment variable {sharding.ENV_VAR} is ''"):
        resolve_shard(None, {sharding.ENV_VAR: ""})


# -- the durations file ----------------------------------------------------------------------------------------


def test_missing_durations_file_is_empty(tmp_path: Path) -> None:
    assert load_durations(tmp_path / "nothing.json") == {}


def test_durations_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a.py::t": 1.5, "a.py::u": 0}))
    assert load_durations(path) == {"a.py::t": 1.5, "a.py::u": 0.0}
    path.write_text(json.dumps([["a.py::t", 2.0]]))  # pytest-split's older list format
    assert load_durations(path) == {"a.py::t": 2.0}


@pytest.mark.parametrize("text", ['{"a.py::t": ', "3", '{"a.py::t": "slow"}', '{"a.py::t": -1}', '[["a.py::t"]]'])
def test_corrupt_durations_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text(text)
    with pytest.raises(ShardError, match=re.escape(str(path))):
        load_durations(path)


# -- complete and disjoint: a property of pytest-split's algorithm, which --shard runs -------------------------


class FakeItem:
    """What pytest-split's algorithms read from an item: ``nodeid`` and ``str(item)``."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def __str__(self) -> str:
        return f"<Function {self.nodeid.rpartition('::')[2]}>"


# Test ids like pytest's, with name clashes across files (ties in pytest-split's sort by str(item)).
test_ids = st.lists(
    st.builds(
        lambda file, name, param: f"tests/{file}.py::{name}{param}",
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["test_x", "test_y", "test_z"]),
        st.one_of(st.just(""), st.integers(0, 50).map(lambda i: f"[{i}]")),
    ),
    unique=True,
    max_size=60,
)
seconds = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def suites(draw: st.DrawFn) -> tuple[list[str], dict[str, float], int]:
    """Test ids, durations for some of them (plus tests that no longer exist), and N in 1..len(ids)."""
    ids = draw(test_ids)
    known = draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]))
    stale = draw(st.dictionaries(st.text(min_size=1, max_size=8).map(lambda s: f"gone.py::{s}"), seconds, max_size=5))
    durations = {**{i: draw(seconds) for i in known}, **stale}
    count = draw(st.integers(1, max(1, len(ids))))
    return ids, durations, count


@settings(max_examples=200, deadline=None)
@given(suites())
def test_least_duration_shards_are_complete_and_disjoint(suite: tuple[list[str], dict[str, float], int]) -> None:
    ids, durations, count = suite
    items = [FakeItem(i) for i in ids]
    groups = Algorithms[sharding.ALGORITHM].value(count, items, durations)
    assert len(groups) == count
    selected = [item for group in groups for item in group.selected]
    assert sorted(id(item) for item in selected) == sorted(id(item) for item in items)  # each test exactly once
    for group in groups:
        assert {id(item) for item in group.deselected} == {id(item) for item in items} - {
            id(item) for item in group.selected
        }
        order = [ids.index(item.nodeid) for item in group.selected]
        assert order == sorted(order)  # collection order kept within a shard
    # the same input splits the same way in every process (each shard is a separate run)
    again = Algorithms[sharding.ALGORITHM].value(count, [FakeItem(i) for i in ids], dict(durations))
    assert [[i.nodeid for i in g.selected] for g in again] == [[i.nodeid for i in g.selected] for g in groups]


@settings(max_examples=200, deadline=None)
@given(suites())
def test_split_helper_matches_and_balances(suite: tuple[list[str], dict[str, float], int]) -> None:
    """``sharding.split`` (used by `python -m harness.sharding`) is the same partition, within the greedy bound."""
    ids, durations, count = suite
    shards = sharding.split(ids, durations, count)
    assert sorted(i for shard in shards for i in shard) == sorted(ids)
    groups = Algorithms[sharding.ALGORITHM].value(count, [FakeItem(i) for i in ids], durations)
    assert shards == [[item.nodeid for item in g.selected] for g in groups]
    seconds = sharding.shard_seconds(ids, durations, count)
    if ids:
        # Longest-first greedy: no shard exceeds the mean by more than the longest test.
        relevant = {i: durations[i] for i in ids if i in durations}
        mean_known = sum(relevant.values()) / len(relevant) if relevant else 1.0
        each = [relevant.get(i, mean_known) for i in ids]
        assert max(seconds) <= sum(each) / count + max(each) + 1e-6 * (1 + sum(each))


def test_imbalance() -> None:
    assert sharding.imbalance([2.0, 2.0]) == 1.0
    assert sharding.imbalance([3.0, 1.0]) == 1.5
    assert sharding.imbalance([0.0, 0.0]) == 1.0


# -- the plugin, for real -------------------------------------------------------------------------------------

SUITE_A = """
    import pytest

    @pytest.mark.parametrize("i", range(9))
    def test_x(i):
        pass

    def test_y():
        pass

    @pytest.mark.xfail(reason="known", strict=True)
    def test_known_break():
        raise ValueError("known")
"""
SUITE_B = """
    import unittest

    def test_x():
        pass

    def test_fails():
        assert False, "a real failure"

    class TestCase(unittest.TestCase):
        def test_x(self):
            pass

        def test_y(self):
            pass
"""
OUTCOME_LINE = re.compile(r"^(PASSED|FAILED|XFAIL|XPASS|ERROR) (\S+::\S+)")


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper and no shard chosen by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    monkeypatch.delenv(sharding.ENV_VAR, raising=False)
    return pytester


def run(tester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args)


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Test id -> outcome, from the -rA short summary (the same lines with and without xdist)."""
    found: dict[str, str] = {}
    for line in result.outlines:
        match = OUTCOME_LINE.match(line)
        if match:
            assert match[2] not in found, f"{match[2]} reported twice"
            found[match[2]] = match[1]
    return found


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_shards_are_complete_and_disjoint_end_to_end(tester: pytest.Pytester, workers: list[str]) -> None:
    tester.makepyfile(test_a=SUITE_A, test_b=SUITE_B)
    # Durations for some tests only, one of them stale: the rest are estimated at the mean.
    known = {"test_a.py::test_x[0]": 5.0, "test_a.py::test_x[1]": 3.0, "test_b.py::test_x": 2.0, "gone.py::t": 9}
    tester.path.joinpath(".test_durations").write_text(json.dumps(known))
    keyword = ["-k", "not test_y"]
    full = outcomes(run(tester, *keyword))
    assert len(full) == 13 and full["test_b.py::test_fails"] == "FAILED"
    assert full["test_a.py::test_known_break"] == "XFAIL"
    shards = []
    for index in (1, 2, 3):
        result = run(tester, *keyword, "--shard", f"{index}/3", *workers)
        shard = outcomes(result)
        assert shard, f"shard {index}/3 ran nothing"
        assert result.ret == (1 if "test_b.py::test_fails" in shard else 0)
        shards.append(shard)
    for i, first in enumerate(shards):
        for second in shards[i + 1 :]:
            assert not first.keys() & second.keys()
    assert {k: v for shard in shards for k, v in shard.items()} == full


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_empty_shard_exits_zero(tester: pytest.Pytester, workers: list[str]) -> None:
    tester.makepyfile("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result = run(tester, "--shard", "3/3", *workers)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*export shard 3/3: empty (all 2 selected tests are in other shards); exit 0*"])


def test_empty_selection_is_still_no_tests_collected(tester: pytest.Pytester) -> None:
    """-k that matches nothing fails a sharded run as it fails a plain one: only an empty *shard* is fine."""
    tester.makepyfile("def test_one():\n    pass\n")
    assert run(tester, "--shard", "1/3", "-k", "no_such_test").ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--shard", "0/4"], None, "command-line option --shard is '0/4'*between 1 and N=4*"),
        (["--shard", "x"], None, "command-line option --shard is 'x', not a shard spec I/N*"),
        ([], "5/4", "environment variable EXPORT_SHARD is '5/4'*between 1 and N=4*"),
    ],
)
def test_bad_shard_spec_is_a_usage_error(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: str | None, message: str
) -> None:
    tester.makepyfile("def test_never_runs():\n    raise SystemExit('a test ran')\n")
    if env is not None:
        monkeypatch.setenv(sharding.ENV_VAR, env)
    result = run(tester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "a test ran" not in result.stdout.str() + result.stderr.str()


def test_wrapper_durations_file_is_used_and_a_corrupt_one_is_a_usage_error(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_pair="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    durations = tester.path / "durations" / "strict.json"
    durations.parent.mkdir()
    durations.write_text(json.dumps({"test_pair.py::test_one": 1.0}))
    result = run(tester, "--export-wrapper", "strict", "--shard", "1/2")
    result.stdout.fnmatch_lines(
        ["export shard: 1/2 (command-line option --shard), least_duration over durations/strict.json: 1 stored*"]
    )
    result.assert_outcomes(passed=1)
    durations.write_text("{not json")
    result = run(tester, "--export-wrapper", "strict", "--shard", "1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: durations file {durations} is not valid JSON*"])


def test_store_durations_under_xdist_writes_every_test_once(tester: pytest.Pytester) -> None:
    """What `nox -s durations` runs: the controller writes durations/<wrapper>.json, workers do not."""
    tester.makepyfile(**{f"test_{n}": "def test_a():\n    pass\n\ndef test_b():\n    pass\n" for n in "pq"})
    result = run(tester, "--export-wrapper", "strict", "--store-durations", "-n", "2")
    result.assert_outcomes(passed=4)
    stored: dict[str, Any] = json.loads((tester.path / "durations" / "strict.json").read_text())
    assert sorted(stored) == [f"test_{n}.py::test_{t}" for n in "pq" for t in "ab"]


# -- the balance table: python -m harness.sharding ---------------------------------------------------------------


def test_balance_table_and_goal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "strict.json").write_text(json.dumps({f"t.py::test_{i}": float(i % 3 + 1) for i in range(12)}))
    assert sharding.main(["--durations-dir", str(tmp_path), "--shards", "2", "--goal", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "| `strict` | 12 | 24.0 | 3.0 | 1.000 (12.0 s) |" in out
    assert "goal <= 1.50: met" in out
    assert sharding.main(["missing", "--durations-dir", str(tmp_path)]) == 2
    assert "no durations in" in capsys.readouterr().err
