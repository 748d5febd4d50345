"""The wrapper registry: exact built-in names, lookup errors, entry-point wrappers."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from harness import registry
from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper, as_called

BUILTIN_NAMES = [
    "non_strict",
    "strict",
    "serdes_strict",
    "serdes_non_strict",
    "cpp_serdes",
    "retrace_strict",
    "retrace_non_strict",
    "run_decomp_strict",
    "run_decomp_non_strict",
    "strict_v2",
    "inline_and_install_strict",
]

PYTORCH_ATTRIBUTES = {
    "non_strict": "_expected_failure_non_strict",
    "strict": "_expected_failure_strict",
    "serdes_strict": "_expected_failure_serdes",
    "serdes_non_strict": "_expected_failure_serdes_non_strict",
    "cpp_serdes": "_expected_failure_cpp_serdes",
    "retrace_strict": "_expected_failure_retrace",
    "retrace_non_strict": "_expected_failure_retrace_non_strict",
    "run_decomp_strict": "_expected_failure_training_ir_to_run_decomp",
    "run_decomp_non_strict": "_expected_failure_training_ir_to_run_decomp_non_strict",
    "strict_v2": "_expected_failure_strict_v2",
    "inline_and_install_strict": "_expected_failure_inline_and_install",
}

PLUGIN_WRAPPER = Wrapper("my_backend", "a backend's own transform", as_called(lambda call, ep: ep))


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry.available_wrappers.cache_clear()
    yield
    registry.available_wrappers.cache_clear()


def _entry_points(*points: EntryPoint) -> object:
    return lambda group: [p for p in points if p.group == group]


def test_builtin_names_are_exactly_the_documented_ones() -> None:
    assert [w.name for w in BUILTIN_WRAPPERS] == BUILTIN_NAMES


def test_every_builtin_has_a_one_line_description() -> None:
    for wrapper in BUILTIN_WRAPPERS:
        assert wrapper.description and "\n" not in wrapper.description


def test_pytorch_expected_failure_attributes_map_one_to_one() -> None:
    assert {w.name: w.pytorch_xfail_attr for w in BUILTIN_WRAPPERS} == PYTORCH_ATTRIBUTES


def test_every_builtin_is_tagged_strict_or_non_strict() -> None:
    for wrapper in BUILTIN_WRAPPERS:
        assert ("strict" in wrapper.tags) != ("non_strict" in wrapper.tags), wrapper.name


def test_unknown_name_lists_valid_names_and_source() -> None:
    with pytest.raises(UnknownWrapperError) as info:
        registry.get_wrapper("nope", "environment variable EXPORT_WRAPPER")
    message = str(info.value)
    assert "'nope'" in message and "environment variable EXPORT_WRAPPER" in message
    for name in BUILTIN_NAMES:
        assert name in message


def test_entry_point_wrapper_is_available(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("my_backend", f"{__name__}:PLUGIN_WRAPPER", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(point))
    assert registry.get_wrapper("my_backend") is PLUGIN_WRAPPER
    assert list(registry.available_wrappers())[: len(BUILTIN_NAMES)] == BUILTIN_NAMES


@pytest.mark.parametrize(
    ("value", "name", "message"),
    [
        ("no_such_module_here:W", "broken", "failed to import: ModuleNotFoundError"),
        (f"{__name__}:BUILTIN_NAMES", "a_list", "is a list, not a harness.Wrapper"),
        (f"{__name__}:PLUGIN_WRAPPER", "other_name", "holds a wrapper named 'my_backend'"),
    ],
)
def test_bad_entry_point_is_a_clear_error(
    fresh_registry: None, monkeypatch: pytest.MonkeyPatch, value: str, name: str, message: str
) -> None:
    point = EntryPoint(name, value, registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(point))
    with pytest.raises(WrapperPluginError, match=message) as info:
        registry.available_wrappers()
    assert f"entry point {name!r}" in str(info.value)
