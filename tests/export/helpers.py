"""Shared helpers of the export suite: export-then-compare, inputs, and graph inspection.

``export`` is imported at module level on purpose: the harness patches it before this
module is imported, so every call below goes through the selected wrapper.
"""

from __future__ import annotations

import copy
import math
import os
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


FreshItem = tuple[Any, ...] | tuple[tuple[Any, ...], dict[str, Any]]
"""One fresh input set for :func:`check_export`: an args tuple or an ``(args, kwargs)`` pair."""


class _Derived:
    """The default of ``check_export(fresh=...)``: derive fresh inputs from the example."""

    def __repr__(self) -> str:
        return "DERIVE"


DERIVE: Any = _Derived()
"""``check_export``'s default ``fresh``: one input set derived from the example (see :func:`derive_fresh`)."""

FRESH_ATTEMPTS = 6
"""How many derived input sets ``check_export`` draws before it gives up on telling the program from a replay."""

GRAD_CHECKS: list[tuple[str, str]] = []
"""``(test, what)`` per run in which autograd was compared: ``what`` is ``"requires_grad"`` (the outputs' flags)
or ``"gradients"`` (also a backward pass); ``test`` is pytest's current test id. For counting coverage."""


class FreshInputError(Exception):
    """The test's fresh inputs cannot tell the program from one that replays its example (a test-writing error)."""


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


def _differs(a: Any, b: Any, rtol: float | None, atol: float | None) -> bool:
    """Whether :func:`assert_same` tells ``a`` from ``b`` (with the test's tolerances)."""
    try:
        assert_same(a, b, rtol=rtol, atol=atol)
    except AssertionError:
        return True
    return False


# --- fresh inputs ----------------------------------------------------------------------------------------------


def _dim_specs(
    mod: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], dynamic_shapes: Any
) -> dict[int, Any]:
    """``{id(example tensor): its dynamic_shapes entry}`` for every tensor the spec reaches."""
    from torch.export.dynamic_shapes import _combine_args

    specs: dict[int, Any] = {}

    def walk(value: Any, spec: Any) -> None:
        if isinstance(value, torch.Tensor):
            specs[id(value)] = spec
            return
        if spec is None:
            return
        node_type = pytree._get_node_type(value)
        if node_type not in pytree.SUPPORTED_NODES:
            return
        if isinstance(value, dict) and isinstance(spec, dict):
            for key, child in value.items():
                walk(child, spec.get(key))
            return
        children, _ = pytree.SUPPORTED_NODES[node_type].flatten_fn(value)
        if isinstance(spec, list | tuple):
            for child, child_spec in zip(children, spec, strict=False):
                walk(child, child_spec)

    combined = _combine_args(mod, args, kwargs)
    if isinstance(dynamic_shapes, dict):
        for name, value in combined.items():
            walk(value, dynamic_shapes.get(name))
    elif isinstance(dynamic_shapes, list | tuple):
        for value, spec in zip(combined.values(), dynamic_shapes, strict=False):
            walk(value, spec)
    return specs


def _per_dim(spec: Any, rank: int) -> list[Any]:
    """A tensor's dynamic_shapes entry as one item per dim (``None`` for static)."""
    if isinstance(spec, dict):
        return [spec.get(i) for i in range(rank)]
    if isinstance(spec, list | tuple):
        return [*spec, *([None] * (rank - len(spec)))][:rank]
    return [spec] * rank if spec is not None else [None] * rank


def _bound(value: Any, default: int) -> int:
    """A Dim bound as an int (``int_oo``, ``None`` or huge values become ``default``)."""
    if value is None:
        return default
    number = float(value)
    return default if math.isinf(number) or number > 2**31 else int(number)


