"""Symbolic size expressions in torch.export: derived dims and the shapes computed from dynamic sizes.

Covers derived ``Dim`` expressions relating inputs (``2 * d``, ``d + 1``, ``2 * d + 3``, ``d - 1`` chains,
a root that is no input's size), the range constraints recorded for them, the guards that reject
inputs breaking a relation, and the expressions that appear in output shapes: concatenation
(``a + b``), ``view(-1)`` / ``reshape`` products, floor division, modulo, slicing and padding with
symbolic bounds, plus the export-time errors when code needs a relation that was not declared.

Output shapes are compared as rendered sympy expressions with each input symbol renamed to a
readable letter, so the assertions do not depend on torch's symbol numbering (which differs
between strict and non-strict tracing and after a round trip).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import sympy
import torch
from torch._dynamo.exc import UserError, UserErrorType
from torch.export import Dim, ExportedProgram, export

from harness import wrapper_names
from tests.export.helpers import (
    RETRACE_WRAPPERS,
    STRICT_WRAPPERS,
    Binary,
    Range,
    Ternary,
    Unary,
    as_range,
    assert_same,
    check_export,
    constraint_violation,
    raises_on_call,
    randn,
)

INF = math.inf

FLOORDIV_TAUTOLOGY = (
    "torch 2.13 export: the constraint solver reports the tautological guard (n // 2) <= n as not holding for "
    "every n >= 4 of a Dim and raises a constraint violation suggesting n = 2*_n (export)"
)
FLOORDIV_TAUTOLOGY_MATCH = r"satisfy the generated guard \(L\['x'\]\.size\(\)\[0\] // 2\) <= L\['x'\]\.size\(\)\[0\]"

SILENT_DERIVED_NARROWING = (
    "torch 2.13 export: code that narrows a derived dim (slicing d + 1, viewing 2 * d) gets a silent guard "
    "(root >= 2) instead of the constraint violation a plain Dim gets, while range_constraints keep the declared "
    "[0, 8], so ep.module() rejects sizes inside the recorded range (call)"
)
SILENT_DERIVED_NARROWING_MATCH = r"Guard failed: (-1 \+ x\.size\(\)\[0\] (!= 1|>= 2)|x\.size\(\)\[0\] // 2 != 1)"

STRICT_NOT_RETRACED = tuple(name for name in STRICT_WRAPPERS if name not in RETRACE_WRAPPERS)
"""Strict wrappers that hand the test the first program. These slice tests export with dynamic_shapes, so
strict_v2 takes torch's legacy capture here too (see helpers.NEW_CAPTURE_WRAPPER)."""

STRICT_SILENT_SLICE_GUARD = (
    "torch 2.13 strict export (Dynamo): slicing x[1:-1] of a Dim(min=3) adds a silent guard n - 2 >= 2 instead of "
    "the constraint violation non-strict raises, while range_constraints keep [3, oo], so ep.module() rejects n = 3 "
    "(export)"
)
STRICT_SILENT_SLICE_GUARD_MATCH = r"DID NOT RAISE UserError"

# ---------------------------------------------------------------------------------------------------------------
# private helpers


def _user_input_vals(ep: ExportedProgram) -> list[Any]:
    user_inputs = set(ep.graph_signature.user_inputs)
    return [n.meta["val"] for n in ep.graph.nodes if n.op == "placeholder" and n.name in user_inputs]


def _user_output_vals(ep: ExportedProgram) -> list[Any]:
    output = next(n for n in ep.graph.nodes if n.op == "output")
    return [
        arg.meta["val"] if isinstance(arg, torch.fx.Node) else arg
        for spec, arg in zip(ep.graph_signature.output_specs, output.args[0], strict=True)
        if spec.kind.name == "USER_OUTPUT"
    ]


def _expr(size: Any) -> Any:
    return size.node.expr if isinstance(size, torch.SymInt) else sympy.Integer(size)


