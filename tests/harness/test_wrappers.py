"""Each built-in wrapper, called directly (no patch): it transforms, or fails naming its stage."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.export
from torch.utils import _pytree as pytree

from harness.errors import ExportWrapperError
from harness.patching import bind
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper, positional_dynamic_shapes

WRAPPERS = {w.name: w for w in BUILTIN_WRAPPERS}


class Counter(torch.nn.Module):
    calls: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        out: torch.Tensor = self.lin(x).relu()
        return out


def _bind(wrapper: Wrapper) -> tuple[Any, list[str | None]]:
    outcomes: list[str | None] = []
    return bind(wrapper, torch.export.export, outcomes.append), outcomes


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_wrapper_returns_a_working_program_and_records_success(name: str) -> None:
    export, outcomes = _bind(WRAPPERS[name])
    module, x = Counter(), torch.randn(2, 4)
    before_state = copy.deepcopy(module.state_dict())
    before_x = x.clone()
    ep = export(module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    assert isinstance(ep, torch.export.ExportedProgram)
    assert outcomes == [None]
    # The wrapper must not touch the example inputs or the module's state.
    torch.testing.assert_close(x, before_x)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before_state[key])
    fresh = torch.randn(5, 4)
    torch.testing.assert_close(ep.module()(fresh), Counter.forward(copy.deepcopy(module), fresh))


def test_serdes_returns_a_different_program_object() -> None:
    export, _ = _bind(WRAPPERS["serdes_strict"])
    module = Counter()
    ep = export(module, (torch.randn(2, 4),))
    # Round-tripped state is a copy, not the module's own tensors.
    assert ep.state_dict["lin.weight"].data_ptr() != module.lin.weight.data_ptr()


@pytest.mark.parametrize(
    ("name", "strict"),
    [
        ("strict", True),
        ("serdes_strict", True),
        ("non_strict", False),
        ("strict_v2", True),
        ("inline_and_install_strict", True),
    ],
)
def test_strict_default_and_caller_override(name: str, strict: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def spy(mod: Any, args: Any, kwargs: Any = None, **options: Any) -> Any:
        seen.append(options.get("strict", False))
        return torch.export.export(mod, args, kwargs, **options)

    wrapper = WRAPPERS[name]
    bind(wrapper, spy, lambda _: None)(Counter(), (torch.randn(2, 4),))
    bind(wrapper, spy, lambda _: None)(Counter(), (torch.randn(2, 4),), strict=False)
    assert seen == [strict, False]


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_strictness_tag_says_what_the_first_export_does(name: str) -> None:
    seen: list[Any] = []

    def spy(mod: Any, args: Any, kwargs: Any = None, **options: Any) -> Any:
        seen.append(options.get("strict", False))
        raise RuntimeError("stop after the first export")

    with pytest.raises(RuntimeError):
        bind(WRAPPERS[name], spy, lambda _: None)(Counter(), (torch.randn(2, 4),))
    assert seen == ["strict" in WRAPPERS[name].tags]


@pytest.mark.parametrize(
    ("name", "module", "settings"),
    [
        ("strict_v2", "torch._export.config", {"use_legacy_dynamo_graph_capture": False}),
        ("inline_and_install_strict", "torch._dynamo.config", {"install_free_tensors": True}),
    ],
)
def test_config_wrappers_patch_during_export_and_restore_after(
    name: str, module: str, settings: dict[str, Any]
) -> None:
    import importlib

    config = importlib.import_module(module)
    before = {key: getattr(config, key) for key in settings}
    seen: list[dict[str, Any]] = []

    def spy(mod: Any, args: Any, kwargs: Any = None, **options: Any) -> Any:
        seen.append({key: getattr(config, key) for key in settings})
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        bind(WRAPPERS[name], spy, lambda _: None)(Counter(), (torch.randn(2, 4),))
    assert seen == [settings]
    assert {key: getattr(config, key) for key in settings} == before


def test_config_wrapper_names_a_missing_setting() -> None:
    from harness.wrappers import Wrapper, _unchanged, as_called, under_config

    wrapper = Wrapper(
        "odd",
        "patches a setting torch lacks",
        under_config(as_called(_unchanged), "torch._export.config", no_such_setting=True),
    )
    with pytest.raises(ExportWrapperError) as info:
        bind(wrapper, torch.export.export, lambda _: None)(Counter(), (torch.randn(2, 4),))
    assert info.value.stage == "configure" and "no_such_setting" in str(info.value.__cause__)


def test_retrace_receives_positional_dynamic_shapes() -> None:
    class TwoInputs(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor, *, z: torch.Tensor) -> torch.Tensor:
            return x + y + z

    batch = torch.export.Dim("batch")
    args = (torch.randn(2, 3), torch.randn(2, 3))
    shapes = {"z": {0: batch}, "x": {0: batch}, "y": None}
    assert positional_dynamic_shapes(TwoInputs(), args, {"z": args[0]}, shapes) == ({0: batch}, None, {0: batch})
    assert positional_dynamic_shapes(TwoInputs(), args, None, ({0: batch},)) == ({0: batch},)


@dataclass
class Point:
    x: torch.Tensor
    y: torch.Tensor


class Unnamed:
    """A pytree node registered without serialized_type_name: serialization must fail loudly."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b


