"""OpInfo sweep: export one call of every operator in torch's ``op_db`` and check it against eager on two samples.

torch ships its operator database ``torch.testing._internal.common_methods_invocations.op_db`` (702 entries
in torch 2.13.0). Each op gives one case per mode, ``test_op[<op id>[-<dtype>]-sample<i>[-grad]]``: the op id
is ``op.name`` plus ``.variant_test_name`` when there is one (``max.reduction_with_dim``), ``i`` the sample's
position in the op's own sample list; the dtype is named only when it is not float32. Ops that support
autograd get a second case whose sample tensors require grad (``-grad``), the way a training program is
exported. Counts in torch 2.13.0: 1168 cases from 639 ops: 621 float32 ops (526 of them also ``-grad``) and 18
ops without float32 (int64 or complex64; 3 also ``-grad``); the case list (``tests/ops/case_lists/``) holds
every case and what each rule left out.

What a case checks. The call ``op(sample.input, *sample.args, **sample.kwargs)`` becomes a module whose
forward takes the sample's tensors and holds its other leaves as constants; it is exported on the example
sample and ``ep.module()`` is compared with eager (rtol 1e-4, atol 1e-5; outputs, and inputs after the call
for in-place ops):

1. on the example, and on a *second sample* of the same layout (pytree structure, dtypes, shapes, strides,
   ``requires_grad``) with other values, on which eager's outputs must not be close to those on the example
   (checked every run), so a program that ignores its inputs and replays the example fails. The second
   sample is OpInfo's own sample function under another seed (1120 cases); where OpInfo makes the sample
   from fixed values, the example's tensors redrawn uniformly in their own value range (15); where eager's
   outputs never vary over OpInfo's random values (predicates such as ``isnan`` or ``eq``), its tensors
   drawn from the example's own values plus 0, inf, -inf and nan (21). 12 cases have none, and their case
   list entry says why: constant-valued ops (``zeros_like``, ``fill``...), ``isreal`` of real tensors, and
   ``logical_or`` of two nonzero scalars, which no draw tried turned both zero;
2. on ``-grad`` cases, on both samples: each output's ``requires_grad`` equals eager's, and the gradients
   of the inputs under a backward pass of ``sum(out * w)`` over the floating outputs that require grad
   (``w`` fixed per output position; real and imaginary parts of complex outputs) equal eager's;
3. every tensor of the sample stays a user input of the program.

Which sample (rules in ``tests/ops/sweep.py``). The first eligible sample of ``op.sample_inputs_func`` (in
its order, reseeded with torch's test seed as ``op.sample_inputs`` does in a ``TestCase``) whose tensors all
hold elements, on which eager does not raise and which has a second sample; among the first 12 such, else
the first of them. Eligible: every leaf of (input, args, kwargs) is a dense strided tensor (lists of
tensors too, as for ``cat``) or a plain constant (``sweep.CONSTANT_TYPES``). No other fresh inputs: OpInfo
samples hold op-specific domain constraints (positive-definite matrices, valid indices). Sample ids and
values are identical in every process, with one exception from OpInfo itself: ``meshgrid``'s samples iterate
a set of strings, so sample0's ``indexing`` is "ij" or "xy" depending on PYTHONHASHSEED (same id, both
valid). The op is called directly, not through OpInfo's ``wrapper_set_seed``, which strict export cannot
trace (dropout, scaled_dot_product_attention, ``item``; see ``sweep._direct``).

Dtype: float32 where the op supports it on CPU; ops without float32 take the first they support of int64,
int32, int16, int8, uint8, bool, complex64, complex128 (bitwise_*, gcd, lcm, bincount, one_hot,
unravel_index: int64; view_as_real, imag, istft, silu.complex: complex64).

Out of scope, computed by rules when the case list is made (its ``excluded``, by category):
- no float32, int, bool or complex dtype on CPU: CUDA-only (flash and efficient attention,
  batch_norm.without_cudnn) and float8-only (_scaled_mm, _scaled_mm_v2) ops;
- ``has_nondeterministic_output`` (uninitialized memory): empty, empty_like, empty_strided...;
- no eligible sample: factories whose samples hold no tensor (arange, linspace, ones, zeros, full, eye,
  randn, randint, signal.windows.*, triu/tril_indices...), sparse inputs, a non-constant argument;
- random: the eager call runs an ATen op tagged ``nondeterministic_seeded`` (seen by a dispatch mode):
  bernoulli, multinomial, normal, uniform, rrelu, fractional_max_pool*, svd_lowrank...; with grad also
  multi_head_attention_forward (its dropout runs in training mode). Dropout samples with p=0 stay in;
- eager raises on every eligible sample: the CUDA-only jiterator_* ops; sample generation raises.

Collection reads the case list (``tests/ops/catalog.py``) and never imports op_db; ``tests/ops/sweep.py``
remakes a case's samples where it runs. Expected failures come from ``tests/ops/opinfo_findings.py``, a table
cause -> (wrappers, case ids, ``match`` regex) generated by ``tests/ops/probe_opinfo.py``, which runs every
case under every wrapper and names the causes; rerun it for a new torch. A findings entry naming a case that
is not collected stops collection.

Under ``retrace_strict`` and ``run_decomp_strict`` the ``-grad`` cases are skipped, with the reason shown
(``skip_under``, ``GRAD_SKIP_REASON``): they kept those two sessions over their 8-minute budget. Every other
wrapper runs them, and the probe runs them under every wrapper.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree

from tests.export.helpers import assert_same, export, input_kinds
from tests.ops.catalog import GRAD_SUFFIX, CaseSpec, load
from tests.ops.opinfo_findings import FINDINGS

RTOL = 1e-4
ATOL = 1e-5
"""float32 tolerances: export may reorder or decompose the computation, never change it beyond rounding."""

CASES = load()


def _resolve(dotted: str) -> type[BaseException]:
    module, _, name = dotted.rpartition(".")
    exc_type: type[BaseException] = getattr(importlib.import_module(module), name)
    return exc_type


def _expected_failures(case_ids: set[str]) -> dict[str, list[pytest.MarkDecorator]]:
    """``xfail_under`` marks per case id, from the findings table; refuses a stale or conflicting table."""
    marks: dict[str, list[pytest.MarkDecorator]] = {}
    claimed: dict[tuple[str, str], str] = {}
    for finding in FINDINGS:
        if not finding.match:
            raise RuntimeError(f"opinfo_findings: {finding.reason[:60]!r}... names no match= regex")
        raises = _resolve(finding.raises) if finding.raises else None
        for case_id in sorted(finding.cases):
            if case_id not in case_ids:
                raise RuntimeError(f"opinfo_findings names {case_id!r}, not a case here: rerun probe_opinfo.py")
            for wrapper in finding.wrappers:
                other = claimed.setdefault((case_id, wrapper), finding.reason)
                if other != finding.reason:
                    raise RuntimeError(f"opinfo_findings: {case_id} under {wrapper} has two causes")
            mark = pytest.mark.xfail_under(*finding.wrappers, reason=finding.reason, raises=raises, match=finding.match)
            marks.setdefault(case_id, []).append(mark)
    return marks


QUICK = frozenset({
    "add-sample0",
    "cat-sample0",
    "matmul-sample0",
    "nn.functional.conv2d-sample0",
    "index_put-sample0",
    "max.reduction_with_dim-sample0",
})
"""The quick cross-section: binary op, list input, linear algebra, NN op, indexed write, named-tuple output."""


GRAD_CASES_SKIPPED_UNDER = ("retrace_strict", "run_decomp_strict")
"""Wrappers that skip the ``-grad`` half (see ``GRAD_SKIP_REASON``); the probe still runs it under every wrapper."""
GRAD_SKIP_REASON = (
    "budget: with the -grad half the full suite took 8 min 8 s under retrace_strict (two Dynamo captures per "
    "case) and 9 min 5 s under run_decomp_strict (capture plus decomposition) with -n 2 on an idle 2-core "
    "machine, over the 8-minute goal; the probe (python -m tests.ops.probe_opinfo) runs them under every "
    "wrapper"
)


def _marks(case_ids: set[str]) -> dict[str, list[pytest.MarkDecorator]]:
    marks = _expected_failures(case_ids)
    for case_id in case_ids:
        if case_id.endswith(GRAD_SUFFIX):
            marks.setdefault(case_id, []).append(
                pytest.mark.skip_under(*GRAD_CASES_SKIPPED_UNDER, reason=GRAD_SKIP_REASON)
            )
    missing = QUICK - case_ids
    if missing:
        raise RuntimeError(f"QUICK names cases that are not collected: {sorted(missing)}")
    for case_id in QUICK:
        marks.setdefault(case_id, []).append(pytest.mark.quick)
    return marks


_MARKS = _marks({case.id for case in CASES.cases})


# ---------------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------------


def _clone(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)


def _floats_in(args: Any) -> list[float]:
    return [leaf for leaf in pytree.tree_leaves(args) if isinstance(leaf, float)]


def _lost_non_finite(program: torch.fx.GraphModule, constants: tuple[Any, ...]) -> str | None:
    """Name a non-finite float constant of the call (``-inf``...) that no node of the program's graph passes."""
    passed = [x for node in program.graph.nodes for x in _floats_in((node.args, node.kwargs))]
    for value in constants:
        if not isinstance(value, float) or math.isfinite(value):
            continue
        if not any(x == value or (math.isnan(x) and math.isnan(value)) for x in passed):
            others = sorted({repr(x) for x in passed if not math.isfinite(x)})
            return (
                f"the program lost the call's float argument {value!r}: no node of its graph passes it "
                f"(non-finite floats it passes: {', '.join(others) or 'none'})"
            )
    return None