class _Namer:
    """Renders symbolic sizes of one program with its symbols renamed, in order of first appearance on the inputs."""

    def __init__(self, ep: ExportedProgram, names: str) -> None:
        symbols: list[sympy.Symbol] = []
        for val in _user_input_vals(ep):
            for size in val.shape:
                for sym in sorted(_expr(size).free_symbols, key=str):
                    if sym not in symbols:
                        symbols.append(sym)
        assert len(symbols) == len(names), f"expected {len(names)} input symbols, found {symbols}"
        self.ep = ep
        self.mapping = {
            sym: sympy.Symbol(name, integer=True, nonnegative=True) for sym, name in zip(symbols, names, strict=True)
        }

    def render(self, size: Any) -> str:
        return str(_expr(size).xreplace(self.mapping))

    def shape(self, val: Any) -> tuple[str, ...] | str:
        if isinstance(val, torch.Tensor):
            return tuple(self.render(s) for s in val.shape)
        return self.render(val)

    def inputs(self) -> list[tuple[str, ...] | str]:
        return [self.shape(v) for v in _user_input_vals(self.ep)]

    def outputs(self) -> list[tuple[str, ...] | str]:
        return [self.shape(v) for v in _user_output_vals(self.ep)]

    def ranges(self) -> dict[str, Range]:
        """``range_constraints`` keyed by rendered expression (derived dims appear as e.g. ``2*d``)."""
        return {str(expr.xreplace(self.mapping)): as_range(vr) for expr, vr in self.ep.range_constraints.items()}


def _input_ranges(ep: ExportedProgram) -> list[tuple[int | Range | None, ...]]:
    """Per user input: each dim as an int (static) or the range recorded for its expression."""
    result = []
    for val in _user_input_vals(ep):
        dims: list[int | Range | None] = []
        for size in val.shape:
            expr = _expr(size)
            if expr.is_number:
                dims.append(int(expr))
            else:
                vr = ep.range_constraints.get(expr)
                dims.append(None if vr is None else as_range(vr))
        result.append(tuple(dims))
    return result


# ---------------------------------------------------------------------------------------------------------------
# derived dims relating inputs


