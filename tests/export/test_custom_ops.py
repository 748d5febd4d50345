"""Custom operators (``torch.library.custom_op`` with ``register_fake``) inside exported programs.

Covers ops with several inputs and outputs, ops returning lists of tensors, ops taking
int/float/bool/str/dtype/optional/list arguments, mutable ops (``mutates_args=``), ops inside
modules with parameters, and all of that under dynamic shapes. Every op lives in the
``export_suite_ops`` namespace and is registered once, when this module is imported, so it exists
in every worker and again when a serialized program is loaded back in the same process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.export import Dim

from tests.export.helpers import (
    LEGACY_STRICT_WRAPPERS,
    bounds,
    check_export,
    decomposes,
    input_kinds,
    op_targets,
    output_kinds,
    randn,
)

NS = "export_suite_ops"

INT_RETURN_STRICT = (
    "torch 2.13 dynamo: a custom op whose schema returns int is rejected in strict mode by the legacy capture "
    "(Unsupported 'torch.* op returned non-Tensor', export); strict_v2's new capture path accepts it"
)
INT_RETURN_STRICT_MATCH = r"torch\.\* op returned non-Tensor"


def _target(name: str) -> str:
    """The op_targets entry of ``export_suite_ops::name``."""
    return f"{NS}.{name}.default"


# --- the ops ------------------------------------------------------------------------------------------------------


@torch.library.custom_op(f"{NS}::scale_add", mutates_args=())
def scale_add(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    return x + alpha * y


@scale_add.register_fake
def _(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op(f"{NS}::repeat_rows", mutates_args=())
def repeat_rows(x: torch.Tensor, times: int) -> torch.Tensor:
    return x.repeat(times, 1)


@repeat_rows.register_fake
def _(x: torch.Tensor, times: int) -> torch.Tensor:
    return x.new_empty(x.shape[0] * times, x.shape[1])


@torch.library.custom_op(f"{NS}::gate", mutates_args=())
def gate(x: torch.Tensor, open: bool) -> torch.Tensor:
    return x.relu() if open else x.clone().zero_()


@gate.register_fake
def _(x: torch.Tensor, open: bool) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op(f"{NS}::soft_clamp", mutates_args=())
def soft_clamp(x: torch.Tensor, lo: float | None = None, hi: float | None = None) -> torch.Tensor:
    return x.clamp(min=lo, max=hi) if (lo is not None or hi is not None) else x.clone()


@soft_clamp.register_fake
def _(x: torch.Tensor, lo: float | None = None, hi: float | None = None) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op(f"{NS}::affine", mutates_args=())
def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = x @ weight.T
    return y if bias is None else y + bias


@affine.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


@torch.library.custom_op(f"{NS}::transform", mutates_args=())
def transform(x: torch.Tensor, mode: str, dtype: torch.dtype) -> torch.Tensor:
    y = {"abs": x.abs, "neg": x.neg, "square": x.square}[mode]()
    return y.to(dtype)


@transform.register_fake
def _(x: torch.Tensor, mode: str, dtype: torch.dtype) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=dtype)


@torch.library.custom_op(f"{NS}::reduce_dims", mutates_args=())
def reduce_dims(x: torch.Tensor, dims: list[int], *, keepdim: bool = False) -> torch.Tensor:
    return x.sum(dim=dims, keepdim=keepdim)


@reduce_dims.register_fake
def _(x: torch.Tensor, dims: list[int], *, keepdim: bool = False) -> torch.Tensor:
    return x.sum(dim=dims, keepdim=keepdim)


@torch.library.custom_op(f"{NS}::weighted_sum", mutates_args=())
def weighted_sum(xs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    return sum((w * x for x, w in zip(xs, weights, strict=True)), torch.zeros_like(xs[0]))


@weighted_sum.register_fake
def _(xs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    return torch.empty_like(xs[0])


@torch.library.custom_op(f"{NS}::moments", mutates_args=())
def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=-1), x.var(dim=-1)


@moments.register_fake
def _(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape[:-1]), x.new_empty(x.shape[:-1])


@torch.library.custom_op(f"{NS}::split_rows", mutates_args=())
def split_rows(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    return [chunk.clone() for chunk in x.chunk(parts, dim=1)]


@split_rows.register_fake
def _(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    return [chunk.new_empty(chunk.shape) for chunk in x.chunk(parts, dim=1)]


@torch.library.custom_op(f"{NS}::total", mutates_args=())
def total(x: torch.Tensor) -> torch.Tensor:
    return x.sum()


@total.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(())


@torch.library.custom_op(f"{NS}::positives", mutates_args=())
def positives(x: torch.Tensor) -> torch.Tensor:
    return x[x > 0].clone()


@positives.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(torch.library.get_ctx().new_dynamic_size())


@torch.library.custom_op(f"{NS}::accumulate_", mutates_args=("acc",))
def accumulate_(acc: torch.Tensor, x: torch.Tensor) -> None:
    acc.add_(x)


@accumulate_.register_fake
def _(acc: torch.Tensor, x: torch.Tensor) -> None:
    return None


@torch.library.custom_op(f"{NS}::count_and_fill_", mutates_args=("counter", "out"))
def count_and_fill_(counter: torch.Tensor, out: torch.Tensor, value: float) -> torch.Tensor:
    counter.add_(1)
    out.fill_(value)
    return counter * value


@count_and_fill_.register_fake
def _(counter: torch.Tensor, out: torch.Tensor, value: float) -> torch.Tensor:
    return torch.empty_like(counter)


@torch.library.custom_op(f"{NS}::shape_len", mutates_args=())
def shape_len(x: torch.Tensor) -> int:
    return x.shape[0]


@shape_len.register_fake
def _(x: torch.Tensor) -> int:
    return x.shape[0]


@torch.library.custom_op(f"{NS}::smooth_abs", mutates_args=())
def smooth_abs(x: torch.Tensor, eps: float) -> torch.Tensor:
    return (x * x + eps).sqrt()


@smooth_abs.register_fake
def _(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.empty_like(x)


def _smooth_abs_setup(ctx: object, inputs: tuple[torch.Tensor, float], output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0], output)  # type: ignore[attr-defined]


def _smooth_abs_backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
    x, out = ctx.saved_tensors  # type: ignore[attr-defined]
    return grad * x / out, None


smooth_abs.register_autograd(_smooth_abs_backward, setup_context=_smooth_abs_setup)

# The low-level route: define a schema, then an implementation and a fake on the library.
_LIB = torch.library.Library(NS, "FRAGMENT")
_LIB.define("lerp_to(Tensor x, Tensor target, float weight) -> Tensor")


@torch.library.impl(f"{NS}::lerp_to", "CompositeExplicitAutograd", lib=_LIB)
def _lerp_to(x: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    return x + weight * (target - x)


@torch.library.register_fake(f"{NS}::lerp_to", lib=_LIB)
def _(x: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    return torch.empty_like(x)


# --- modules --------------------------------------------------------------------------------------------------------


class Call(torch.nn.Module):
    """forward(x) -> fn(x), with a named positional input that dynamic_shapes can address."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