def _new_sizes(tensors: list[torch.Tensor], specs: dict[int, Any], gen: torch.Generator) -> dict[tuple[int, int], int]:
    """New sizes for the dynamic dims of ``tensors``: ``{(index in tensors, dim): size}``.

    Named ``Dim`` s (and dims derived from them) get one new root value each, inside the Dim's range, other
    than the example's, with every derived dim inside its own range; ``Dim.DYNAMIC`` dims vary on their own;
    ``Dim.AUTO`` and ``Dim.STATIC`` dims keep the example size (export decides what AUTO becomes).
    """
    from torch.export.dynamic_shapes import _DerivedDim, _DimHint, _DimHintType

    roots: dict[str, Any] = {}
    uses: list[tuple[tuple[int, int], str, Any]] = []  # (where, root name, fn of the root value)
    examples: dict[str, set[int]] = {}
    for index, tensor in enumerate(tensors):
        for dim, item in enumerate(_per_dim(specs.get(id(tensor)), tensor.dim())):
            size = tensor.shape[dim]
            if isinstance(item, _DimHint):
                if item.type != _DimHintType.DYNAMIC:
                    continue
                name = f"<dynamic {index}.{dim}>"
                roots[name] = item
                uses.append(((index, dim), name, lambda v: v))
                examples.setdefault(name, set()).add(size)
            elif isinstance(item, _DerivedDim):
                root = item.root
                roots[root.__name__] = root
                uses.append(((index, dim), root.__name__, item.fn))
                examples.setdefault(root.__name__, set()).update(v for v in range(4096) if item.fn(v) == size)
            elif item is not None and hasattr(item, "__name__") and hasattr(item, "min"):
                roots[item.__name__] = item
                uses.append(((index, dim), item.__name__, lambda v: v))
                examples.setdefault(item.__name__, set()).add(size)
    sizes: dict[tuple[int, int], int] = {}
    for name, root in roots.items():
        example = min(examples[name]) if examples[name] else 2
        low = max(_bound(getattr(root, "min", None), 0), 2)
        high = min(_bound(getattr(root, "max", None), 2**31), max(2 * example, example + 4, low + 4))
        mine = [(where, fn) for where, root_name, fn in uses if root_name == name]

        def valid(value: int, mine: list[tuple[tuple[int, int], Any]] = mine) -> bool:
            return all(fn(value) >= 2 for _, fn in mine)

        candidates = [v for v in range(low, high + 1) if v not in examples[name] and valid(v)]
        if not candidates:
            continue
        value = candidates[int(torch.randint(len(candidates), (), generator=gen))]
        for where, fn in mine:
            sizes[where] = int(fn(value))
    return sizes


def _fresh_values(t: torch.Tensor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """New values for an example tensor: same dtype and value domain, ``shape`` (same or new sizes).

    Floats are drawn uniformly from the example's finite range (integers if every example value is one; a
    constant tensor is scaled by a random factor in [0.5, 1.5), keeping its sign; zeros become normal draws),
    keeping non-finite entries in place; ints from the example's range (a constant moves by one, keeping its
    sign); bools at random, flipped where they would repeat the example.
    """
    same_shape = tuple(t.shape) == tuple(shape)
    example = t.detach()
    if t.dtype == torch.bool:
        new = torch.rand(shape, generator=gen) < 0.5
        if same_shape and new.numel() and torch.equal(new, example):
            flat = new.reshape(-1).clone()
            spot = int(torch.randint(flat.numel(), (), generator=gen))
            flat[spot] = ~flat[spot]
            new = flat.reshape(shape)
        return new
    if t.is_complex():
        scale = example.abs().max().item() if example.numel() else 1.0
        return (torch.randn(shape, generator=gen, dtype=torch.complex128) * (scale or 1.0)).to(t.dtype)
    if t.is_floating_point():
        work = example.to(torch.float64)
        finite_mask = torch.isfinite(work)
        finite = work[finite_mask]
        if finite.numel() == 0:
            return example.clone() if same_shape else torch.zeros(shape, dtype=t.dtype)
        low, high = finite.min().item(), finite.max().item()
        if high > low and bool((finite == finite.round()).all()):
            new = torch.randint(int(low), int(high) + 1, shape, generator=gen).to(torch.float64)
        elif high > low:
            new = low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)
        elif low == 0:
            new = torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            new = low * (0.5 + torch.rand(shape, generator=gen, dtype=torch.float64))
        if same_shape:
            new = torch.where(finite_mask, new, work)
        return new.to(t.dtype)
    low, high = (int(example.min()), int(example.max())) if example.numel() else (0, 1)
    if high > low:
        return torch.randint(low, high + 1, shape, generator=gen, dtype=t.dtype)
    steps = [s for s in (low - 1, low + 1) if (s > 0) == (low > 0) and (s < 0) == (low < 0)] or [low + 1]
    picks = torch.randint(len(steps), shape, generator=gen)
    return torch.tensor(steps, dtype=t.dtype)[picks]


