"""Shared helpers of the export suite: export-then-compare, inputs, and graph inspection.

``export`` is imported at module level on purpose: the harness patches it before this
module is imported, so every call below goes through the selected wrapper.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch._dynamo.exc import UserError, UserErrorType
from torch.export import ExportedProgram, export
from torch.utils import _pytree as pytree

from harness import active_wrapper
from harness.wrappers import BUILTIN_WRAPPERS

ALL_WRAPPERS: tuple[str, ...] = tuple(w.name for w in BUILTIN_WRAPPERS)
"""Every built-in wrapper name, from the registry: for marks that hold under all of them."""


def wrappers_tagged(tag: str) -> tuple[str, ...]:
    """Built-in wrappers carrying ``tag`` (registry tags, also nox session tags), in registry order."""
    return tuple(w.name for w in BUILTIN_WRAPPERS if tag in w.tags)


STRICT_WRAPPERS = wrappers_tagged("strict")
"""Wrappers whose first export is strict (``strict=True`` unless the test chose)."""
NON_STRICT_WRAPPERS = wrappers_tagged("non_strict")
"""Wrappers whose first export is as called (non-strict by torch 2.13's default)."""
SERDES_WRAPPERS = wrappers_tagged("serdes")
"""Wrappers that serialize and deserialize the program."""
DECOMP_WRAPPERS = wrappers_tagged("decomp")
"""Wrappers that hand the test ``ep.run_decompositions({})`` (inference IR) instead of the training IR."""
RETRACE_WRAPPERS = wrappers_tagged("retrace")
"""Wrappers that hand the test the re-export of ``ep.module()`` instead of the first program."""

NEW_CAPTURE_WRAPPER = "strict_v2"
"""The wrapper whose strict exports may take torch 2.13's new Dynamo capture (legacy capture switched off).

torch 2.13 (``torch/export/_trace.py``, ``_export_to_torch_ir``) takes the new capture only for a call
without ``dynamic_shapes``, ``preserve_module_call_signature`` or a GraphModule to retrace; any of those
falls back to the legacy capture even under this wrapper. So a strict-export bug seen only in tests that
export with ``dynamic_shapes`` still happens under it: such marks keep :data:`STRICT_WRAPPERS`.
"""
assert NEW_CAPTURE_WRAPPER in ALL_WRAPPERS, f"{NEW_CAPTURE_WRAPPER!r} is not a registered wrapper"
LEGACY_STRICT_WRAPPERS = tuple(w for w in STRICT_WRAPPERS if w != NEW_CAPTURE_WRAPPER)
"""Strict wrappers whose first export always takes the legacy Dynamo capture: all but :data:`NEW_CAPTURE_WRAPPER`.

For marks on legacy-strict bugs in tests that export without ``dynamic_shapes``, which the new capture
does not have (it lifts every parameter and buffer in registration order, like non-strict).
"""
LEGACY_CAPTURE_WRAPPERS = tuple(w for w in ALL_WRAPPERS if w != NEW_CAPTURE_WRAPPER)
"""Every wrapper but :data:`NEW_CAPTURE_WRAPPER`: for tests that force ``strict=True`` themselves, whose
export takes the legacy capture under all of these (a non-strict wrapper keeps the test's ``strict``)."""


def decomposes() -> bool:
    """Whether the active wrapper returns the decomposed (inference IR) program."""
    return active_wrapper() in DECOMP_WRAPPERS


def exports_strict() -> bool:
    """Whether the active wrapper's first export is strict."""
    return active_wrapper() in STRICT_WRAPPERS


def exports_legacy_strict() -> bool:
    """Whether an export without ``dynamic_shapes`` is strict through the legacy Dynamo capture.

    False under non-strict wrappers and under :data:`NEW_CAPTURE_WRAPPER`, whose new capture lifts
    state like non-strict export (see :data:`LEGACY_STRICT_WRAPPERS`).
    """
    return active_wrapper() in LEGACY_STRICT_WRAPPERS


def randn(*shape: int, dtype: torch.dtype = torch.float32, requires_grad: bool = False) -> torch.Tensor:
    """A random tensor of ``shape`` (the suite's autouse fixture seeds the generator)."""
    return torch.randn(*shape, dtype=dtype, requires_grad=requires_grad)


def _clone(tree: Any) -> Any:
    """Deep copy of an input pytree (``requires_grad`` kept), so runs never see each other's in-place changes."""
    return pytree.tree_map_only(
        torch.Tensor, lambda t: t.detach().clone().requires_grad_(t.requires_grad), copy.copy(tree)
    )


def assert_same(actual: Any, expected: Any, *, rtol: float | None = None, atol: float | None = None) -> None:
    """Pytree-aware equality: same structure, same tensor values (and dtypes), same other leaves."""
    a_leaves, a_spec = pytree.tree_flatten(actual)
    e_leaves, e_spec = pytree.tree_flatten(expected)
    assert a_spec == e_spec, f"output structure differs:\n  got      {a_spec}\n  expected {e_spec}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        if isinstance(e, torch.Tensor):
            torch.testing.assert_close(a, e, rtol=rtol, atol=atol, equal_nan=True)
        else:
            assert a == e, f"non-tensor output differs: {a!r} != {e!r}"


def check_export(
    mod: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    fresh: Iterable[tuple[Any, ...] | tuple[tuple[Any, ...], dict[str, Any]]] = (),
    rtol: float | None = None,
    atol: float | None = None,
    **export_options: Any,
) -> ExportedProgram:
    """Export ``mod`` and check the program against eager on the example inputs and every ``fresh`` set.

    Eager runs on a deep copy of the module, the program on its own module; both get
    copies of the inputs. After each call the outputs, the inputs (for in-place
    mutation) and the buffers must agree. ``fresh`` items are args tuples or
    ``(args, kwargs)`` pairs. Returns the exported program for structural checks.
    """
    eager = copy.deepcopy(mod)
    ep = export(mod, args, kwargs, **export_options)
    program = ep.module()
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]] = [(args, dict(kwargs or {}))]
    for item in fresh:
        if len(item) == 2 and isinstance(item[0], tuple) and isinstance(item[1], dict):
            runs.append((item[0], item[1]))
        else:
            runs.append((item, {}))  # type: ignore[arg-type]
    for run_args, run_kwargs in runs:
        eager_in = _clone((run_args, run_kwargs))
        program_in = _clone((run_args, run_kwargs))
        expected = eager(*eager_in[0], **eager_in[1])
        actual = program(*program_in[0], **program_in[1])
        assert_same(actual, expected, rtol=rtol, atol=atol)
        assert_same(program_in, eager_in, rtol=rtol, atol=atol)
        assert_same(dict(program.named_buffers()), dict(eager.named_buffers()), rtol=rtol, atol=atol)
    return ep