def _weight(index: int, like: torch.Tensor, phase_free: bool) -> torch.Tensor:
    """The fixed weight of output ``index`` in the backward pass (of its real view, for complex outputs)."""
    shape = (*like.shape, 2) if like.is_complex() and not phase_free else like.shape
    dtype = like.real.dtype if like.is_complex() else like.dtype
    generator = torch.Generator().manual_seed(1000 + index)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def _loss(outputs: list[tuple[int, torch.Tensor]], phase_free: bool) -> torch.Tensor:
    """``sum(out * w)`` over the outputs; complex outputs as their real view, or their modulus if ``phase_free``."""
    terms = []
    for index, out in outputs:
        if out.is_complex():
            value = out.abs() if phase_free else torch.view_as_real(out.resolve_conj().resolve_neg())
        else:
            value = out
        terms.append((value * _weight(index, out, phase_free)).sum())
    return torch.stack(terms).sum()


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _backward(leaves: list[Any], differentiable: list[int], inputs: list[torch.Tensor],
              phase_free: bool) -> tuple[torch.Tensor, ...] | str:
    """Input gradients of the loss, or the first line of the error backward raises."""
    loss = _loss([(i, leaves[i]) for i in differentiable], phase_free)
    try:
        return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    except RuntimeError as exc:
        return _first_line(exc)


