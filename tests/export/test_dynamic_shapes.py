"""Dynamic shapes in torch.export: ``Dim`` bounds and hints, shared dims, spec forms, guards and unbacked sizes.

Covers how ``dynamic_shapes`` is written (dict by argument name, tuple, list, kwargs, nested pytrees,
``*args``), what the exported program records (``range_constraints``, symbolic placeholder shapes),
what ``ep.module()`` rejects at call time (sizes outside the range, broken shared dims, changed
static dims), ``torch._check`` refinements, data-dependent (unbacked) sizes from ``.item()``,
``nonzero``, ``masked_select`` and ``unique``, and the export-time errors raised when traced code
contradicts the requested dynamism.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from torch._dynamo.exc import Unsupported, UserError, UserErrorType
from torch.export import Dim, ExportedProgram, export
from torch.fx.experimental.symbolic_shapes import ConstraintViolationError, GuardOnDataDependentSymNode

from harness import ExportWrapperError, wrapper_names
from tests.export.helpers import (
    NEW_CAPTURE_WRAPPER,
    Binary,
    Range,
    Ternary,
    Unary,
    as_range,
    bounds,
    check_export,
    constraint_violation,
    input_kinds,
    module_of,
    op_targets,
    raises_on_call,
    randn,
)

INF = math.inf

NO_RANK_GUARD = (
    "torch 2.13 ep.module(): the generated _guards_fn checks sizes but not the number of dimensions, and with it "
    "installed the pre-hook only matches the pytree structure, so an input of the wrong rank runs silently (call)"
)
NO_RANK_GUARD_MATCH = r"DID NOT RAISE any of \(AssertionError, RuntimeError, ValueError\)"

V2_STATIC_DIMS_SYMBOLIC = (
    "torch 2.13 strict_v2 (new capture path): with dynamic_shapes omitted every input dim is traced as a free "
    "symbol (s77) that is not in range_constraints, and ep.module()'s _guards_fn checks only sizes the trace "
    "itself specialized, so the placeholders are symbolic and a changed static dim runs silently (export, call)"
)
V2_STATIC_DIMS_SYMBOLIC_MATCH = r"static input dims were traced as symbols"
V2_ITEM_SIZE_GUARDED = (
    "torch 2.13 strict_v2 (new capture path): an input's .item() used as a size is traced as a backed symbol, "
    "so ep.module()'s _guards_fn re-reads .item() and enforces the trace's guards on it ('Guard failed: "
    "args_0.item() >= 2', the 0/1 size specialization): calls with 0 or 1 are rejected, and a failing "
    "torch._check on it is that guard, not a runtime assertion (call)"
)
V2_ITEM_SIZE_GUARDED_MATCH = r"Guard failed: .*\.item\(\)"
V2_DATA_DEPENDENT_SIZE_UNBOUNDED = (
    "torch 2.13 strict_v2 (new capture path): with dynamic_shapes omitted the input's dims are free unbounded "
    "symbols, so the data-dependent size of nonzero / boolean-mask indexing gets range [0, int_oo] instead of "
    "[0, numel] and the program has no u0 <= numel runtime assert (export)"
)
V2_DATA_DEPENDENT_SIZE_UNBOUNDED_MATCH = r"assert \(0, \d+\) in \[\(0, 9223372036854775806\)"
FLATTENED_VAR_ARGS = (
    "torch 2.13 ep.module() flattens a forward(*args) signature into positional parameters (args_0, args_1, ...), "
    "so the caller's dynamic_shapes entry for *args no longer matches the module being re-exported (retrace)"
)
FLATTENED_VAR_ARGS_MATCH = r"`inputs` has 3 elements, but `dynamic_shapes` has 1 elements"

# ---------------------------------------------------------------------------------------------------------------
# private helpers


def _range_of(ep: ExportedProgram, size: int | torch.SymInt) -> int | Range | None:
    """A static size as itself, a symbolic one as its ``(lower, upper)`` range (``None`` if unconstrained)."""
    if isinstance(size, int):
        return size
    if size.node.expr.is_number:  # specialized while tracing (e.g. Dim.AUTO meeting a fixed-size weight)
        return int(size.node.expr)
    vr = ep.range_constraints.get(size.node.expr)
    return None if vr is None else as_range(vr)


def _dim_ranges(ep: ExportedProgram) -> list[tuple[int | Range | None, ...]]:
    """Per user input (flattened, in order): each dim as an int (static) or its range (dynamic)."""
    user_inputs = set(ep.graph_signature.user_inputs)
    result = []
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs and isinstance(node.meta["val"], torch.Tensor):
            result.append(tuple(_range_of(ep, s) for s in node.meta["val"].shape))
    return result


def _symbolic(ep: ExportedProgram) -> list[tuple[bool, ...]]:
    """Per user tensor input: which dims are symbolic."""
    user_inputs = set(ep.graph_signature.user_inputs)
    return [
        tuple(isinstance(s, torch.SymInt) for s in node.meta["val"].shape)
        for node in ep.graph.nodes
        if node.op == "placeholder" and node.name in user_inputs
    ]


# ---------------------------------------------------------------------------------------------------------------
# modules


class Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1


class Add(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Project(torch.nn.Module):
    """Feature dim must be 4 (the weight's size): batch may vary, features may not."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).relu()


class FixedMatmul(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.randn(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


class Branchy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 5:
            return x + 1
        return x - 1


class Capped(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._check(x.shape[0] <= 10)
        return x.cumsum(0)


# ---------------------------------------------------------------------------------------------------------------
# Dim with and without bounds


@pytest.mark.golden
@pytest.mark.parametrize(
    ("dim_kwargs", "expected", "sizes"),
    [
        pytest.param({}, (0, INF), (1, 9), id="unbounded"),
        pytest.param({"min": 3}, (3, INF), (3, 12), id="min_only"),
        pytest.param({"max": 12}, (0, 12), (1, 12), id="max_only"),
        pytest.param({"min": 3, "max": 12}, (3, 12), (3, 12), id="min_and_max", marks=pytest.mark.quick),
    ],
)
def test_dynamic_dim_bounds(dim_kwargs: dict[str, int], expected: Range, sizes: tuple[int, ...]) -> None:
    ep = check_export(
        Scale(),
        (randn(5, 3),),
        dynamic_shapes={"x": {0: Dim("batch", **dim_kwargs)}},
        fresh=[(randn(n, 3),) for n in sizes],
    )
    assert bounds(ep) == [expected]
    assert _dim_ranges(ep) == [(expected, 3)]


def test_dynamic_dim_makes_placeholder_symbolic() -> None:
    ep = check_export(Scale(), (randn(5, 3),), dynamic_shapes={"x": {0: Dim("batch")}}, fresh=[(randn(2, 3),)])
    assert _symbolic(ep) == [(True, False)]


def test_dynamic_two_dims_of_one_tensor() -> None:
    ep = check_export(
        Scale(),
        (randn(5, 3),),
        dynamic_shapes={"x": {0: Dim("rows", max=20), 1: Dim("cols", min=2)}},
        fresh=[(randn(20, 2),), (randn(1, 9),)],
    )
    assert sorted(bounds(ep)) == [(0, 20), (2, INF)]
    assert _dim_ranges(ep) == [((0, 20), (2, INF))]


def test_dynamic_batch_through_linear_keeps_parameters() -> None:
    ep = check_export(
        Project(),
        (randn(5, 4),),
        dynamic_shapes={"x": {0: Dim("batch", max=64)}},
        fresh=[(randn(1, 4),), (randn(64, 4),)],
    )
    assert input_kinds(ep) == [("PARAMETER", "lin.weight"), ("PARAMETER", "lin.bias"), ("USER_INPUT", None)]
    assert _dim_ranges(ep) == [((0, 64), 4)]


def test_dynamic_batch_and_sequence_through_reductions() -> None:
    fn = Unary(lambda x: (x.softmax(1).sum(1), x.amax(dim=(0, 1))))
    ep = check_export(
        fn,
        (randn(2, 5, 4),),
        dynamic_shapes=({0: Dim("batch"), 1: Dim("seq")},),
        fresh=[(randn(3, 1, 4),), (randn(1, 8, 4),)],
    )
    assert _dim_ranges(ep) == [((0, INF), (0, INF), 4)]


def test_dynamic_batch_with_buffer_mutation() -> None:
    class RunningMean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.mean.mul_(0.5).add_(x.mean(0) * 0.5)
            return x - self.mean

    ep = check_export(
        RunningMean(), (randn(4, 3),), dynamic_shapes={"x": {0: Dim("batch", min=1)}}, fresh=[(randn(9, 3),)]
    )
    # Training IR keeps the in-place update in the graph; check_export compared the buffer after each call.
    assert ("BUFFER", "mean") in input_kinds(ep)
    assert bounds(ep) == [(1, INF)]


# ---------------------------------------------------------------------------------------------------------------
# Dim.AUTO, Dim.STATIC, Dim.DYNAMIC


def test_dynamic_auto_marks_free_dims_dynamic() -> None:
    ep = check_export(
        Scale(),
        (randn(5, 3),),
        dynamic_shapes={"x": {0: Dim.AUTO, 1: Dim.AUTO}},
        fresh=[(randn(2, 7),), (randn(11, 2),)],
    )
    assert _dim_ranges(ep) == [((2, INF), (2, INF))]


def test_dynamic_auto_specializes_a_dim_the_code_fixes() -> None:
    ep = check_export(
        FixedMatmul(), (randn(5, 4),), dynamic_shapes={"x": {0: Dim.AUTO, 1: Dim.AUTO}}, fresh=[(randn(8, 4),)]
    )
    assert _dim_ranges(ep) == [((2, INF), 4)]
    raises_on_call(ep.module(), randn(5, 5), match=re.escape("== 4"))


def test_dynamic_auto_with_example_size_one_specializes() -> None:
    ep = check_export(Scale(), (randn(1, 3),), dynamic_shapes={"x": {0: Dim.AUTO}})
    assert ep.range_constraints == {}
    assert _dim_ranges(ep) == [(1, 3)]
    raises_on_call(ep.module(), randn(2, 3), match=re.escape("== 1"))


def test_dynamic_auto_unifies_dims_the_code_equates() -> None:
    ep = check_export(
        Add(),
        (randn(4, 3), randn(4, 3)),
        dynamic_shapes={"x": {0: Dim.AUTO}, "y": {0: Dim.AUTO}},
        fresh=[(randn(7, 3), randn(7, 3))],
    )
    assert bounds(ep) == [(2, INF)]
    raises_on_call(ep.module(), randn(4, 3), randn(5, 3), match="Guard failed")


def test_dynamic_auto_range_refined_by_branch() -> None:
    ep = check_export(Branchy(), (randn(8),), dynamic_shapes={"x": {0: Dim.AUTO}}, fresh=[(randn(6),), (randn(11),)])
    assert bounds(ep) == [(6, INF)]
    raises_on_call(ep.module(), randn(3), match=re.escape(">= 6"))


def test_dynamic_static_hint_keeps_dim_static() -> None:
    ep = check_export(
        Scale(), (randn(5, 3),), dynamic_shapes={"x": {0: Dim.DYNAMIC, 1: Dim.STATIC}}, fresh=[(randn(9, 3),)]
    )
    assert _dim_ranges(ep) == [((2, INF), 3)]
    raises_on_call(ep.module(), randn(5, 4), match=re.escape("== 3"))


def test_dynamic_static_hint_alone_records_no_range() -> None:
    ep = check_export(Scale(), (randn(5, 3),), dynamic_shapes={"x": {0: Dim.STATIC}})
    assert ep.range_constraints == {}
    assert _symbolic(ep) == [(False, False)]
    raises_on_call(ep.module(), randn(6, 3), match=re.escape("== 5"))


def test_dynamic_dynamic_hint() -> None:
    ep = check_export(
        Scale(), (randn(5, 3),), dynamic_shapes={"x": {0: Dim.DYNAMIC}}, fresh=[(randn(2, 3),), (randn(30, 3),)]
    )
    assert bounds(ep) == [(2, INF)]


def test_dynamic_dynamic_hint_with_bounds() -> None:
    ep = check_export(
        Scale(),
        (randn(5, 3),),
        dynamic_shapes={"x": {0: Dim.DYNAMIC(min=3, max=10)}},
        fresh=[(randn(3, 3),), (randn(10, 3),)],
    )
    assert bounds(ep) == [(3, 10)]
    raises_on_call(ep.module(), randn(11, 3), match=re.escape("<= 10"))


def test_dynamic_dynamic_hint_specialized_by_code_raises() -> None:
    constraint_violation(
        lambda: export(FixedMatmul(), (randn(5, 4),), dynamic_shapes={"x": {1: Dim.DYNAMIC}}),
        re.escape("specialized it to be a constant (4)"),
    )


def test_dynamic_dynamic_hint_with_example_size_one_raises() -> None:
    with pytest.raises(ValueError, match="0/1 specialized"):
        export(Scale(), (randn(1, 3),), dynamic_shapes={"x": {0: Dim.DYNAMIC}})


def test_dynamic_none_leaves_an_input_static() -> None:
    ep = check_export(
        Add(),
        (randn(4, 3), randn(3)),
        dynamic_shapes={"x": {0: Dim("batch")}, "y": None},
        fresh=[(randn(6, 3), randn(3))],
    )
    assert _dim_ranges(ep) == [((0, INF), 3), (3,)]
    raises_on_call(ep.module(), randn(4, 3), randn(4), match=re.escape("== 3"))


def test_dynamic_per_dim_tuple_form() -> None:
    ep = check_export(
        Scale(), (randn(5, 3),), dynamic_shapes={"x": (Dim("batch", max=9), None)}, fresh=[(randn(9, 3),)]
    )
    assert _dim_ranges(ep) == [((0, 9), 3)]


# ---------------------------------------------------------------------------------------------------------------
# one Dim shared by several inputs


@pytest.mark.golden
@pytest.mark.quick
def test_dynamic_shared_dim_two_inputs() -> None:
    batch = Dim("batch", max=32)
    ep = check_export(
        Add(),
        (randn(4, 3), randn(4, 3)),
        dynamic_shapes={"x": {0: batch}, "y": {0: batch}},
        fresh=[(randn(7, 3), randn(7, 3)), (randn(32, 3), randn(32, 3))],
    )
    assert bounds(ep) == [(0, 32)]
    assert _dim_ranges(ep) == [((0, 32), 3), ((0, 32), 3)]


def test_dynamic_shared_dim_across_axes() -> None:
    n = Dim("n", max=16)
    ep = check_export(
        Binary(lambda x, y: x @ y),
        (randn(5, 3), randn(3, 5)),
        dynamic_shapes=({0: n}, {1: n}),
        fresh=[(randn(2, 3), randn(3, 2)), (randn(16, 3), randn(3, 16))],
    )
    assert bounds(ep) == [(0, 16)]
    raises_on_call(ep.module(), randn(4, 3), randn(3, 5), match="Guard failed")


def test_dynamic_matmul_three_independent_dims() -> None:
    m, k, n = Dim("m"), Dim("k"), Dim("n")
    ep = check_export(
        Binary(lambda x, y: x @ y),
        (randn(2, 3), randn(3, 4)),
        dynamic_shapes=({0: m, 1: k}, {0: k, 1: n}),
        fresh=[(randn(5, 7), randn(7, 1)), (randn(1, 2), randn(2, 6))],
    )
    assert len(ep.range_constraints) == 3
    raises_on_call(ep.module(), randn(2, 3), randn(4, 4), match="Guard failed")


def test_dynamic_shared_dim_three_inputs() -> None:
    d = Dim("d", min=2, max=12)
    ep = check_export(
        Ternary(lambda x, y, z: x * y + z),
        (randn(3), randn(3), randn(3)),
        dynamic_shapes={"x": {0: d}, "y": {0: d}, "z": {0: d}},
        fresh=[(randn(12), randn(12), randn(12))],
    )
    assert bounds(ep) == [(2, 12)]
    assert _dim_ranges(ep) == [((2, 12),)] * 3
    raises_on_call(ep.module(), randn(5), randn(5), randn(6), match="Guard failed")


def test_dynamic_separate_dims_equated_by_code_raises() -> None:
    constraint_violation(
        lambda: export(Add(), (randn(4), randn(4)), dynamic_shapes={"x": {0: Dim("a")}, "y": {0: Dim("b")}}),
        r"must always be equal[\s\S]*b = a",
    )


# ---------------------------------------------------------------------------------------------------------------
# forms of dynamic_shapes: dict by name, tuple, list, kwargs, nested pytrees, *args


def test_dynamic_shapes_dict_by_name_in_any_order() -> None:
    batch = Dim("batch")
    ep = check_export(
        Add(),
        (randn(4, 3), randn(4, 1)),
        dynamic_shapes={"y": {0: batch}, "x": {0: batch, 1: Dim("feat")}},
        fresh=[(randn(6, 5), randn(6, 1))],
    )
    assert _dim_ranges(ep) == [((0, INF), (0, INF)), ((0, INF), 1)]


def test_dynamic_shapes_as_tuple() -> None:
    batch = Dim("batch", max=10)
    ep = check_export(
        Add(), (randn(4, 3), randn(4, 3)), dynamic_shapes=({0: batch}, {0: batch}), fresh=[(randn(10, 3), randn(10, 3))]
    )
    assert _dim_ranges(ep) == [((0, 10), 3), ((0, 10), 3)]


def test_dynamic_shapes_as_list() -> None:
    batch = Dim("batch", max=10)
    ep = check_export(
        Add(), (randn(4, 3), randn(4, 3)), dynamic_shapes=[{0: batch}, {0: batch}], fresh=[(randn(1, 3), randn(1, 3))]
    )
    assert _dim_ranges(ep) == [((0, 10), 3), ((0, 10), 3)]


class KwargScale(torch.nn.Module):
    def forward(self, x: torch.Tensor, *, scale: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        out = x * scale
        return out if shift is None else out + shift


def test_dynamic_shapes_for_kwargs() -> None:
    batch = Dim("batch")
    ep = check_export(
        KwargScale(),
        (randn(4, 3),),
        {"scale": randn(4, 1)},
        dynamic_shapes={"x": {0: batch}, "scale": {0: batch}},
        fresh=[((randn(7, 3),), {"scale": randn(7, 1)})],
    )
    assert _dim_ranges(ep) == [((0, INF), 3), ((0, INF), 1)]


def test_dynamic_shapes_for_two_kwargs_mismatch_raises() -> None:
    batch = Dim("batch")
    ep = check_export(
        KwargScale(),
        (randn(4, 3),),
        {"scale": randn(4, 1), "shift": randn(4, 3)},
        dynamic_shapes={"x": {0: batch}, "scale": {0: batch}, "shift": {0: batch}},
        fresh=[((randn(2, 3),), {"scale": randn(2, 1), "shift": randn(2, 3)})],
    )
    assert bounds(ep) == [(0, INF)]
    with pytest.raises(AssertionError, match="Guard failed"):
        ep.module()(randn(5, 3), scale=randn(5, 1), shift=randn(6, 3))


class SumList(torch.nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[0] * xs[1] + xs[2]


def test_dynamic_shapes_nested_list_input() -> None:
    d = Dim("d", max=20)
    ep = check_export(
        SumList(),
        ([randn(3), randn(3), randn(3)],),
        dynamic_shapes={"xs": [{0: d}, {0: d}, {0: d}]},
        fresh=[([randn(20), randn(20), randn(20)],)],
    )
    assert _dim_ranges(ep) == [((0, 20),)] * 3


class DictInputs(torch.nn.Module):
    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sum": inputs["tokens"].sum(1, keepdim=True) + inputs["bias"], "tokens": inputs["tokens"] * 2}


def test_dynamic_shapes_nested_dict_input() -> None:
    batch, seq = Dim("batch"), Dim("seq", min=1, max=64)
    ep = check_export(
        DictInputs(),
        ({"tokens": randn(2, 5), "bias": randn(2, 1)},),
        dynamic_shapes={"inputs": {"tokens": {0: batch, 1: seq}, "bias": {0: batch}}},
        fresh=[({"tokens": randn(3, 64), "bias": randn(3, 1)},), ({"tokens": randn(1, 1), "bias": randn(1, 1)},)],
    )
    assert sorted(bounds(ep)) == [(0, INF), (1, 64)]


def test_dynamic_shapes_nested_dict_mismatch_raises() -> None:
    batch = Dim("batch")
    ep = check_export(
        DictInputs(),
        ({"tokens": randn(2, 5), "bias": randn(2, 1)},),
        dynamic_shapes={"inputs": {"tokens": {0: batch}, "bias": {0: batch}}},
    )
    raises_on_call(ep.module(), {"tokens": randn(3, 5), "bias": randn(4, 1)}, match="Guard failed")
    raises_on_call(ep.module(), {"tokens": randn(3, 6), "bias": randn(3, 1)}, match=re.escape("== 5"))


class PairTuple(torch.nn.Module):
    def forward(self, pair: tuple[torch.Tensor, dict[str, torch.Tensor]], y: torch.Tensor) -> torch.Tensor:
        a, rest = pair
        return torch.cat([a, rest["b"]], dim=1) + y


def test_dynamic_shapes_tuple_holding_dict() -> None:
    batch, wide = Dim("batch"), Dim("wide")
    ep = check_export(
        PairTuple(),
        ((randn(3, 2), {"b": randn(3, 4)}), randn(3, 6)),
        dynamic_shapes={"pair": ({0: batch}, {"b": {0: batch, 1: wide}}), "y": {0: batch, 1: wide + 2}},
        fresh=[((randn(5, 2), {"b": randn(5, 1)}), randn(5, 3))],
    )
    assert _dim_ranges(ep) == [((0, INF), 2), ((0, INF), (0, INF)), ((0, INF), (2, INF))]


@dataclasses.dataclass
class DynamicBatch:
    """A dataclass input registered as a pytree node (serializable by name)."""

    values: torch.Tensor
    mask: torch.Tensor


torch.export.register_dataclass(DynamicBatch, serialized_type_name="tests.export.test_dynamic_shapes.DynamicBatch")


class MaskedMean(torch.nn.Module):
    def forward(self, batch: DynamicBatch) -> torch.Tensor:
        return (batch.values * batch.mask).sum(1) / batch.mask.sum(1).clamp(min=1)


def test_dynamic_shapes_registered_dataclass_input() -> None:
    b, s = Dim("b"), Dim("s")
    mask = (randn(2, 5) > 0).float()
    ep = check_export(
        MaskedMean(),
        (DynamicBatch(randn(2, 5), mask),),
        dynamic_shapes={"batch": [{0: b, 1: s}, {0: b, 1: s}]},
        fresh=[(DynamicBatch(randn(4, 9), (randn(4, 9) > 0).float()),)],
    )
    assert _dim_ranges(ep) == [((0, INF), (0, INF))] * 2


@pytest.mark.xfail_under(
    "retrace_strict",
    "retrace_non_strict",
    reason=FLATTENED_VAR_ARGS,
    raises=ExportWrapperError,
    match=FLATTENED_VAR_ARGS_MATCH,
)
def test_dynamic_shapes_for_var_positional_args() -> None:
    d = Dim("d", max=8)
    ep = check_export(
        module_of(lambda *xs: sum(xs[1:], xs[0])),
        (randn(3), randn(3), randn(3)),
        dynamic_shapes={"args": ({0: d}, {0: d}, {0: d})},
        fresh=[(randn(8), randn(8), randn(8))],
    )
    assert bounds(ep) == [(0, 8)]


# ---------------------------------------------------------------------------------------------------------------
# guards enforced when calling ep.module()


def _bounded_pair() -> ExportedProgram:
    d = Dim("d", min=3, max=8)
    return check_export(Add(), (randn(4, 3), randn(4, 3)), dynamic_shapes={"x": {0: d}, "y": {0: d}})


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "fragment"),
    [
        pytest.param((9, 3), (9, 3), "<= 8", id="above_max", marks=pytest.mark.quick),
        pytest.param((2, 3), (2, 3), ">= 3", id="below_min"),
        pytest.param((4, 3), (5, 3), "Guard failed", id="shared_dim_mismatch"),
        pytest.param((4, 4), (4, 4), "== 3", id="static_dim_changed"),
    ],
)
def test_dynamic_call_guard_violation_raises(x_shape: tuple[int, int], y_shape: tuple[int, int], fragment: str) -> None:
    ep = _bounded_pair()
    error = raises_on_call(ep.module(), randn(*x_shape), randn(*y_shape), match=re.escape(fragment))
    assert isinstance(error, AssertionError)
    assert "Guard failed" in str(error)


def test_dynamic_call_accepts_range_edges() -> None:
    d = Dim("d", min=3, max=8)
    ep = check_export(
        Add(),
        (randn(4, 3), randn(4, 3)),
        dynamic_shapes={"x": {0: d}, "y": {0: d}},
        fresh=[(randn(3, 3), randn(3, 3)), (randn(8, 3), randn(8, 3))],
    )
    assert bounds(ep) == [(3, 8)]


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_STATIC_DIMS_SYMBOLIC, match=V2_STATIC_DIMS_SYMBOLIC_MATCH)
def test_dynamic_shapes_omitted_means_static() -> None:
    ep = check_export(Scale(), (randn(4, 3),))
    assert ep.range_constraints == {}
    assert _symbolic(ep) == [(False, False)], "static input dims were traced as symbols"
    raises_on_call(ep.module(), randn(5, 3), match=re.escape("== 4"))


@pytest.mark.xfail_under(*wrapper_names(), reason=NO_RANK_GUARD, match=NO_RANK_GUARD_MATCH)
def test_dynamic_call_with_extra_dimension_raises() -> None:
    ep = check_export(Scale(), (randn(5),), dynamic_shapes={"x": {0: Dim("d")}}, fresh=[(randn(2),)])
    raises_on_call(ep.module(), randn(5, 1))


def test_dynamic_call_with_extra_dimension_raises_in_pre_hook() -> None:
    """Without the guards submodule, the forward pre-hook still checks the rank."""
    ep = check_export(Scale(), (randn(5),), dynamic_shapes={"x": {0: Dim("d")}}, fresh=[(randn(2),)])
    with pytest.raises(RuntimeError, match="Unexpected number of dimensions"):
        ep.module(check_guards=False)(randn(5, 1))


# ---------------------------------------------------------------------------------------------------------------
# torch._check and torch._check_is_size


def test_dynamic_check_refines_auto_range() -> None:
    ep = check_export(Capped(), (randn(6),), dynamic_shapes={"x": {0: Dim.AUTO}}, fresh=[(randn(10),), (randn(2),)])
    assert bounds(ep) == [(2, 10)]
    raises_on_call(ep.module(), randn(11), match=re.escape("<= 10"))


def test_dynamic_check_within_declared_range() -> None:
    ep = check_export(Capped(), (randn(6),), dynamic_shapes={"x": {0: Dim("d", max=10)}}, fresh=[(randn(10),)])
    assert bounds(ep) == [(0, 10)]


def test_dynamic_check_narrower_than_declared_range_raises() -> None:
    constraint_violation(
        lambda: export(Capped(), (randn(6),), dynamic_shapes={"x": {0: Dim("d")}}),
        re.escape("Dim('d', max=10)"),
    )


class BoundedCount(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        k = n.item()
        torch._check(k >= 0)
        torch._check(k <= 10)
        return x.new_ones(k).cumsum(0) * x.sum()


@pytest.mark.golden
@pytest.mark.quick
@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_ITEM_SIZE_GUARDED, match=V2_ITEM_SIZE_GUARDED_MATCH)
def test_dynamic_check_bounds_unbacked_item() -> None:
    ep = check_export(
        BoundedCount(),
        (randn(4), torch.tensor(3)),
        fresh=[(randn(4), torch.tensor(10)), (randn(4), torch.tensor(0))],
    )
    assert (0, 10) in bounds(ep)
    error = raises_on_call(ep.module(), randn(4), torch.tensor(11), match="Runtime assertion failed")
    assert isinstance(error, RuntimeError)
    assert "<= 10" in str(error)


@pytest.mark.filterwarnings("ignore:_check_is_size will be removed:FutureWarning")
@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_ITEM_SIZE_GUARDED, match=V2_ITEM_SIZE_GUARDED_MATCH)
def test_dynamic_check_is_size_on_item() -> None:
    def ones(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        k = n.item()
        torch._check_is_size(k)
        return torch.cat([x, x.new_ones(k)])

    ep = check_export(module_of(ones), (randn(3), torch.tensor(2)), fresh=[(randn(3), torch.tensor(6))])
    assert (0, INF) in bounds(ep)
    raises_on_call(ep.module(), randn(3), torch.tensor(-1), match="Runtime assertion failed")


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_ITEM_SIZE_GUARDED, match=V2_ITEM_SIZE_GUARDED_MATCH)
def test_dynamic_item_used_as_size_asserts_non_negative() -> None:
    ep = check_export(
        module_of(lambda n: torch.zeros(n.item()) + 1),
        (torch.tensor(3),),
        fresh=[(torch.tensor(0),), (torch.tensor(9),)],
    )
    error = raises_on_call(ep.module(), torch.tensor(-2), match="Runtime assertion failed")
    assert isinstance(error, RuntimeError)


def test_dynamic_item_as_scalar_operand() -> None:
    ep = check_export(
        module_of(lambda x, n: x + n.item() * 2),
        (randn(3), torch.tensor(4)),
        fresh=[(randn(3), torch.tensor(-7)), (randn(3), torch.tensor(100))],
    )
    assert op_targets(ep) & {"aten.item.default", "aten._local_scalar_dense.default"}


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_ITEM_SIZE_GUARDED, match=V2_ITEM_SIZE_GUARDED_MATCH)
def test_dynamic_item_arange() -> None:
    def count(n: torch.Tensor) -> torch.Tensor:
        k = n.item()
        torch._check(k >= 0)
        return torch.arange(k) * 3

    check_export(module_of(count), (torch.tensor(5),), fresh=[(torch.tensor(0),), (torch.tensor(12),)])


def test_dynamic_item_split_sizes() -> None:
    def split(x: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = n.item()
        torch._check(k >= 0)
        torch._check(k <= x.shape[0])
        head, tail = x.split([k, x.shape[0] - k])
        return head.sum(0), tail * 2

    check_export(
        Binary(split),
        (randn(6), torch.tensor(2)),
        dynamic_shapes=({0: Dim("d")}, None),
        fresh=[(randn(9), torch.tensor(0)), (randn(4), torch.tensor(4))],
    )


# ---------------------------------------------------------------------------------------------------------------
# data-dependent output sizes (unbacked symbols)


@pytest.mark.xfail_under(
    NEW_CAPTURE_WRAPPER, reason=V2_DATA_DEPENDENT_SIZE_UNBOUNDED, match=V2_DATA_DEPENDENT_SIZE_UNBOUNDED_MATCH
)
def test_dynamic_nonzero() -> None:
    ep = check_export(
        module_of(lambda x: x.nonzero()),
        (torch.tensor([0.0, 1.0, 0.0, 2.0]),),
        fresh=[(torch.tensor([3.0, 1.0, 5.0, 2.0]),), (torch.zeros(4),)],
    )
    assert (0, 4) in bounds(ep)


def test_dynamic_nonzero_of_dynamic_input() -> None:
    check_export(
        Unary(lambda x: (x > 0).nonzero().squeeze(1) * 10),
        (randn(6),),
        dynamic_shapes=({0: Dim("d")},),
        fresh=[(randn(11),), (-randn(3).abs(),)],
    )


def test_dynamic_masked_select() -> None:
    check_export(
        Unary(lambda x: x.masked_select(x > 0).exp()),
        (randn(3, 4),),
        dynamic_shapes={"x": {0: Dim("rows"), 1: Dim.STATIC}},
        fresh=[(randn(7, 4),), (randn(2, 4).abs(),)],
    )


@pytest.mark.xfail_under(
    NEW_CAPTURE_WRAPPER, reason=V2_DATA_DEPENDENT_SIZE_UNBOUNDED, match=V2_DATA_DEPENDENT_SIZE_UNBOUNDED_MATCH
)
def test_dynamic_boolean_mask_index() -> None:
    ep = check_export(
        module_of(lambda x, y: y[x > 0] + 1),
        (randn(6), randn(6, 2)),
        fresh=[(randn(6), randn(6, 2)), (torch.full((6,), -1.0), randn(6, 2))],
    )
    assert (0, 6) in bounds(ep)


def test_dynamic_unique() -> None:
    check_export(
        module_of(lambda x: torch.unique(x)),
        (torch.tensor([1, 2, 2, 3, 3, 3]),),
        fresh=[(torch.tensor([4, 4, 4, 4, 4, 4]),), (torch.tensor([6, 5, 4, 3, 2, 1]),)],
    )


def test_dynamic_nonzero_indices_gather_rows() -> None:
    def pick(mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        idx = mask.nonzero().squeeze(1)
        return rows.index_select(0, idx).sum(1)

    check_export(
        module_of(pick),
        (torch.tensor([True, False, True, True]), randn(4, 3)),
        fresh=[(torch.tensor([False, False, False, True]), randn(4, 3))],
    )


def test_dynamic_data_dependent_branch_raises() -> None:
    def branch(x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x + 1
        return x - 1

    # Non-strict tracing fails on the guard, strict (Dynamo) refuses the branch; both say why.
    with pytest.raises((GuardOnDataDependentSymNode, Unsupported), match=r"(?i)data-dependent"):
        export(module_of(branch), (randn(4),))


# ---------------------------------------------------------------------------------------------------------------
# export-time errors: the code contradicts the requested dynamism


@pytest.mark.quick
def test_dynamic_dim_specialized_by_parameter_raises() -> None:
    error = constraint_violation(
        lambda: export(Project(), (randn(5, 4),), dynamic_shapes={"x": {1: Dim("feat")}}),
        re.escape("specialized it to be a constant (4)"),
    )
    assert "feat = 4" in str(error)


def test_dynamic_dim_specialized_by_equality_branch_raises() -> None:
    def branch(x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.shape[0] == 4 else x

    constraint_violation(
        lambda: export(Unary(branch), (randn(4),), dynamic_shapes=({0: Dim("d")},)),
        re.escape("specialized it to be a constant (4)"),
    )


def test_dynamic_dim_range_narrowed_by_branch_raises() -> None:
    constraint_violation(
        lambda: export(Branchy(), (randn(8),), dynamic_shapes={"x": {0: Dim("d", min=2, max=10)}}),
        re.escape("Dim('d', min=6, max=10)"),
    )


def test_dynamic_dim_with_example_size_one_raises() -> None:
    constraint_violation(
        lambda: export(Scale(), (randn(1, 3),), dynamic_shapes={"x": {0: Dim("d")}}),
        re.escape("specialized it to be a constant (1)"),
    )


def test_dynamic_example_outside_dim_range_raises() -> None:
    # Non-strict raises the bare ConstraintViolationError, strict wraps it in UserError; both are RuntimeErrors.
    with pytest.raises((ConstraintViolationError, UserError), match=re.escape("4 not in range [5, int_oo]")):
        export(Scale(), (randn(4, 3),), dynamic_shapes={"x": {0: Dim("d", min=5)}})


def test_dynamic_shapes_unknown_argument_name_raises() -> None:
    with pytest.raises(UserError, match="top-level keys must be the arg names") as info:
        export(Scale(), (randn(4, 3),), dynamic_shapes={"z": {0: Dim("d")}})
    assert info.value.error_type == UserErrorType.INVALID_INPUT


def test_dynamic_shapes_wrong_structure_raises() -> None:
    with pytest.raises(UserError, match="mismatch between the structure of `inputs` and `dynamic_shapes`") as info:
        export(Add(), (randn(4), randn(4)), dynamic_shapes=({0: Dim("d")},))
    assert info.value.error_type == UserErrorType.INVALID_INPUT


# ---------------------------------------------------------------------------------------------------------------
# symbolic sizes as outputs


def test_dynamic_size_returned_as_int() -> None:
    ep = check_export(
        Unary(lambda x: (x * 2, x.shape[0])),
        (randn(5),),
        dynamic_shapes=({0: Dim("d")},),
        fresh=[(randn(9),)],
    )
    assert _dim_ranges(ep) == [((0, INF),)]