pytree.register_pytree_node(
    Unnamed,
    lambda n: ([n.a, n.b], None),
    lambda children, _: Unnamed(*children),
    flatten_with_keys_fn=lambda n: ([(pytree.GetAttrKey("a"), n.a), (pytree.GetAttrKey("b"), n.b)], None),
)


class TakesUnnamed(torch.nn.Module):
    def forward(self, node: Unnamed) -> torch.Tensor:
        return node.a * node.b


@pytest.mark.parametrize(("name", "stage"), [("cpp_serdes", "serialize"), ("serdes_non_strict", "serialize")])
def test_no_silent_fallback_when_serialization_fails(name: str, stage: str) -> None:
    export, outcomes = _bind(WRAPPERS[name])
    with pytest.raises(ExportWrapperError) as info:
        export(TakesUnnamed(), (Unnamed(torch.randn(3), torch.randn(3)),))
    error = info.value
    assert (error.wrapper, error.stage) == (name, stage)
    assert f"export wrapper {name!r} failed at stage {stage!r}" in "\n".join(error.__notes__)
    assert error.__cause__ is not None and "serialized_type_name" in str(error.__cause__)
    # torch's own type and message are kept, so a test expecting them still sees them
    assert isinstance(error, type(error.__cause__)) and str(error) == str(error.__cause__)
    assert outcomes == [stage]


def test_a_later_stage_keeps_torchs_error_type_and_names_wrapper_and_stage() -> None:
    from torch._dynamo.exc import UserError, UserErrorType

    def broken_stage(call: Any, program: Any) -> Any:
        with call.stage("retrace"):
            raise UserError(UserErrorType.INVALID_INPUT, "dynamic_shapes does not match the inputs")

    from harness.wrappers import as_called

    export, outcomes = _bind(Wrapper("broken", "a stage that raises torch's UserError", as_called(broken_stage)))
    with pytest.raises(UserError, match="does not match") as info:
        export(Counter(), (torch.randn(2, 4),))
    error = info.value
    assert isinstance(error, ExportWrapperError) and (error.wrapper, error.stage) == ("broken", "retrace")
    assert error.error_type is UserErrorType.INVALID_INPUT and type(error).__name__ == "UserError"
    assert isinstance(error.__cause__, UserError) and not isinstance(error.__cause__, ExportWrapperError)
    assert outcomes == ["retrace"]


def test_first_export_errors_pass_through_unchanged() -> None:
    class DataDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent Python control flow
                return x
            return -x

    export, outcomes = _bind(WRAPPERS["cpp_serdes"])
    with pytest.raises(Exception) as info:
        export(DataDependent(), (torch.randn(3),))
    assert not isinstance(info.value, ExportWrapperError)
    assert outcomes == ["export"]


@pytest.mark.parametrize("name", ["strict", "retrace_non_strict"])
def test_timer_gets_first_export_and_whole_call_seconds_of_transformed_programs(name: str) -> None:
    timings: list[tuple[float, float]] = []
    export = bind(WRAPPERS[name], torch.export.export, lambda _: None, timings.append)
    export(Counter(), (torch.randn(2, 4),))
    with pytest.raises(Exception):  # noqa: B017 (torch's own error type; a failed program is not timed)
        export(Counter(), (torch.randn(2, 5),))
    [(first, whole)] = timings
    assert 0 < first <= whole