def _check_grads(where: str, actual: Any, expected: Any, program_in: tuple[torch.Tensor, ...],
                 eager_in: tuple[torch.Tensor, ...]) -> None:
    """Outputs' ``requires_grad`` as eager's; input gradients of ``sum(out * w)`` as eager's.

    Where eager's backward raises on that loss (``linalg_eig_backward``: a loss that depends on the
    eigenvectors' phase is ill-defined), the program's must raise the same, and the gradients are compared
    on the loss that takes the modulus of complex outputs instead.
    """
    a_leaves, e_leaves = pytree.tree_leaves(actual), pytree.tree_leaves(expected)
    for index, (a, e) in enumerate(zip(a_leaves, e_leaves, strict=True)):
        if isinstance(e, torch.Tensor) and a.requires_grad != e.requires_grad:
            raise AssertionError(
                f"requires_grad of output {index} on {where}: the program's is {a.requires_grad}, eager's "
                f"{e.requires_grad}"
            )
    differentiable = [
        i for i, e in enumerate(e_leaves)
        if isinstance(e, torch.Tensor) and e.requires_grad and (e.is_floating_point() or e.is_complex())
    ]
    wrt = [i for i, t in enumerate(eager_in) if t.requires_grad]
    if not differentiable or not wrt:
        return
    for phase_free in (False, True):
        got = _backward(a_leaves, differentiable, [program_in[i] for i in wrt], phase_free)
        want = _backward(e_leaves, differentiable, [eager_in[i] for i in wrt], phase_free)
        if isinstance(got, str) or isinstance(want, str):
            said_got = got if isinstance(got, str) else "no error"
            said_want = want if isinstance(want, str) else "no error"
            if said_got != said_want:
                raise AssertionError(f"backward on {where}: the program's raises {said_got!r}, eager's {said_want!r}")
            continue
        for i, g, w in zip(wrt, got, want, strict=True):
            try:
                torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL, equal_nan=True)
            except AssertionError as exc:
                raise AssertionError(f"gradient of input {i} on {where} differs from eager's: {exc}") from None
        return