def op_targets(ep: ExportedProgram) -> set[str]:
    """Names of every op called in the graph, e.g. ``{"aten.add.Tensor", "aten.relu.default"}``."""
    targets = set()
    for node in ep.graph.nodes:
        if node.op == "call_function":
            targets.add(str(node.target).removeprefix("torch.ops."))
    return targets


def input_kinds(ep: ExportedProgram) -> list[tuple[str, str | None]]:
    """The graph signature's inputs as ``(kind, target)``: ``("PARAMETER", "lin.weight")``, ..."""
    return [(spec.kind.name, spec.target) for spec in ep.graph_signature.input_specs]


def output_kinds(ep: ExportedProgram) -> list[tuple[str, str | None]]:
    """The graph signature's outputs as ``(kind, target)``: ``("BUFFER_MUTATION", "count")``, ..."""
    return [(spec.kind.name, spec.target) for spec in ep.graph_signature.output_specs]


Range = tuple[int, int | float]
"""A dim's ``(lower, upper)`` range, ``math.inf`` for no upper bound."""


def as_range(vr: Any) -> Range:
    """A sympy ``ValueRanges`` as a :data:`Range`.

    torch 2.13's ``int_oo`` claims ``is_finite`` and ``int(int_oo)`` raises, so test the float value instead
    (this also covers ``sympy.oo``).
    """
    upper = float(vr.upper)
    return int(vr.lower), math.inf if math.isinf(upper) else int(vr.upper)


def bounds(ep: ExportedProgram) -> list[Range]:
    """Range constraints as ``(lower, upper)`` pairs (``math.inf`` for unbounded), in symbol order."""
    return [as_range(vr) for vr in ep.range_constraints.values()]


def raises_on_call(program: Callable[..., Any], *args: Any, match: str | None = None) -> BaseException:
    """Call ``program`` expecting a shape/guard error; return it for further assertions."""
    import pytest

    with pytest.raises((AssertionError, RuntimeError, ValueError), match=match) as info:
        program(*args)
    return info.value


def constraint_violation(fn: Callable[[], Any], match: str) -> UserError:
    """Run an export expected to fail with a constraint violation matching ``match``; return the error."""
    import pytest

    with pytest.raises(UserError, match=match) as info:
        fn()
    assert info.value.error_type == UserErrorType.CONSTRAINT_VIOLATION
    return info.value


def module_of(fn: Callable[..., Any]) -> torch.nn.Module:
    """Wrap a plain function into a module so it can be exported."""

    class FunctionModule(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

    return FunctionModule()


class Unary(torch.nn.Module):
    """``fn`` as a module whose forward names its parameter, so ``dynamic_shapes`` can be keyed by name.

    ``module_of`` takes ``*args``, which ``dynamic_shapes`` cannot name.
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


class Binary(torch.nn.Module):
    """``fn`` as a module with two named parameters (see :class:`Unary`)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        return self.fn(x, y)


class Ternary(torch.nn.Module):
    """``fn`` as a module with three named parameters (see :class:`Unary`)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> Any:
        return self.fn(x, y, z)


def sorted_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Buffers keyed by name in sorted order: strict export registers them in first-use order, eager does not."""
    return dict(sorted(module.named_buffers()))


__all__: Sequence[str] = [
    "ALL_WRAPPERS",
    "DECOMP_WRAPPERS",
    "LEGACY_CAPTURE_WRAPPERS",
    "LEGACY_STRICT_WRAPPERS",
    "NEW_CAPTURE_WRAPPER",
    "NON_STRICT_WRAPPERS",
    "RETRACE_WRAPPERS",
    "SERDES_WRAPPERS",
    "STRICT_WRAPPERS",
    "Binary",
    "Range",
    "Ternary",
    "Unary",
    "as_range",
    "assert_same",
    "bounds",
    "check_export",
    "constraint_violation",
    "decomposes",
    "export",
    "exports_legacy_strict",
    "exports_strict",
    "input_kinds",
    "module_of",
    "op_targets",
    "output_kinds",
    "raises_on_call",
    "randn",
    "sorted_buffers",
    "wrappers_tagged",
]
