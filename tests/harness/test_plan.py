"""The run plan: precedence CLI -> environment -> ini, sources in errors, the xdist hand-over (pure code)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from harness.errors import UnknownWrapperError
from harness.plan import PlanError, RunPlan, Setting, compat_setting, resolve, wrapper_setting
from harness.sharding import Shard
from harness.wrappers import BUILTIN_WRAPPERS


def plan(
    cli: str | None = None,
    env: Mapping[str, str] | None = None,
    ini: str = "",
    compat: bool = False,
    shard: str | None = None,
    ini_compat: bool = False,
) -> RunPlan:
    return resolve(
        cli_wrapper=cli, cli_compat=compat, cli_shard=shard, environ=env or {}, ini_wrapper=ini, ini_compat=ini_compat
    )


def test_cli_beats_environment_and_ini() -> None:
    got = wrapper_setting("strict", {"EXPORT_WRAPPER": "cpp_serdes"}, "serdes_strict")
    assert got == Setting("strict", "command-line option --export-wrapper")


def test_environment_beats_ini() -> None:
    got = wrapper_setting(None, {"EXPORT_WRAPPER": "cpp_serdes"}, "serdes_strict")
    assert got == Setting("cpp_serdes", "environment variable EXPORT_WRAPPER")


def test_ini_is_last() -> None:
    assert wrapper_setting(None, {}, "serdes_strict") == Setting("serdes_strict", "ini option export_wrapper")


def test_nothing_selected_means_no_patch() -> None:
    got = plan()
    assert not got.wrapped and got.run_name is None and got.names == ()


@pytest.mark.parametrize(
    ("cli", "env", "source"),
    [("", {}, "--export-wrapper"), (None, {"EXPORT_WRAPPER": " "}, "EXPORT_WRAPPER")],
)
def test_empty_value_is_an_error_naming_its_source(cli: str | None, env: dict[str, str], source: str) -> None:
    with pytest.raises(PlanError, match=f"{source} is set but empty"):
        plan(cli, env)


def test_one_wrapper_names_the_run() -> None:
    got = plan("cpp_serdes")
    assert got.names == ("cpp_serdes",) and not got.matrix and got.run_name == "cpp_serdes"
    assert got.wrappers is not None and got.wrappers.source == "command-line option --export-wrapper"


def test_all_and_lists_are_matrix_runs() -> None:
    assert plan("all").names == tuple(w.name for w in BUILTIN_WRAPPERS)
    assert plan("all").run_name == "matrix"
    # a one-element list is still a matrix run: its test ids carry the wrapper
    assert plan("strict,").matrix and plan("strict,").names == ("strict",)


def test_unknown_wrapper_names_the_source() -> None:
    with pytest.raises(UnknownWrapperError, match=r"'nope' \(from environment variable EXPORT_WRAPPER\)"):
        plan(env={"EXPORT_WRAPPER": "strict,nope"})


def test_compat_precedence_and_bad_boolean() -> None:
    assert compat_setting(True, {"EXPORT_PYTORCH_COMPAT": "0"}, False).value is True
    assert compat_setting(False, {"EXPORT_PYTORCH_COMPAT": "0"}, True) == Setting(
        False, "environment variable EXPORT_PYTORCH_COMPAT"
    )
    assert compat_setting(False, {}, True) == Setting(True, "ini option export_pytorch_compat")
    with pytest.raises(PlanError, match="EXPORT_PYTORCH_COMPAT='maybe' is not a boolean"):
        compat_setting(False, {"EXPORT_PYTORCH_COMPAT": "maybe"}, False)


def test_compat_and_matrix_do_not_mix() -> None:
    with pytest.raises(PlanError, match="--pytorch-compat cannot be combined with matrix mode"):
        plan("all", compat=True)


def test_shard_is_part_of_the_plan_with_its_source() -> None:
    assert plan("strict", shard="2/4").shard == Shard(2, 4, "command-line option --shard")
    with pytest.raises(PlanError, match="environment variable EXPORT_SHARD is '5/4'"):
        plan("strict", env={"EXPORT_SHARD": "5/4"})


def test_workers_get_the_same_plan() -> None:
    original = plan("serdes_strict,cpp_serdes", shard="1/2")
    again = RunPlan.from_workerinput(original.to_workerinput())
    assert (again.names, again.matrix, again.compat.value, again.run_name) == (
        original.names,
        True,
        False,
        "matrix",
    )
    assert again.shard is not None and (again.shard.index, again.shard.count) == (1, 2)
    assert again.wrappers is not None and again.wrappers.source == "the xdist controller"
    unwrapped = RunPlan.from_workerinput(plan().to_workerinput())
    assert not unwrapped.wrapped
