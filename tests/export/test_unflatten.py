"""``torch.export.unflatten`` and ``preserve_module_call_signature``.

The unflattened module must rebuild the eager submodule hierarchy, compute what eager
computes, record a ``module_call_graph`` entry with a call signature for every preserved
submodule, and accept a replacement submodule with the same signature in its place.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch.export import Dim, unflatten
from torch.export.unflatten import UnflattenedModule

from harness import ExportWrapperError
from tests.export.helpers import DECOMP_WRAPPERS, assert_same, check_export, randn, wrappers_tagged

RETRACE_LOSES_SIGNATURE = (
    "torch 2.13 retrace: ep.module() is a flat GraphModule, so re-exporting it with "
    "preserve_module_call_signature records the submodule without a call signature (signature=None, or no "
    "entry at all for a stateless submodule); unflatten then "
    "reorders/drops the submodule's arguments, so a swapped-in module gets the wrong inputs (retrace)"
)
RETRACE_LOSES_SIGNATURE_MATCH = r"preserved submodule '[\w.@]+' lost its call signature"
DECOMP_DROPS_UNUSED_PRESERVED_OUTPUT = (
    "torch 2.13 run_decompositions: DCE removes a preserved submodule's output that the caller ignores, "
    "but the module_call_graph signature still names it: SpecViolationError 'Output sum_1 does not exist "
    "in the graph' (decompose)"
)
DECOMP_DROPS_UNUSED_PRESERVED_OUTPUT_MATCH = r"Output sum_1 does not exist in the graph"
RETRACE = wrappers_tagged("retrace")
RUN_DECOMP = DECOMP_WRAPPERS


class _Sub(torch.nn.Module):
    """Two tensor inputs, one output: the submodule whose call signature is preserved."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + y