def derive_fresh(
    mod: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    dynamic_shapes: Any = None,
    attempt: int = 0,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """New inputs like the example: same structure, shapes, dtypes and value domain, new values.

    With ``dynamic_shapes``, dims given a ``Dim`` (or ``Dim.DYNAMIC``) get other sizes inside their range
    (see :func:`_new_sizes`). Non-tensor leaves are kept (export specializes them). ``attempt`` picks
    another deterministic draw. ``requires_grad`` is kept.
    """
    kwargs = dict(kwargs or {})
    gen = torch.Generator().manual_seed(0x5EED + 7919 * attempt)
    tensors = [leaf for leaf in pytree.tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
    index = {id(t): i for i, t in enumerate(tensors)}
    sizes = _new_sizes(tensors, _dim_specs(mod, args, kwargs, dynamic_shapes), gen) if dynamic_shapes else {}
    made: dict[int, torch.Tensor] = {}

    def fresh(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in made:
            i = index[id(t)]
            shape = tuple(sizes.get((i, d), s) for d, s in enumerate(t.shape))
            made[id(t)] = _fresh_values(t, shape, gen).requires_grad_(t.requires_grad)
        return made[id(t)]

    new_args, new_kwargs = pytree.tree_map_only(torch.Tensor, fresh, (args, kwargs))
    return tuple(new_args), dict(new_kwargs)


def _runs_of(fresh: Iterable[FreshItem]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for item in fresh:
        if len(item) == 2 and isinstance(item[0], tuple) and isinstance(item[1], dict):
            runs.append((item[0], item[1]))
        else:
            runs.append((tuple(item), {}))
    return runs


def _observed(out: Any, before: Any, after: Any) -> tuple[Any, list[Any]]:
    """What a caller sees of one call: the outputs, and every input tensor the call changed."""
    changed = [
        a
        for b, a in zip(pytree.tree_leaves(before), pytree.tree_leaves(after), strict=True)
        if isinstance(a, torch.Tensor) and (a.shape != b.shape or not torch.equal(a.detach(), b.detach()))
    ]
    return _detached(out), changed


def _detached(tree: Any) -> Any:
    return pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), tree)


def _call(module: torch.nn.Module, run: tuple[tuple[Any, ...], dict[str, Any]]) -> tuple[Any, Any, Any]:
    """Call ``module`` on a copy of ``run``; return (output, inputs before, inputs after the call)."""
    before = _clone(run)
    inputs = _clone(run)
    return module(*inputs[0], **inputs[1]), before, inputs


def _derive_distinguishing(
    mod: torch.nn.Module,
    example: tuple[tuple[Any, ...], dict[str, Any]],
    dynamic_shapes: Any,
    rtol: float | None,
    atol: float | None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A derived fresh input set on which eager's results differ from its results on the example."""
    probe = copy.deepcopy(mod)
    out, before, after = _call(probe, example)
    seen = _observed(out, before, after)
    problems = []
    for attempt in range(FRESH_ATTEMPTS):
        candidate = derive_fresh(mod, *example, dynamic_shapes=dynamic_shapes, attempt=attempt)
        try:
            again = copy.deepcopy(probe)
            out, before, after = _call(again, candidate)
        except Exception as exc:  # an invalid draw: try another, and report them all if none works
            problems.append(f"draw {attempt}: eager raised {type(exc).__name__}: {exc}")
            continue
        if _differs(_observed(out, before, after), seen, rtol, atol):
            return candidate
        problems.append(f"draw {attempt}: eager's outputs equal its outputs on the example")
    raise FreshInputError(
        "check_export: no derived fresh input distinguishes this program from one that replays its example "
        f"({'; '.join(problems)}); pass fresh=[...] inputs that change eager's outputs, or fresh=None with "
        "why='...' if the program is only valid on its example"
    )


# --- gradients -------------------------------------------------------------------------------------------------


def _requires_grad(tree: Any) -> list[bool | None]:
    return [leaf.requires_grad if isinstance(leaf, torch.Tensor) else None for leaf in pytree.tree_leaves(tree)]


def _scalar(outputs: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """The fixed scalar function of the outputs that both sides backpropagate: sum(out * weight)."""
    total = torch.zeros((), dtype=torch.float64)
    for out, weight in zip(outputs, weights, strict=True):
        real = torch.view_as_real(out.resolve_conj()) if out.is_complex() else out
        total = total + (real.to(torch.float64) * weight).sum()
    return total


def _gradients(
    outputs: list[torch.Tensor], weights: list[torch.Tensor], targets: Sequence[torch.Tensor]
) -> list[torch.Tensor | None]:
    """d(_scalar)/d(target) for each target; ``None`` where it does not require grad or is unused."""
    live = [t for t in targets if t.requires_grad]
    grads = iter(torch.autograd.grad(_scalar(outputs, weights), live, allow_unused=True) if live else [])
    return [next(grads) if t.requires_grad else None for t in targets]


def _check_gradients(
    where: str,
    eager: torch.nn.Module,
    program: torch.nn.Module,
    expected: Any,
    actual: Any,
    eager_in: Any,
    program_in: Any,
    rtol: float | None,
    atol: float | None,
) -> None:
    """Outputs require grad like eager's, and a fixed scalar of them backpropagates to the same gradients."""
    e_inputs = [t for t in pytree.tree_leaves(eager_in) if isinstance(t, torch.Tensor)]
    p_inputs = [t for t in pytree.tree_leaves(program_in) if isinstance(t, torch.Tensor)]
    e_params = dict(eager.named_parameters())
    if not any(t.requires_grad for t in e_inputs) and not any(p.requires_grad for p in e_params.values()):
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    GRAD_CHECKS.append((test, "requires_grad"))
    e_flags, p_flags = _requires_grad(expected), _requires_grad(actual)
    assert p_flags == e_flags, f"{where}: outputs requiring grad differ: program {p_flags}, eager {e_flags}"
    e_leaves, p_leaves = pytree.tree_leaves(expected), pytree.tree_leaves(actual)
    chosen = [
        i
        for i, t in enumerate(e_leaves)
        if isinstance(t, torch.Tensor) and t.requires_grad and (t.is_floating_point() or t.is_complex())
    ]
    if not chosen:
        return
    gen = torch.Generator().manual_seed(0x6AD)
    weights = []
    for i in chosen:
        shape = (*e_leaves[i].shape, 2) if e_leaves[i].is_complex() else tuple(e_leaves[i].shape)
        weights.append(torch.randn(shape, generator=gen, dtype=torch.float64))
    p_params = dict(program.named_parameters())
    names = [name for name, p in e_params.items() if p.requires_grad]
    missing = [name for name in names if name not in p_params]
    assert not missing, f"{where}: the program has no parameter(s) {missing} that eager differentiates"
    grad_inputs = [i for i, t in enumerate(e_inputs) if t.requires_grad]
    e_targets = [e_inputs[i] for i in grad_inputs] + [e_params[n] for n in names]
    p_targets = [p_inputs[i] for i in grad_inputs] + [p_params[n] for n in names]
    labels = [f"input {i}" for i in grad_inputs] + [f"parameter {n}" for n in names]
    try:
        e_grads = _gradients([e_leaves[i] for i in chosen], weights, e_targets)
    except RuntimeError:
        # Eager cannot differentiate it (a custom op without an autograd formula): there is nothing to compare
        # with, and a program whose decomposition can differentiate it is not wrong.
        return
    p_grads = _gradients([p_leaves[i] for i in chosen], weights, p_targets)
    for label, e_grad, p_grad in zip(labels, e_grads, p_grads, strict=True):
        if e_grad is None or p_grad is None:  # no gradient means a zero gradient (a cond's other branch gives zeros)
            other = p_grad if e_grad is None else e_grad
            assert other is None or not other.any(), (
                f"{where}: gradient of {label}: program {'none' if p_grad is None else 'a nonzero tensor'}, "
                f"eager {'none' if e_grad is None else 'a nonzero tensor'}"
            )
            continue
        try:
            torch.testing.assert_close(p_grad, e_grad, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as exc:
            raise AssertionError(f"{where}: gradient of {label} differs from eager's: {exc}") from None
    GRAD_CHECKS.append((test, "gradients"))


# --- check_export ----------------------------------------------------------------------------------------------


def module_state(module: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Buffers and parameters by name (sorted: strict export registers them in first-use order)."""
    return {
        "buffers": dict(sorted(module.named_buffers())),
        "parameters": {name: p.detach() for name, p in sorted(module.named_parameters())},
    }


def check_export(
    mod: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    fresh: Iterable[FreshItem] | None = DERIVE,
    why: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    **export_options: Any,
) -> ExportedProgram:
    """Export ``mod`` and check the program against eager on the example inputs and on fresh ones.

    ``fresh``: by default one input set derived from the example (:func:`derive_fresh`: new values, and other
    sizes on the dims ``dynamic_shapes`` makes dynamic); or a list of args tuples / ``(args, kwargs)`` pairs;
    or ``None`` with ``why="..."`` for a program that is only valid on its example. Every fresh set must
    change eager's outputs (or the inputs it mutates), so a program that replays its example cannot pass.

    Export gets copies of ``mod`` and of the inputs, eager runs on another copy, and the program runs on a
    copy of the exported program, so neither ``mod``, the inputs nor ``ep``'s state change here. After
    each call the outputs, the inputs (in-place mutation), the buffers and the parameters must agree; when
    an input or a parameter requires grad, so must the outputs' ``requires_grad`` and the gradients of a
    fixed scalar of the float outputs with respect to the inputs and parameters. Returns the program.
    """
    if fresh is None and not why:
        raise TypeError("check_export(fresh=None) needs why='...': the reason no fresh input can exist")
    if fresh is not None and why is not None:
        raise TypeError("check_export(why=...) goes with fresh=None only")
    example = (tuple(args), dict(kwargs or {}))
    if fresh is DERIVE:
        runs = [_derive_distinguishing(mod, example, export_options.get("dynamic_shapes"), rtol, atol)]
    else:
        runs = _runs_of(fresh or [])
        if fresh is not None and not runs:
            raise TypeError("check_export(fresh=[]): give fresh inputs, leave fresh out, or fresh=None, why='...'")
    exported_args, exported_kwargs = _clone(example)
    ep = export(copy.deepcopy(mod), exported_args, exported_kwargs or None, **export_options)
    compare_program(program_copy(ep), copy.deepcopy(mod), [example, *runs], rtol=rtol, atol=atol)
    return ep


def program_copy(ep: ExportedProgram) -> torch.nn.Module:
    """``ep.module()`` holding copies of ``ep``'s tensors: calling it leaves ``ep``'s own state as it is.

    Parameters, buffers and tensor constants are deep-copied together, so tied tensors stay one object and
    tensors sharing a storage keep sharing one (``copy.deepcopy(ep)`` itself fails on some torch 2.13
    programs, whose graph metadata holds tensors without storage).
    """
    program = ep.module()
    slots: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    for module in program.modules():
        held = {**module._parameters, **module._buffers}
        for table in (module._parameters, module._buffers):
            slots += [(table, name, t) for name, t in table.items() if t is not None]
        slots += [
            (vars(module), name, t)
            for name, t in vars(module).items()
            if isinstance(t, torch.Tensor) and name not in held
        ]
    copies = copy.deepcopy([t for _, _, t in slots])
    for (owner, name, _), new in zip(slots, copies, strict=True):
        owner[name] = new
    return program


def _compare_state(
    where: str, program: torch.nn.Module, eager: torch.nn.Module, rtol: float | None, atol: float | None
) -> None:
    """The program's buffers and parameters, by name, against eager's: same names, same values."""
    program_state, eager_state = module_state(program), module_state(eager)
    for kind in ("buffers", "parameters"):
        got, want = program_state[kind], eager_state[kind]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, (
            f"{where}: the program's {kind} differ from eager's by name: missing {missing}, extra {extra}"
        )
        for name, value in want.items():
            try:
                torch.testing.assert_close(got[name], value, rtol=rtol, atol=atol, equal_nan=True)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {kind[:-1]} {name} differs from eager's: {exc}") from None


def compare_program(
    program: torch.nn.Module,
    eager: torch.nn.Module,
    runs: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    first_is_example: bool = True,
) -> None:
    """Call ``program`` and ``eager`` on copies of each ``(args, kwargs)`` run, in order, and compare.

    After each call: outputs, inputs (in-place mutation), buffers and parameters by name, and, when an input
    or a parameter requires grad, the outputs' ``requires_grad`` and the gradients (:func:`_check_gradients`).
    With ``first_is_example``, every later run must change eager's outputs or mutated inputs from the first
    run's (else :class:`FreshInputError`: a program replaying the example would pass).
    """
    seen = None
    for number, run in enumerate(runs):
        where = (
            f"run #{number}" if not first_is_example else "example inputs" if number == 0 else f"fresh inputs #{number}"
        )
        expected, eager_before, eager_in = _call(eager, run)
        if first_is_example and number == 0:
            seen = _observed(expected, eager_before, eager_in)
        elif first_is_example and not _differs(_observed(expected, eager_before, eager_in), seen, rtol, atol):
            raise FreshInputError(
                f"check_export: on {where} eager's outputs (and mutated inputs) equal those on the example, so a "
                "program replaying its example would pass; give fresh inputs that change them"
            )
        actual, _, program_in = _call(program, run)
        _compare_state(where, program, eager, rtol, atol)
        try:
            assert_same(program_in, eager_in, rtol=rtol, atol=atol)
        except AssertionError as exc:
            raise AssertionError(f"{where}: inputs after the call (in-place mutation) differ: {exc}") from None
        try:
            assert_same(actual, expected, rtol=rtol, atol=atol)
        except AssertionError as exc:
            raise AssertionError(f"{where}: outputs differ: {exc}") from None
        _check_gradients(where, eager, program, expected, actual, eager_in, program_in, rtol, atol)


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
    "DERIVE",
    "LEGACY_CAPTURE_WRAPPERS",
    "LEGACY_STRICT_WRAPPERS",
    "NEW_CAPTURE_WRAPPER",
    "NON_STRICT_WRAPPERS",
    "RETRACE_WRAPPERS",
    "SERDES_WRAPPERS",
    "STRICT_WRAPPERS",
    "Binary",
    "FreshInputError",
    "FreshItem",
    "Range",
    "Ternary",
    "Unary",
    "as_range",
    "assert_same",
    "bounds",
    "check_export",
    "compare_program",
    "constraint_violation",
    "decomposes",
    "derive_fresh",
    "export",
    "exports_legacy_strict",
    "exports_strict",
    "input_kinds",
    "module_of",
    "module_state",
    "op_targets",
    "output_kinds",
    "program_copy",
    "raises_on_call",
    "randn",
    "sorted_buffers",
    "wrappers_tagged",
]
