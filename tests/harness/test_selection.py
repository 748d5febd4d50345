"""Selection precedence and errors, tested as pure code (no pytest run)."""

from __future__ import annotations

import pytest

from harness.selection import Selection, SelectionError, resolve_selection


def test_cli_beats_environment_and_ini() -> None:
    got = resolve_selection("strict", {"EXPORT_WRAPPER": "cpp_serdes"}, "serdes_strict")
    assert got == Selection("strict", "command-line option --export-wrapper")


def test_environment_beats_ini() -> None:
    got = resolve_selection(None, {"EXPORT_WRAPPER": "cpp_serdes"}, "serdes_strict")
    assert got == Selection("cpp_serdes", "environment variable EXPORT_WRAPPER")


def test_ini_is_last() -> None:
    assert resolve_selection(None, {}, "serdes_strict") == Selection("serdes_strict", "ini option export_wrapper")


def test_nothing_selected_means_no_patch() -> None:
    assert resolve_selection(None, {}, "") is None


@pytest.mark.parametrize(
    ("cli", "env", "source"),
    [("", {}, "--export-wrapper"), (None, {"EXPORT_WRAPPER": " "}, "EXPORT_WRAPPER")],
)
def test_empty_value_is_an_error_naming_its_source(cli: str | None, env: dict[str, str], source: str) -> None:
    with pytest.raises(SelectionError, match=f"{source} is set but empty"):
        resolve_selection(cli, env, "")