class _SubAlt(torch.nn.Module):
    """Same signature as ``_Sub``, different computation and no parameters."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 2 - y


class _Top(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _Sub()
        self.out = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.sub(x, x * 2))


def _entries(ep: torch.export.ExportedProgram) -> dict[str, Any]:
    """``module_call_graph`` as ``{fqn: signature}``."""
    return {entry.fqn: entry.signature for entry in ep.module_call_graph}


def _unflatten(ep: torch.export.ExportedProgram) -> UnflattenedModule:
    return unflatten(ep)


def _signature(ep: torch.export.ExportedProgram, fqn: str) -> Any:
    """The call signature recorded for preserved submodule ``fqn``; what unflatten needs to call a swapped one."""
    signature = _entries(ep).get(fqn)
    assert signature is not None, f"preserved submodule {fqn!r} lost its call signature"
    return signature


@pytest.mark.golden
@pytest.mark.quick
def test_unflatten_rebuilds_submodule_hierarchy() -> None:
    model = _Top()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    unflat = _unflatten(ep)
    assert isinstance(unflat, UnflattenedModule)
    assert isinstance(unflat.sub, torch.nn.Module)
    assert isinstance(unflat.sub.lin, torch.nn.Module)
    torch.testing.assert_close(unflat.sub.lin.weight, model.sub.lin.weight)
    torch.testing.assert_close(unflat.out.bias, model.out.bias)
    names = {name for name, _ in unflat.named_modules()}
    assert {"", "sub", "sub.lin", "out"} <= names


@pytest.mark.golden
@pytest.mark.quick
def test_unflatten_call_matches_eager() -> None:
    model = _Top()
    fresh = [randn(3, 4), randn(3, 4) * 10]
    ep = check_export(model, (randn(3, 4),), fresh=[(t,) for t in fresh], preserve_module_call_signature=("sub",))
    unflat = _unflatten(ep)
    for x in fresh:
        assert_same(unflat(x.clone()), model(x.clone()))


def test_unflatten_state_dict_matches_original() -> None:
    model = _Top()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    unflat = _unflatten(ep)
    assert_same(dict(unflat.state_dict()), dict(model.state_dict()))


@pytest.mark.golden
@pytest.mark.quick
@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_preserved_submodule_has_call_signature_entry() -> None:
    ep = check_export(_Top(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    _signature(ep, "sub")


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_preserved_signature_counts_inputs_and_outputs() -> None:
    ep = check_export(_Top(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    signature = _signature(ep, "sub")
    assert len(signature.inputs) == 2
    assert len(signature.outputs) == 1
    assert signature.in_spec.num_leaves == 2


def test_non_preserved_submodule_entry_has_no_signature() -> None:
    ep = check_export(_Top(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    entries = _entries(ep)
    assert entries[""] is not None, "the root call always has a signature"
    assert "out" in entries
    assert entries["out"] is None


@pytest.mark.parametrize("replacement", [pytest.param("same_class", marks=pytest.mark.quick), "other_class"])
@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_swap_preserved_submodule(replacement: str) -> None:
    model = _Top()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    _signature(ep, "sub")
    unflat = _unflatten(ep)
    new_sub = _Sub() if replacement == "same_class" else _SubAlt()
    unflat.sub = copy.deepcopy(new_sub)
    model.sub = new_sub
    for x in (randn(3, 4), randn(3, 4)):
        assert_same(unflat(x.clone()), model(x.clone()))


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_swapped_submodule_receives_original_arguments() -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recorder(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            seen.append((x.clone(), y.clone()))
            return x + y

    ep = check_export(_Top(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    _signature(ep, "sub")
    unflat = _unflatten(ep)
    unflat.sub = Recorder()
    x = randn(3, 4)
    unflat(x)
    assert len(seen) == 1
    assert_same(seen[0], (x, x * 2))


class _Inner(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).relu()


class _Mid(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _Inner()
        self.scale = torch.nn.Parameter(torch.full((4,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale


class _Deep(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mid = _Mid()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(x) + x)


def test_preserve_nested_submodule_and_swap_it() -> None:
    model = _Deep()
    ep = check_export(model, (randn(2, 4),), preserve_module_call_signature=("mid.inner",))
    assert "mid.inner" in _entries(ep)
    unflat = _unflatten(ep)
    assert isinstance(unflat.mid.inner.lin, torch.nn.Module)
    replacement = torch.nn.Tanh()
    unflat.mid.inner = replacement
    model.mid.inner = replacement
    x = randn(2, 4)
    assert_same(unflat(x), model(x))


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_preserve_several_submodules() -> None:
    model = _Deep()
    ep = check_export(model, (randn(2, 4),), preserve_module_call_signature=("mid", "head"))
    _signature(ep, "mid")
    _signature(ep, "head")
    unflat = _unflatten(ep)
    model.head = unflat.head = torch.nn.Linear(4, 3)
    x = randn(2, 4)
    assert_same(unflat(x), model(x))


def test_preserve_leaf_linear_and_swap_it() -> None:
    model = _Top()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub.lin",))
    unflat = _unflatten(ep)
    new_lin = torch.nn.Linear(4, 4)
    unflat.sub.lin = new_lin
    model.sub.lin = new_lin
    x = randn(3, 4)
    assert_same(unflat(x), model(x))


class _KwSub(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, *, bias: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + bias


class _KwAlt(torch.nn.Module):
    def forward(self, x: torch.Tensor, *, bias: torch.Tensor) -> torch.Tensor:
        return x * bias


class _KwTop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _KwSub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sub(x, bias=x.cos())


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_preserved_keyword_argument_survives_swap() -> None:
    model = _KwTop()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    in_spec = _signature(ep, "sub").in_spec
    unflat = _unflatten(ep)
    unflat.sub = _KwAlt()
    x = randn(3, 4)
    assert_same(unflat(x), x * x.cos())
    assert in_spec.child(1).context == ["bias"]


class _PairSub(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return x * n, x - n


class _PairAlt(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return x + n, x.sin()


class _TwiceTop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _PairSub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.sub(x, 3)
        c, d = self.sub(a, 2)
        return b + c + d


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_submodule_called_twice_has_one_entry_per_call() -> None:
    ep = check_export(_TwiceTop(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    signature = _signature(ep, "sub")
    _signature(ep, "sub@1")
    constants = [arg.value for arg in signature.inputs if hasattr(arg, "value")]
    assert constants == [3]


@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_swap_submodule_called_twice_with_constant_and_tuple_output() -> None:
    model = _TwiceTop()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    _signature(ep, "sub")
    _signature(ep, "sub@1")
    unflat = _unflatten(ep)
    unflat.sub = _PairAlt()
    model.sub = _PairAlt()
    x = randn(3, 4)
    assert_same(unflat(x), model(x))


class _HalfUsed(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.relu(), x.sum()


class _IgnoresSecond(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _HalfUsed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.sub(x)
        return a * 2


@pytest.mark.xfail_under(
    *RUN_DECOMP,
    reason=DECOMP_DROPS_UNUSED_PRESERVED_OUTPUT,
    raises=ExportWrapperError,
    match=DECOMP_DROPS_UNUSED_PRESERVED_OUTPUT_MATCH,
)
@pytest.mark.xfail_under(*RETRACE, reason=RETRACE_LOSES_SIGNATURE, match=RETRACE_LOSES_SIGNATURE_MATCH)
def test_preserved_submodule_with_unused_output() -> None:
    model = _IgnoresSecond()
    ep = check_export(model, (randn(3, 4),), preserve_module_call_signature=("sub",))
    _signature(ep, "sub")
    x = randn(3, 4)
    assert_same(_unflatten(ep)(x), model(x))


class _CountingSub(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return self.lin(x)


class _CountingTop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _CountingSub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sub(x).relu()


def test_unflatten_submodule_buffer_mutation() -> None:
    """The unflattened submodule owns the buffer and updates it in place on every call."""
    model = _CountingTop()
    eager = copy.deepcopy(model)
    ep = check_export(model, (randn(2, 4),), fresh=[(randn(2, 4),)], preserve_module_call_signature=("sub",))
    unflat = _unflatten(ep)
    assert "sub.calls" in dict(unflat.named_buffers())
    start = float(unflat.sub.calls)
    for _ in range(3):
        x = randn(2, 4)
        assert_same(unflat(x), eager(x))
    assert float(unflat.sub.calls) == start + 3


@pytest.mark.quick
def test_unflatten_dynamic_batch_and_swap() -> None:
    model = _Deep()
    batch = Dim("batch", min=2, max=64)
    ep = check_export(
        model,
        (randn(3, 4),),
        fresh=[(randn(5, 4),), (randn(17, 4),)],
        dynamic_shapes=({0: batch},),
        preserve_module_call_signature=("mid",),
    )
    unflat = _unflatten(ep)
    for n in (2, 9, 64):
        x = randn(n, 4)
        assert_same(unflat(x), model(x))
    model.mid = unflat.mid = torch.nn.Sigmoid()
    for n in (2, 6):
        x = randn(n, 4)
        assert_same(unflat(x), model(x))


def test_unflatten_without_preservation_keeps_hierarchy() -> None:
    model = _Deep()
    ep = check_export(model, (randn(2, 4),))
    assert _entries(ep).get("mid") is None
    unflat = _unflatten(ep)
    assert {"mid", "mid.inner", "mid.inner.lin", "head"} <= {name for name, _ in unflat.named_modules()}
    torch.testing.assert_close(unflat.mid.scale, model.mid.scale)
    x = randn(2, 4)
    assert_same(unflat(x), model(x))


def test_unflatten_rejects_wrong_input_shape() -> None:
    ep = check_export(_Top(), (randn(3, 4),), preserve_module_call_signature=("sub",))
    unflat = _unflatten(ep)
    with pytest.raises((AssertionError, RuntimeError, ValueError)):
        unflat(randn(3, 5))