def _double(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.repeat(2) + y


def _next(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y[1:]


def _affine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y[3:].reshape(x.shape[0], 2).sum(1)


def _chain(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return x[2:] + y[1:] + z


def _double_export() -> ExportedProgram:
    d = Dim("d", min=2, max=8)
    return check_export(
        Binary(_double),
        (randn(3), randn(6)),
        dynamic_shapes={"x": {0: d}, "y": {0: 2 * d}},
        fresh=[(randn(5), randn(10)), (randn(8), randn(16))],
    )


@pytest.mark.golden
@pytest.mark.quick
def test_dynamic_derived_double() -> None:
    ep = _double_export()
    names = _Namer(ep, "d")
    assert names.inputs() == [("d",), ("2*d",)]
    assert names.outputs() == [("2*d",)]
    assert names.ranges() == {"d": (2, 8), "2*d": (4, 16)}


def test_dynamic_derived_plus_one() -> None:
    d = Dim("d", min=2, max=8)
    ep = check_export(
        Binary(_next),
        (randn(3), randn(4)),
        dynamic_shapes={"x": {0: d}, "y": {0: d + 1}},
        fresh=[(randn(2), randn(3)), (randn(8), randn(9))],
    )
    names = _Namer(ep, "d")
    assert names.inputs() == [("d",), ("d + 1",)]
    assert names.outputs() == [("d",)]
    assert _input_ranges(ep) == [((2, 8),), ((3, 9),)]


def test_dynamic_derived_affine() -> None:
    d = Dim("d", min=2, max=8)
    ep = check_export(
        Binary(_affine),
        (randn(3), randn(9)),
        dynamic_shapes={"x": {0: d}, "y": {0: 2 * d + 3}},
        fresh=[(randn(5), randn(13)), (randn(8), randn(19))],
    )
    assert _Namer(ep, "d").inputs() == [("d",), ("2*d + 3",)]
    assert _input_ranges(ep) == [((2, 8),), ((7, 19),)]


def test_dynamic_derived_minus_one_chain() -> None:
    d = Dim("d", min=2, max=8)
    d1 = d - 1
    ep = check_export(
        Ternary(_chain),
        (randn(5), randn(4), randn(3)),
        dynamic_shapes={"x": {0: d}, "y": {0: d1}, "z": {0: d1 - 1}},
        fresh=[(randn(8), randn(7), randn(6)), (randn(4), randn(3), randn(2))],
    )
    # The chain's smallest member becomes the root symbol: x = r + 2, y = r + 1, z = r.
    # (Sizes below x = 4 are rejected by a silent guard: test_dynamic_derived_narrowing_is_reported.)
    assert _Namer(ep, "r").inputs() == [("r + 2",), ("r + 1",), ("r",)]
    assert _input_ranges(ep) == [((2, 8),), ((1, 7),), ((0, 6),)]


def test_dynamic_derived_root_not_an_input() -> None:
    dd = Dim("dd")
    ep = check_export(
        Binary(lambda x, y: x[1:] + y[2:]),
        (randn(5), randn(6)),
        dynamic_shapes={"x": {0: dd + 1}, "y": {0: dd + 2}},
        fresh=[(randn(7), randn(8)), (randn(3), randn(4))],
    )
    assert _Namer(ep, "r").inputs() == [("r + 1",), ("r + 2",)]
    assert _input_ranges(ep) == [((1, INF),), ((2, INF),)]


@pytest.mark.xfail_under(*wrapper_names(), reason=SILENT_DERIVED_NARROWING, match=SILENT_DERIVED_NARROWING_MATCH)
@pytest.mark.parametrize(
    ("fn", "spec", "args", "fresh"),
    [
        pytest.param(
            lambda x, y: x[1:] + y,
            lambda n: {"x": {0: n + 1}, "y": {0: n}},
            (randn(5), randn(4)),
            [(randn(2), randn(1)), (randn(1), randn(0))],
            id="slice_of_d_plus_one",
        ),
        pytest.param(
            lambda x, y: x.view(x.shape[0] // 2, 2).sum(1) + y,
            lambda n: {"x": {0: 2 * n}, "y": {0: n}},
            (randn(6), randn(3)),
            [(randn(2), randn(1))],
            id="view_of_two_d",
        ),
    ],
)
def test_dynamic_derived_narrowing_is_reported(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    spec: Callable[[Any], dict[str, Any]],
    args: tuple[torch.Tensor, torch.Tensor],
    fresh: list[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Export either rejects the declared range (as it does for a plain Dim) or the program accepts all of it."""
    try:
        ep = check_export(Binary(fn), args, dynamic_shapes=spec(Dim("n", max=8)))
    except UserError as error:  # the documented outcome: a constraint violation naming a narrower range
        assert error.error_type == UserErrorType.CONSTRAINT_VIOLATION
        return
    assert _Namer(ep, "n").ranges()["n"] == (0, 8)
    program = ep.module()
    for sizes in fresh:
        assert_same(program(*sizes), fn(*sizes))


def test_dynamic_derived_range_constraints_follow_root_bounds() -> None:
    d = Dim("d", min=3, max=6)
    ep = check_export(
        Binary(lambda x, y: y.reshape(3, -1)[:, 1:] * x),
        (randn(4), randn(15)),
        dynamic_shapes={"x": {0: d}, "y": {0: 3 * d + 3}},
        fresh=[(randn(3), randn(12)), (randn(6), randn(21))],
    )
    assert _Namer(ep, "d").ranges() == {"d": (3, 6), "3*d + 3": (12, 21)}


def test_dynamic_derived_dims_on_both_axes_of_matmul() -> None:
    d = Dim("d", min=2, max=8)
    ep = check_export(
        Binary(lambda x, y: x @ y),
        (randn(3, 6), randn(6, 3)),
        dynamic_shapes={"x": {0: d, 1: 2 * d}, "y": {0: 2 * d, 1: d}},
        fresh=[(randn(8, 16), randn(16, 8))],
    )
    names = _Namer(ep, "d")
    assert names.inputs() == [("d", "2*d"), ("2*d", "d")]
    assert names.outputs() == [("d", "d")]


# ---------------------------------------------------------------------------------------------------------------
# relations enforced when calling ep.module()


def _relation_program(kind: str) -> tuple[ExportedProgram, tuple[torch.Tensor, ...]]:
    """Export one relation; return the program and inputs that break it (root kept in range)."""
    d = Dim("d", min=2, max=8)
    if kind == "double":
        ep = check_export(Binary(_double), (randn(3), randn(6)), dynamic_shapes={"x": {0: d}, "y": {0: 2 * d}})
        return ep, (randn(5), randn(9))
    if kind == "plus_one":
        ep = check_export(Binary(_next), (randn(3), randn(4)), dynamic_shapes={"x": {0: d}, "y": {0: d + 1}})
        return ep, (randn(5), randn(5))
    if kind == "affine":
        ep = check_export(Binary(_affine), (randn(3), randn(9)), dynamic_shapes={"x": {0: d}, "y": {0: 2 * d + 3}})
        return ep, (randn(5), randn(12))
    ep = check_export(
        Ternary(_chain),
        (randn(5), randn(4), randn(3)),
        dynamic_shapes={"x": {0: d}, "y": {0: d - 1}, "z": {0: d - 2}},
    )
    return ep, (randn(6), randn(5), randn(5))


@pytest.mark.parametrize("kind", ["double", "plus_one", "affine", "chain"])
def test_dynamic_derived_relation_violated_raises(kind: str) -> None:
    ep, bad = _relation_program(kind)
    error = raises_on_call(ep.module(), *bad, match="Guard failed")
    assert isinstance(error, AssertionError)


def test_dynamic_derived_root_bound_violated_raises() -> None:
    ep = _double_export()
    # The relation holds (18 == 2 * 9) but the root leaves its range.
    raises_on_call(ep.module(), randn(9), randn(18), match=re.escape("<= 8"))


def test_dynamic_derived_relation_message_names_the_expression() -> None:
    ep = _double_export()
    error = raises_on_call(ep.module(), randn(4), randn(7))
    assert re.search(r"2 ?\* ?\S+ == \S+|\S+ == 2 ?\* ?\S+", str(error)), str(error)


# ---------------------------------------------------------------------------------------------------------------
# export-time errors about relations


def test_dynamic_undeclared_relation_raises_with_fix() -> None:
    error = constraint_violation(
        lambda: export(Binary(_next), (randn(3), randn(4)), dynamic_shapes={"x": {0: Dim("a")}, "y": {0: Dim("b")}}),
        "must always be related",
    )
    assert "b = a + 1" in str(error)


def test_dynamic_example_breaking_declared_relation_raises() -> None:
    d = Dim("d", min=2, max=8)
    constraint_violation(
        lambda: export(
            Binary(lambda x, y: (x * 2, y * 3)), (randn(3), randn(5)), dynamic_shapes={"x": {0: d}, "y": {0: d + 1}}
        ),
        re.escape("to be equal to d + 1, where d = 3, but got 5"),
    )


def test_dynamic_view_needs_even_size_raises() -> None:
    error = constraint_violation(
        lambda: export(Unary(lambda x: x.view(x.shape[0] // 2, 2)), (randn(8),), dynamic_shapes={"x": {0: Dim("n")}}),
        "Not all values of n",
    )
    assert "n = 2*_n" in str(error)


# ---------------------------------------------------------------------------------------------------------------
# expressions in output shapes


@pytest.mark.golden
@pytest.mark.quick
def test_dynamic_cat_output_is_sum_of_dims() -> None:
    ep = check_export(
        Binary(lambda x, y: torch.cat([x, y]) * 2),
        (randn(3, 2), randn(4, 2)),
        dynamic_shapes={"x": {0: Dim("a")}, "y": {0: Dim("b")}},
        fresh=[(randn(1, 2), randn(7, 2)), (randn(6, 2), randn(0, 2))],
    )
    assert _Namer(ep, "ab").outputs() == [("a + b", "2")]


def test_dynamic_cat_of_derived_dims() -> None:
    d = Dim("d", max=10)
    ep = check_export(
        Binary(lambda x, y: torch.cat([x, y, x])),
        (randn(3), randn(4)),
        dynamic_shapes={"x": {0: d}, "y": {0: d + 1}},
        fresh=[(randn(10), randn(11))],
    )
    assert _Namer(ep, "d").outputs() == [("3*d + 1",)]


def test_dynamic_stack_of_shared_dim() -> None:
    n = Dim("n")
    ep = check_export(
        Binary(lambda x, y: torch.stack([x, y], dim=1)),
        (randn(3), randn(3)),
        dynamic_shapes={"x": {0: n}, "y": {0: n}},
        fresh=[(randn(8), randn(8))],
    )
    assert _Namer(ep, "n").outputs() == [("n", "2")]


def test_dynamic_view_minus_one_is_product() -> None:
    ep = check_export(
        Unary(lambda x: x.view(-1)),
        (randn(3, 4),),
        dynamic_shapes={"x": {0: Dim("a"), 1: Dim("b")}},
        fresh=[(randn(5, 7),), (randn(1, 9),)],
    )
    assert _Namer(ep, "ab").outputs() == [("a*b",)]


def test_dynamic_reshape_by_size_product() -> None:
    ep = check_export(
        Unary(lambda x: x.reshape(x.shape[0] * x.shape[1]) + 1),
        (randn(3, 4),),
        dynamic_shapes={"x": {0: Dim("a"), 1: Dim("b")}},
        fresh=[(randn(6, 2),)],
    )
    assert _Namer(ep, "ab").outputs() == [("a*b",)]


def test_dynamic_reshape_merges_leading_dims() -> None:
    ep = check_export(
        Unary(lambda x: x.reshape(-1, 4).softmax(-1)),
        (randn(2, 3, 4),),
        dynamic_shapes={"x": {0: Dim("a"), 1: Dim("b")}},
        fresh=[(randn(5, 1, 4),)],
    )
    assert _Namer(ep, "ab").outputs() == [("a*b", "4")]


def test_dynamic_flatten_then_unflatten_restores_shape() -> None:
    ep = check_export(
        Unary(lambda x: x.flatten().unflatten(0, (x.shape[0], -1)) * 2),
        (randn(3, 5),),
        dynamic_shapes={"x": {0: Dim("a"), 1: Dim("b")}},
        fresh=[(randn(4, 2),)],
    )
    assert _Namer(ep, "ab").outputs() == [("a", "b")]


def test_dynamic_view_splits_derived_dim() -> None:
    ep = check_export(
        Unary(lambda x: x.view(x.shape[0] // 2, 2, 3).sum(1)),
        (randn(6, 3),),
        dynamic_shapes={"x": {0: 2 * Dim("h")}},
        fresh=[(randn(10, 3),), (randn(4, 3),)],
    )
    names = _Namer(ep, "h")
    assert names.inputs() == [("2*h", "3")]
    assert names.outputs() == [("h", "3")]


def test_dynamic_chunk_of_derived_dim() -> None:
    ep = check_export(
        Unary(lambda x: x.chunk(2)),
        (randn(6, 3),),
        dynamic_shapes={"x": {0: 2 * Dim("h")}},
        fresh=[(randn(10, 3),)],
    )
    assert _Namer(ep, "h").outputs() == [("h", "3"), ("h", "3")]


def test_dynamic_floordiv_slice_with_auto() -> None:
    ep = check_export(
        Unary(lambda x: x[: x.shape[0] // 2]),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim.AUTO}},
        fresh=[(randn(4),), (randn(5),), (randn(10),)],
    )
    names = _Namer(ep, "n")
    assert names.outputs() == [("(n//2)",)]
    assert names.ranges() == {"n": (4, INF)}


@pytest.mark.xfail_under(*wrapper_names(), reason=FLOORDIV_TAUTOLOGY, match=FLOORDIV_TAUTOLOGY_MATCH)
def test_dynamic_floordiv_slice_with_dim() -> None:
    ep = check_export(
        Unary(lambda x: x[: x.shape[0] // 2]),
        (randn(8),),
        dynamic_shapes={"x": {0: Dim("n", min=4)}},
        fresh=[(randn(4),), (randn(9),)],
    )
    assert _Namer(ep, "n").ranges() == {"n": (4, INF)}


def test_dynamic_floordiv_in_new_size() -> None:
    ep = check_export(
        Unary(lambda x: torch.cat([x, x.new_zeros(x.shape[0] // 3 + 2)])),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim("n")}},
        fresh=[(randn(3),), (randn(11),), (randn(0),)],
    )
    assert _Namer(ep, "n").outputs() == [("n + ((n//3)) + 2",)]


def test_dynamic_modulo_in_new_size() -> None:
    ep = check_export(
        Unary(lambda x: x.new_ones(x.shape[0] % 3 + 2) * x.sum()),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim("n")}},
        fresh=[(randn(9),), (randn(5),), (randn(1),)],
    )
    assert _Namer(ep, "n").outputs() == [("(Mod(n, 3)) + 2",)]


def test_dynamic_modulo_returned_as_int() -> None:
    ep = check_export(
        Unary(lambda x: (x * 3, x.shape[0] % 4, x.shape[0] * 2 + 1)),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim("n")}},
        fresh=[(randn(8),), (randn(2),)],
    )
    assert _Namer(ep, "n").outputs() == [("n",), "Mod(n, 4)", "2*n + 1"]


def test_dynamic_slice_interior() -> None:
    ep = check_export(
        Unary(lambda x: x[1:-1] - x[:-2]),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim("n", min=4)}},
        fresh=[(randn(4),), (randn(12),)],
    )
    assert _Namer(ep, "n").outputs() == [("n - 2",)]


@pytest.mark.xfail_under(*STRICT_NOT_RETRACED, reason=STRICT_SILENT_SLICE_GUARD, match=STRICT_SILENT_SLICE_GUARD_MATCH)
def test_dynamic_slice_interior_needs_larger_min_raises() -> None:
    # Slicing 1:-1 of a size that may be 3 would leave a size-1 result; export asks for min=4.
    constraint_violation(
        lambda: export(Unary(lambda x: x[1:-1]), (randn(7),), dynamic_shapes={"x": {0: Dim("n", min=3)}}),
        re.escape("Dim('n', min=4)"),
    )


def test_dynamic_slice_bounded_by_other_input() -> None:
    ep = check_export(
        Binary(lambda x, y: x[: y.shape[0]] * y),
        (randn(7), randn(3)),
        dynamic_shapes={"x": {0: Dim("a")}, "y": {0: Dim("b")}},
        fresh=[(randn(9), randn(4)), (randn(5), randn(5))],
    )
    assert _Namer(ep, "ab").outputs() == [("b",)]
    # Tracing recorded b <= a: a longer y is rejected instead of silently clamped.
    raises_on_call(ep.module(), randn(2), randn(4), match="Guard failed")


def test_dynamic_slice_with_step() -> None:
    ep = check_export(
        Unary(lambda x: x[::2] * 2),
        (randn(7),),
        dynamic_shapes={"x": {0: Dim("n", min=3)}},
        fresh=[(randn(10),), (randn(3),)],
    )
    assert _Namer(ep, "n").outputs() == [("((n + 1)//2)",)]


def test_dynamic_narrow_with_symbolic_length() -> None:
    ep = check_export(
        Unary(lambda x: x.narrow(0, 1, x.shape[0] - 2)),
        (randn(7, 2),),
        dynamic_shapes={"x": {0: Dim("n", min=4)}},
        fresh=[(randn(4, 2),), (randn(9, 2),)],
    )
    assert _Namer(ep, "n").outputs() == [("n - 2", "2")]


def test_dynamic_pad_adds_constant() -> None:
    ep = check_export(
        Unary(lambda x: torch.nn.functional.pad(x, (1, 2, 0, 3))),
        (randn(3, 5),),
        dynamic_shapes={"x": {0: Dim("a"), 1: Dim("b")}},
        fresh=[(randn(1, 8),)],
    )
    assert _Namer(ep, "ab").outputs() == [("a + 3", "b + 3")]


def test_dynamic_arange_of_scaled_size() -> None:
    ep = check_export(
        Unary(lambda x: torch.arange(x.shape[0] * 2) + x.repeat(2)),
        (randn(6),),
        dynamic_shapes={"x": {0: Dim("n")}},
        fresh=[(randn(10),), (randn(1),)],
    )
    assert _Namer(ep, "n").outputs() == [("2*n",)]


def test_dynamic_expand_to_other_input() -> None:
    ep = check_export(
        Binary(lambda x, y: x.expand(x.shape[0], y.shape[0]) + y),
        (randn(3, 1), randn(5)),
        dynamic_shapes={"x": {0: Dim("n")}, "y": {0: Dim("m")}},
        fresh=[(randn(4, 1), randn(2))],
    )
    assert _Namer(ep, "nm").outputs() == [("n", "m")]


def test_dynamic_outer_product_of_derived_dims() -> None:
    d = Dim("d", max=12)
    ep = check_export(
        Binary(lambda x, y: torch.outer(x, y)[:, :-1]),
        (randn(3), randn(7)),
        dynamic_shapes={"x": {0: d}, "y": {0: 2 * d + 1}},
        fresh=[(randn(12), randn(25)), (randn(1), randn(3))],
    )
    assert _Namer(ep, "d").outputs() == [("d", "2*d")]