class Call2(Call):
    """forward(x, y) -> fn(x, y)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Any:  # type: ignore[override]
        return self.fn(x, y)


class CustomLinear(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.randn(n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return affine(x, self.weight, self.bias)


class Accumulator(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("acc", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        accumulate_(self.acc, x)
        return self.acc * 2


def _assert_mutation(ep: torch.export.ExportedProgram, op: str, mutations: list[tuple[str, str | None]]) -> None:
    """Check how a mutable custom op is recorded.

    torch 2.13's training IR (what export returns) keeps the mutating op in the graph and lists no
    mutation outputs; ``run_decompositions`` functionalizes it into ``auto_functionalized_v2`` and
    lists each mutated buffer or input as a mutation output. So this one check depends on the wrapper.
    """
    targets, kinds = op_targets(ep), output_kinds(ep)
    if decomposes():
        assert "auto_functionalized_v2" in targets and _target(op) not in targets
        assert [spec for spec in kinds if spec[0] != "USER_OUTPUT"] == mutations
    else:
        assert _target(op) in targets
        assert {kind for kind, _ in kinds} == {"USER_OUTPUT"}


# --- scalar, optional, str, dtype and list arguments ---------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
def test_op_with_float_arg_appears_in_graph() -> None:
    ep = check_export(Call2(lambda x, y: scale_add(x, y, 0.25)), (randn(4), randn(4)), fresh=[(randn(4), randn(4))])
    assert _target("scale_add") in op_targets(ep)
    node = next(n for n in ep.graph.nodes if str(n.target) == _target("scale_add"))
    assert 0.25 in node.args or node.kwargs.get("alpha") == 0.25


def test_op_default_float_arg_omitted() -> None:
    ep = check_export(Call2(lambda x, y: scale_add(x, y)), (randn(4), randn(4)), fresh=[(randn(4), randn(4))])
    assert _target("scale_add") in op_targets(ep)


def test_op_with_int_arg() -> None:
    ep = check_export(Call(lambda x: repeat_rows(x, 3)), (randn(2, 3),), fresh=[(randn(2, 3),)])
    assert ep.module()(randn(2, 3)).shape == (6, 3)
    assert _target("repeat_rows") in op_targets(ep)


@pytest.mark.parametrize("open_", [True, False], ids=["open", "closed"])
def test_op_with_bool_arg(open_: bool) -> None:
    # A closed gate returns zeros whatever x is; "+ x" makes the program's output depend on its input.
    ep = check_export(Call(lambda x: gate(x, open_) * 3 + x), (randn(5),), fresh=[(randn(5),)])
    assert _target("gate") in op_targets(ep)


@pytest.mark.parametrize(
    ("lo", "hi"), [(None, None), (-0.5, None), (None, 0.5), (-0.2, 0.3)], ids=["neither", "lo", "hi", "both"]
)
def test_op_with_optional_float_args(lo: float | None, hi: float | None) -> None:
    ep = check_export(Call(lambda x: soft_clamp(x, lo, hi)), (randn(6),), fresh=[(randn(6),)])
    assert _target("soft_clamp") in op_targets(ep)


@pytest.mark.parametrize("mode", ["abs", "neg", "square"])
def test_op_with_str_and_dtype_args(mode: str) -> None:
    ep = check_export(Call(lambda x: transform(x, mode, torch.float64)), (randn(3),), fresh=[(randn(3),)])
    assert ep.module()(randn(3)).dtype == torch.float64
    assert _target("transform") in op_targets(ep)


@pytest.mark.parametrize("keepdim", [False, True], ids=["dropdims", "keepdims"])
def test_op_with_int_list_and_kwarg_only_args(keepdim: bool) -> None:
    ep = check_export(
        Call(lambda x: reduce_dims(x, [0, 2], keepdim=keepdim)), (randn(2, 3, 4),), fresh=[(randn(2, 3, 4),)]
    )
    assert ep.module()(randn(2, 3, 4)).shape == ((1, 3, 1) if keepdim else (3,))


def test_op_with_tensor_list_and_float_list_args() -> None:
    ep = check_export(
        Call2(lambda x, y: weighted_sum([x, y, x * y], [0.5, -1.0, 2.0])),
        (randn(3), randn(3)),
        fresh=[(randn(3), randn(3))],
    )
    assert _target("weighted_sum") in op_targets(ep)


def test_op_defined_with_library_define() -> None:
    ep = check_export(Call2(lambda x, y: torch.ops.export_suite_ops.lerp_to(x, y, 0.3)), (randn(4), randn(4)))
    assert _target("lerp_to") in op_targets(ep)


# --- several outputs ------------------------------------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
def test_op_with_two_outputs() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        mean, var = moments(x)
        return (x - mean[:, None]) / (var[:, None] + 1e-5).sqrt()

    ep = check_export(Call(fn), (randn(3, 5),), fresh=[(randn(3, 5),)])
    assert _target("moments") in op_targets(ep)


@pytest.mark.golden
@pytest.mark.quick
def test_op_returning_list_of_tensors() -> None:
    ep = check_export(Call(lambda x: split_rows(x, 3)), (randn(2, 6),), fresh=[(randn(2, 6),)])
    out = ep.module()(randn(2, 6))
    assert isinstance(out, list) and [t.shape for t in out] == [(2, 2)] * 3
    assert _target("split_rows") in op_targets(ep)


def test_op_list_output_feeds_other_ops() -> None:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = split_rows(x, 2)
        mean, _ = moments(a * b)
        return total(mean), scale_add(a, b)

    ep = check_export(Call(fn), (randn(3, 4),), fresh=[(randn(3, 4),)])
    assert {_target("split_rows"), _target("moments"), _target("total"), _target("scale_add")} <= op_targets(ep)


def test_op_with_zero_dim_output() -> None:
    ep = check_export(Call(lambda x: total(x) * x), (randn(4),), fresh=[(randn(4),)])
    assert _target("total") in op_targets(ep)


def test_same_op_called_twice_gives_two_nodes() -> None:
    ep = check_export(Call2(lambda x, y: scale_add(scale_add(x, y, 1.0), y, -1.0)), (randn(3), randn(3)))
    assert sum(str(n.target) == _target("scale_add") for n in ep.graph.nodes) == 2


@pytest.mark.xfail_under(*LEGACY_STRICT_WRAPPERS, reason=INT_RETURN_STRICT, match=INT_RETURN_STRICT_MATCH)
def test_op_returning_int() -> None:
    ep = check_export(Call(lambda x: x * shape_len(x)), (randn(4),), fresh=[(randn(4),)])
    assert ep.module()(randn(4)).shape == (4,)


# --- inside modules with parameters -----------------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
def test_op_in_module_with_parameters() -> None:
    ep = check_export(CustomLinear(4, 3), (randn(2, 4),), fresh=[(randn(2, 4),)])
    assert input_kinds(ep) == [("PARAMETER", "weight"), ("PARAMETER", "bias"), ("USER_INPUT", None)]
    assert _target("affine") in op_targets(ep)


def test_op_with_none_for_optional_tensor_arg() -> None:
    ep = check_export(CustomLinear(4, 3, bias=False), (randn(2, 4),), fresh=[(randn(2, 4),)])
    assert [kind for kind, _ in input_kinds(ep)] == ["PARAMETER", "USER_INPUT"]


def test_ops_in_nested_submodules() -> None:
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = CustomLinear(4, 4)
            self.scale = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return soft_clamp(scale_add(x, self.proj(x), 1.0) * self.scale, -1.0, 1.0)

    model = torch.nn.Sequential(Block(), Block())
    ep = check_export(model, (randn(3, 4),), fresh=[(randn(3, 4),)])
    assert {k for k, _ in input_kinds(ep)} == {"PARAMETER", "USER_INPUT"}
    assert len([n for n in ep.graph.nodes if str(n.target) == _target("affine")]) == 2


def test_op_with_autograd_formula_and_grad_requiring_input() -> None:
    ep = check_export(Call(lambda x: smooth_abs(x, 1e-3)), (randn(5, requires_grad=True),), fresh=[(randn(5),)])
    assert _target("smooth_abs") in op_targets(ep)


# --- mutable ops -------------------------------------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
def test_mutable_op_on_buffer() -> None:
    ep = check_export(Accumulator(), (randn(3),), fresh=[(randn(3),)])
    _assert_mutation(ep, "accumulate_", [("BUFFER_MUTATION", "acc")])


def test_mutable_op_on_user_input() -> None:
    def fn(acc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        accumulate_(acc, x)
        return acc + 1

    ep = check_export(Call2(fn), (randn(3), randn(3)), fresh=[(randn(3), randn(3))])
    _assert_mutation(ep, "accumulate_", [("USER_INPUT_MUTATION", "x")])


def test_mutable_op_with_two_mutated_args_and_an_output() -> None:
    class Filler(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("counter", torch.zeros(2))
            self.register_buffer("scratch", torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scaled = count_and_fill_(self.counter, self.scratch, 1.5)
            return scaled + self.scratch * x

    ep = check_export(Filler(), (randn(2),), fresh=[(randn(2),)])
    _assert_mutation(ep, "count_and_fill_", [("BUFFER_MUTATION", "counter"), ("BUFFER_MUTATION", "scratch")])


def test_mutable_op_called_twice_reads_its_own_update() -> None:
    class Twice(Accumulator):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            accumulate_(self.acc, x)
            first = self.acc.clone()
            accumulate_(self.acc, first)
            return first + self.acc

    ep = check_export(Twice(), (randn(3),), fresh=[(randn(3),)])
    _assert_mutation(ep, "accumulate_", [("BUFFER_MUTATION", "acc")])


# --- dynamic shapes ---------------------------------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
def test_dynamic_batch_through_op_in_module() -> None:
    batch = Dim("batch", min=1, max=128)
    ep = check_export(
        CustomLinear(4, 2), (randn(3, 4),), fresh=[(randn(10, 4),), (randn(1, 4),)], dynamic_shapes=({0: batch},)
    )
    assert bounds(ep) == [(1, 128)]
    assert _target("affine") in op_targets(ep)


def test_dynamic_op_with_int_arg_scales_a_dim() -> None:
    batch = Dim("batch", min=2, max=64)
    ep = check_export(
        Call(lambda x: repeat_rows(x, 2)), (randn(3, 2),), fresh=[(randn(7, 2),)], dynamic_shapes=({0: batch},)
    )
    assert ep.module()(randn(5, 2)).shape == (10, 2)


def test_dynamic_op_returning_list() -> None:
    rows = Dim("rows", min=1, max=32)
    ep = check_export(
        Call(lambda x: split_rows(x, 2)), (randn(3, 4),), fresh=[(randn(9, 4),)], dynamic_shapes=({0: rows},)
    )
    assert [t.shape for t in ep.module()(randn(6, 4))] == [(6, 2), (6, 2)]


def test_dynamic_op_with_two_outputs_and_two_inputs() -> None:
    batch = Dim("batch", min=2, max=32)

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return moments(scale_add(x, y, 0.5))

    ep = check_export(
        Call2(fn),
        (randn(4, 3), randn(4, 3)),
        fresh=[(randn(11, 3), randn(11, 3))],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    assert bounds(ep) == [(2, 32)]


def test_dynamic_data_dependent_output_size() -> None:
    x = torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0])
    ep = check_export(
        Call(lambda t: positives(t) * 2),
        (x,),
        fresh=[(torch.tensor([-1.0, 2.0]),), (torch.tensor([1.0, 2.0, 3.0, 4.0, -5.0, 6.0]),)],
        dynamic_shapes=({0: Dim("n", min=1, max=64)},),
    )
    assert ep.module()(torch.tensor([3.0, -1.0, 2.0])).shape == (2,)
    assert _target("positives") in op_targets(ep)


def test_dynamic_mutable_op_on_user_input() -> None:
    def fn(acc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        accumulate_(acc, x.sin())
        return acc.sum(dim=0)

    batch = Dim("batch", min=1, max=16)
    ep = check_export(
        Call2(fn),
        (randn(3, 2), randn(3, 2)),
        fresh=[(randn(8, 2), randn(8, 2))],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    _assert_mutation(ep, "accumulate_", [("USER_INPUT_MUTATION", "x")])