def _run(where: str, program: torch.nn.Module, eager: torch.nn.Module, tensors: tuple[torch.Tensor, ...],
         grad: bool, lost: Any) -> Any:
    eager_in, program_in = _clone(tensors), _clone(tensors)
    expected = eager(*eager_in)
    actual = program(*program_in)
    try:
        assert_same(actual, expected, rtol=RTOL, atol=ATOL)
        assert_same(program_in, eager_in, rtol=RTOL, atol=ATOL)
    except AssertionError as exc:
        diagnosis = lost()
        if diagnosis:
            raise AssertionError(diagnosis) from exc
        raise AssertionError(f"the program's outputs on {where} differ from eager's: {exc}") from None
    if grad:
        _check_grads(where, actual, expected, program_in, eager_in)
    return expected


def check_case(spec: CaseSpec) -> None:
    from tests.ops import sweep  # op_db: imported where a case runs, once per process

    case = sweep.materialize(spec)
    example, second = case.example.tensors, case.second
    eager = case.module()
    if second is not None:
        on_example, on_second = eager(*_clone(example)), eager(*_clone(second.tensors))
        if sweep.same_values(on_second, on_example):
            raise sweep.StaleCaseList(
                f"eager's outputs on the second sample ({spec.second}, seed {spec.second_seed}) are close to "
                "those on the example, so comparing the program on it proves nothing: remake the case list"
            )
    ep = export(case.module(), example)
    program = ep.module()
    constants = tuple(leaf for leaf in case.example.leaves if not isinstance(leaf, torch.Tensor))

    def lost() -> str | None:
        return _lost_non_finite(program, constants) if isinstance(program, torch.fx.GraphModule) else None

    _run("the example inputs", program, eager, example, spec.grad, lost)
    if second is not None:
        where = f"the second sample ({spec.second}, seed {spec.second_seed})"
        _run(where, program, eager, second.tensors, spec.grad, lost)
    assert [kind for kind, _ in input_kinds(ep)].count("USER_INPUT") == len(example)


@pytest.mark.parametrize(
    "spec", [pytest.param(case, id=case.id, marks=_MARKS.get(case.id, ())) for case in CASES.cases]
)
def test_op(spec: CaseSpec) -> None:
    """The exported call agrees with eager on two samples (and its gradients, for ``-grad``); see the docstring."""
    check_case(spec)
