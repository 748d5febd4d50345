"""The op-database side of the OpInfo sweep: which samples become cases, and remaking them where a case runs.

This is the only module of ``tests/ops`` that imports ``torch.testing._internal``'s operator database (``op_db``,
about 3 s, plus about 15 s to walk it): collection reads the case list ``tests/ops/catalog.py`` stores per torch
version, and this module is imported only where an OpInfo case runs (once per process) or when that list is
made anew. The list's fingerprint is this file's hash, so changing any rule here remakes the list.

The rules (why each is there: the docstring of ``tests/ops/test_opinfo.py``):

- dtype: float32 if the op supports it on CPU, else the first of ``OTHER_DTYPES`` it supports (int, bool,
  complex; one dtype per op without float coverage);
- sample: the first of ``op.sample_inputs_func`` (reseeded with ``SAMPLE_SEED`` before the call and before
  each sample, as ``op.sample_inputs`` does inside a unittest ``TestCase``) that is *eligible* (dense tensors
  and plain constants), on which eager does not raise, and whose tensors and eager outputs all hold at least
  one element; if no sample has elements, the first eligible one on which eager does not raise;
- second sample: the same op remade under each of ``SECOND_SEEDS`` in turn, the sample at the same position,
  taken if its tensors have the same layout (pytree structure, dtype, shape, strides, ``requires_grad``),
  eager does not raise on it, and eager's outputs on it are not close to those on the example; the call
  keeps the example's constants (they are part of the exported program);
- the op is called directly, not through OpInfo's ``wrapper_set_seed`` (``_direct``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_utils import SEED, set_rng_seed
from torch.testing._internal.opinfo.core import OpInfo, SampleInput
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from tests.ops.catalog import GRAD_SUFFIX, CaseSpec

MAX_SAMPLES_PER_OP = 1
"""How many samples of each op become cases (the first that qualify, in ``op.sample_inputs`` order)."""

SAMPLE_SEED = SEED
"""Seed of torch, random and numpy before the sample function and each sample: same in every process."""
SECOND_SEEDS = tuple(SEED + k for k in range(1, 9))
"""Seeds tried, in order, for the second sample of a case."""
POOL_SEEDS = tuple(SEED + k for k in range(1, 33))
"""Seeds tried, in order, for a ``POOL`` second sample (small pools, e.g. two scalars, need more draws)."""
SAMPLES_SEARCHED = 12
"""How many samples with elements are tried, in order, for one whose second sample qualifies."""

DEVICE = "cpu"
FLOAT_DTYPE = torch.float32
OTHER_DTYPES = (
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
    torch.complex128,
)
"""For ops without float32 on CPU: the first of these the op supports is its one dtype."""

RTOL = 1e-4
ATOL = 1e-5
"""float32 tolerances: export may reorder or decompose the computation, never change it beyond rounding."""

CONSTANT_TYPES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    str,
    torch.dtype,
    torch.device,
    torch.layout,
    torch.memory_format,
)
"""Non-tensor leaves a sample may carry: captured in the module as constants of the call."""

# Exclusion categories (keys of ``Sweep.excluded``), in the order the test module's docstring lists them.
NO_DTYPE = "no float32, int, bool or complex support on CPU"
UNINITIALIZED = "uninitialized output (has_nondeterministic_output)"
NO_SAMPLE = "no eligible sample"
SAMPLES_RAISE = "sample generation raises"
RANDOM = "random: calls an ATen op tagged nondeterministic_seeded"
EAGER_RAISES = "eager call raises on every eligible sample"
NO_GRAD_INPUT = "-grad sample holds no tensor that requires grad"
CATEGORIES = (NO_DTYPE, UNINITIALIZED, NO_SAMPLE, SAMPLES_RAISE, RANDOM, EAGER_RAISES, NO_GRAD_INPUT)

# How a case's second sample is made (``CaseSpec.second``), in the order they are tried.
OPINFO = "opinfo"
"""OpInfo's sample function under another seed, the sample at the same position."""
RANGE = "range"
"""The example's tensors drawn anew, each uniform in its own value range (OpInfo makes the sample from fixed
values, so no seed changes it)."""
POOL = "pool"
"""The example's tensors drawn anew from the values the example holds plus 0 (and inf, -inf, nan for floating
tensors): for predicates and comparisons, whose outputs never vary over OpInfo's random values."""

# Why a case has no second sample (``CaseSpec.no_second``).
SECOND_EMPTY = "the sample holds no elements (no sample of the op does), so any two samples give the same outputs"
SECOND_SAME_OUTPUT = (
    "eager's outputs are the same on every second sample tried (OpInfo's sample under seeds {seeds}, then its "
    "tensors drawn under {pool_seeds} from their own values, 0, inf, -inf and nan): they do not vary with the "
    "tensors' values (a constant-valued op, a property of the shape or dtype, or one that held for every draw)"
)
SECOND_OTHER = (
    "no second sample qualifies under seeds {seeds}: {counts} (layout: the sample's shape, dtype or strides "
    "change with the seed; raises: eager raises on it; same: eager's outputs equal the example's)"
)


def op_id(op: OpInfo) -> str:
    """``name`` or ``name.variant_test_name``: unique in op_db."""
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


@functools.cache
def ops_by_id() -> dict[str, OpInfo]:
    return {op_id(op): op for op in op_db}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_named(name: str) -> torch.dtype:
    dtype = getattr(torch, name)
    assert isinstance(dtype, torch.dtype), name
    return dtype


def case_dtype(op: OpInfo) -> torch.dtype | None:
    """float32 where the op supports it on CPU, else the first supported of ``OTHER_DTYPES``."""
    supported = op.supported_dtypes(DEVICE)
    return next((d for d in (FLOAT_DTYPE, *OTHER_DTYPES) if d in supported), None)


def case_id(op_name: str, dtype: torch.dtype, index: int, requires_grad: bool) -> str:
    """``add-sample0``, ``add-sample0-grad``; a dtype other than float32 is named: ``gcd-int64-sample0``."""
    middle = "" if dtype == FLOAT_DTYPE else f"-{dtype_name(dtype)}"
    return f"{op_name}{middle}-sample{index}" + (GRAD_SUFFIX if requires_grad else "")


# ---------------------------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One sample, flattened: its pytree spec and leaves (dense tensors and plain constants)."""

    index: int
    spec: pytree.TreeSpec
    leaves: tuple[Any, ...]

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(leaf for leaf in self.leaves if isinstance(leaf, torch.Tensor))

    def layout(self) -> str:
        """Structure and tensor metadata (not values, not constants): what the second sample must share."""
        parts = [str(self.spec)]
        for leaf in self.leaves:
            if isinstance(leaf, torch.Tensor):
                parts.append(f"{leaf.dtype}{list(leaf.shape)}{list(leaf.stride())}{'g' if leaf.requires_grad else ''}")
            else:
                parts.append("const")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _leaf_ok(leaf: Any) -> bool:
    if isinstance(leaf, torch.Tensor):
        return leaf.layout == torch.strided and not leaf.is_quantized and not leaf.is_nested
    return type(leaf) in CONSTANT_TYPES


def flatten(index: int, sample: SampleInput) -> Sample | None:
    """The sample's leaves and spec, or ``None`` if a leaf is neither a dense tensor nor a plain constant."""
    leaves, spec = pytree.tree_flatten((sample.input, tuple(sample.args), dict(sample.kwargs)))
    if not any(isinstance(leaf, torch.Tensor) for leaf in leaves) or not all(map(_leaf_ok, leaves)):
        return None
    return Sample(index, spec, tuple(leaves))


def samples(op: OpInfo, dtype: torch.dtype, requires_grad: bool, seed: int) -> Iterator[tuple[int, SampleInput]]:
    """``op.sample_inputs(DEVICE, dtype)`` without its ``TrackedInputIter`` wrapper, seeded with ``seed``.

    The wrapper crawls the stack twice per sample with ``inspect.stack()`` (0.3 s per op under pytest); outside
    a unittest ``TestCase`` all it adds is ``set_rng_seed`` before each sample, done here too. Seeding before
    the call as well makes sample functions that return a list (drawn at the call) independent of the
    process's generator state, as a ``TestCase`` (seeded in ``setUp``) has them.
    """
    set_rng_seed(seed)
    iterator = iter(op.sample_inputs_func(op, DEVICE, dtype, requires_grad))
    index = 0
    while True:
        set_rng_seed(seed)
        try:
            sample = next(iterator)
        except StopIteration:
            return
        yield index, sample
        index += 1


def sample_at(op: OpInfo, dtype: torch.dtype, requires_grad: bool, seed: int, index: int) -> Sample | None:
    """The eligible sample at ``index`` under ``seed``, or ``None``."""
    for i, sample in samples(op, dtype, requires_grad, seed):
        if i == index:
            return flatten(i, sample)
    return None


@contextmanager
def rng_restored() -> Iterator[None]:
    """Leave the torch, random and numpy generators as they were (sample generation reseeds them)."""
    states = torch.random.get_rng_state(), random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])


# ---------------------------------------------------------------------------------------------------------------
# The call
# ---------------------------------------------------------------------------------------------------------------


def _call_directly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _direct(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with OpInfo's ``wrapper_set_seed(op, ...)`` replaced by ``op(...)``.

    OpInfo calls dropout, scaled_dot_product_attention, ``item`` and its random ops through
    ``wrapper_set_seed``, which reseeds inside ``freeze_rng_state``; strict export cannot trace that helper
    (dynamo stops at the ``torch._C`` guards it enters), though it traces the ops themselves. The sweep keeps
    only calls that run no random op (``RANDOM``), for which the reseeding changes nothing: the same lambda
    with the helper bound to a plain call computes the same, traceably.
    """
    code = getattr(fn, "__code__", None)
    if not isinstance(fn, types.FunctionType) or code is None or "wrapper_set_seed" not in code.co_names:
        return fn
    namespace = {**fn.__globals__, "wrapper_set_seed": _call_directly}
    return types.FunctionType(code, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def op_callable(op: OpInfo) -> Callable[..., Any]:
    return _direct(op.op)


class OpCall(torch.nn.Module):
    """``op(input, *args, **kwargs)`` with every tensor leaf a forward input and every other leaf a constant."""

    def __init__(self, fn: Callable[..., Any], sample: Sample) -> None:
        super().__init__()
        self.fn = fn
        self.spec = sample.spec
        self.slots = tuple(None if isinstance(leaf, torch.Tensor) else leaf for leaf in sample.leaves)
        self.is_input = tuple(isinstance(leaf, torch.Tensor) for leaf in sample.leaves)

    def forward(self, *tensors: torch.Tensor) -> Any:
        it = iter(tensors)
        leaves = [next(it) if is_input else const for is_input, const in zip(self.is_input, self.slots, strict=True)]
        sample_input, args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return self.fn(sample_input, *args, **kwargs)


def clone_tensors(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Fresh leaves with the same values and ``requires_grad`` (runs never see each other's in-place changes)."""
    return tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)


def eager(fn: Callable[..., Any], example: Sample, tensors: tuple[torch.Tensor, ...]) -> Any:
    """Eager's outputs on copies of ``tensors``, called with the example's constants."""
    return OpCall(fn, example)(*clone_tensors(tensors))


def same_values(a: Any, b: Any) -> bool:
    """Whether two output pytrees are equal to the sweep's tolerances (what a replayed example would pass)."""
    a_leaves, a_spec = pytree.tree_flatten(a)
    b_leaves, b_spec = pytree.tree_flatten(b)
    if a_spec != b_spec:
        return False
    for x, y in zip(a_leaves, b_leaves, strict=True):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            try:
                torch.testing.assert_close(x.detach(), y.detach(), rtol=RTOL, atol=ATOL, equal_nan=True)
            except AssertionError:
                return False
        elif x != y and not (isinstance(x, float) and isinstance(y, float) and x != x and y != y):
            return False
    return True


def has_elements(tensors: tuple[torch.Tensor, ...]) -> bool:
    """Every tensor holds at least one element."""
    return all(t.numel() > 0 for t in tensors)


def some_output(out: Any) -> bool:
    """The outputs hold a non-tensor or a tensor with elements: something a wrong program could get wrong."""
    leaves = pytree.tree_leaves(out)
    return any(not isinstance(leaf, torch.Tensor) or leaf.numel() > 0 for leaf in leaves)


def redraw(example: Sample, seed: int, how: str) -> Sample:
    """The example with every tensor drawn anew under ``seed``: same shape, dtype, strides, ``requires_grad``.

    ``RANGE``: uniform over the tensor's own [min, max] (integers inclusive; widened by one each way when the
    tensor holds one value, not below 0 for a non-negative one), so indices stay valid and signs stay as
    OpInfo chose them. ``POOL``: each element picked from the values the example's tensors of that dtype
    hold, plus 0, inf, -inf and nan for floating dtypes. Bools are drawn at random either way; complex
    tensors are not redrawn (``ValueError``).
    """
    set_rng_seed(seed)
    pools: dict[torch.dtype, torch.Tensor] = {}
    if how == POOL:
        for t in example.tensors:
            pools[t.dtype] = torch.cat([pools.get(t.dtype, t.new_empty(0)), t.detach().flatten()])
        for dtype, values in pools.items():
            extra = [0.0, math.inf, -math.inf, math.nan] if dtype.is_floating_point else []
            pools[dtype] = torch.cat([values, torch.tensor(extra, dtype=dtype)]).unique()
    leaves = []
    for leaf in example.leaves:
        if not isinstance(leaf, torch.Tensor):
            leaves.append(leaf)
            continue
        values = leaf.detach()
        if leaf.dtype == torch.bool:
            new = torch.randint(0, 2, leaf.shape, dtype=torch.bool)
        elif leaf.is_complex():
            raise ValueError("complex samples are not redrawn")
        elif how == POOL:
            pool = pools[leaf.dtype]
            new = pool[torch.randint(0, pool.numel(), leaf.shape)]
        else:
            low, high = values.min().item(), values.max().item()
            if low == high:
                low, high = (max(low - 1, 0) if low >= 0 else low - 1), high + 1
            if leaf.dtype.is_floating_point:
                new = torch.empty(leaf.shape, dtype=leaf.dtype).uniform_(low, high)
            else:
                new = torch.randint(int(low), int(high) + 1, leaf.shape, dtype=leaf.dtype)
        out = torch.empty_strided(leaf.shape, leaf.stride(), dtype=leaf.dtype)
        out.copy_(new)
        leaves.append(out.requires_grad_(leaf.requires_grad))
    return Sample(example.index, example.spec, tuple(leaves))


class _SeededOpSpy(TorchDispatchMode):
    """Notes every ATen op tagged ``nondeterministic_seeded`` (a random op) that runs inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if torch.Tag.nondeterministic_seeded in func.tags:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def random_ops(fn: Callable[..., Any], sample: Sample) -> list[str]:
    """The random ATen ops the eager call runs (outputs cannot tell: OpInfo reseeds inside its random ops)."""
    with _SeededOpSpy() as spy:
        eager(fn, sample, sample.tensors)
    return spy.seen


# ---------------------------------------------------------------------------------------------------------------
# Building the case list (what tests/ops/catalog.py stores)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    cases: list[CaseSpec]
    excluded: dict[str, list[str]]


@dataclass(frozen=True)
class _Choice:
    sample: Sample | None
    excluded: str = ""
    second: str | None = None
    seed: int | None = None
    no_second: str | None = None


def _choose(fn: Callable[..., Any], op: OpInfo, dtype: torch.dtype, requires_grad: bool) -> _Choice:
    """The case's sample and how its second sample is made (see the module docstring), or why there is none."""
    first: tuple[Sample, Any, str] | None = None
    empty: Sample | None = None
    eligible = without_grad = False
    tries = 0
    for index, raw in samples(op, dtype, requires_grad, SAMPLE_SEED):
        sample = flatten(index, raw)
        if sample is None:
            continue
        if requires_grad and not any(t.requires_grad for t in sample.tensors):
            without_grad = True
            continue
        eligible = True
        try:
            out = eager(fn, sample, sample.tensors)
        except Exception:
            continue
        if not (has_elements(sample.tensors) and some_output(out)):
            empty = empty or sample
            continue
        how, seed, why = _second(fn, op, dtype, requires_grad, sample, out)
        if how is not None:
            return _Choice(sample, second=how, seed=seed)
        first = first or (sample, out, why)
        tries += 1
        if tries == SAMPLES_SEARCHED:
            break
    if first is not None:
        sample, out, why = first
        for seed in POOL_SEEDS:
            if _differs(fn, sample, redraw_or_none(sample, seed, POOL), out):
                return _Choice(sample, second=POOL, seed=seed)
        return _Choice(sample, no_second=why.format(pool_seeds=f"seeds {POOL_SEEDS[0]}..{POOL_SEEDS[-1]}"))
    if empty is not None:
        return _Choice(empty, no_second=SECOND_EMPTY)
    return _Choice(None, excluded=EAGER_RAISES if eligible else NO_GRAD_INPUT if without_grad else NO_SAMPLE)


def redraw_or_none(example: Sample, seed: int, how: str) -> Sample | None:
    try:
        return redraw(example, seed, how)
    except ValueError:
        return None


def _differs(fn: Callable[..., Any], example: Sample, other: Sample | None, expected: Any) -> bool:
    """Eager runs on ``other`` (with the example's constants) and its outputs are not close to ``expected``."""
    if other is None:
        return False
    try:
        actual = eager(fn, example, other.tensors)
    except Exception:
        return False
    return not same_values(actual, expected)


def _second(
    fn: Callable[..., Any], op: OpInfo, dtype: torch.dtype, requires_grad: bool, example: Sample, expected: Any
) -> tuple[str | None, int | None, str]:
    """``(OPINFO or RANGE, seed, "")`` for the first qualifying second sample, else ``(None, None, why)``."""
    layout = example.layout()
    seen: dict[str, int] = {}
    fixed = True
    for seed in SECOND_SEEDS:
        other = sample_at(op, dtype, requires_grad, seed, example.index)
        if other is None or other.layout() != layout:
            seen["layout"] = seen.get("layout", 0) + 1
            fixed = False
            continue
        if not all(torch.equal(a, b) for a, b in zip(other.tensors, example.tensors, strict=True)):
            fixed = False
        try:
            actual = eager(fn, example, other.tensors)
        except Exception:
            seen["raises"] = seen.get("raises", 0) + 1
            continue
        if same_values(actual, expected):
            seen["same"] = seen.get("same", 0) + 1
            continue
        return OPINFO, seed, ""
    if fixed:
        for seed in SECOND_SEEDS:
            if _differs(fn, example, redraw_or_none(example, seed, RANGE), expected):
                return RANGE, seed, ""
    seeds = f"{SECOND_SEEDS[0]}..{SECOND_SEEDS[-1]}"
    if fixed or set(seen) == {"same"}:
        return None, None, SECOND_SAME_OUTPUT.replace("{seeds}", seeds)
    counts = ", ".join(f"{k} {n}" for k, n in sorted(seen.items()))
    return None, None, SECOND_OTHER.format(seeds=seeds, counts=counts)


def build(ops: list[OpInfo] | None = None) -> Sweep:
    """Every op's case(s) after the exclusion rules, with their second samples; deterministic."""
    sweep = Sweep([], {})

    def exclude(category: str, name: str) -> None:
        sweep.excluded.setdefault(category, []).append(name)

    with rng_restored():
        for op in op_db if ops is None else ops:
            name = op_id(op)
            dtype = case_dtype(op)
            if dtype is None:
                exclude(NO_DTYPE, name)
                continue
            if op.has_nondeterministic_output:
                exclude(UNINITIALIZED, name)
                continue
            fn = op_callable(op)
            for requires_grad in (False, True) if op.supports_autograd else (False,):
                mode_name = name + (GRAD_SUFFIX if requires_grad else "")
                try:
                    choice = _choose(fn, op, dtype, requires_grad)
                except Exception:
                    exclude(SAMPLES_RAISE, mode_name)
                    continue
                sample = choice.sample
                if sample is None:
                    exclude(choice.excluded, mode_name)
                    continue
                cid = case_id(name, dtype, sample.index, requires_grad)
                if random_ops(fn, sample):
                    exclude(RANDOM, cid)
                    continue
                sweep.cases.append(
                    CaseSpec(
                        cid, name, dtype_name(dtype), sample.index, requires_grad, sample.layout(),
                        choice.second, choice.seed, choice.no_second,
                    )
                )
    return sweep


# ---------------------------------------------------------------------------------------------------------------
# Remaking a case where it runs
# ---------------------------------------------------------------------------------------------------------------


class StaleCaseList(AssertionError):
    """The stored case list no longer describes what op_db makes (regenerate it: see tests/ops/catalog.py)."""


@dataclass(frozen=True)
class Case:
    """A case made real: the module to export, the example's tensors and the second sample's (or ``None``)."""

    spec: CaseSpec
    fn: Callable[..., Any]
    example: Sample
    second: Sample | None

    def module(self) -> torch.nn.Module:
        return OpCall(self.fn, self.example)


def materialize(spec: CaseSpec) -> Case:
    """Remake ``spec``'s samples from op_db (generators restored after); checks they are the stored ones."""
    op = ops_by_id().get(spec.op)
    if op is None:
        raise StaleCaseList(f"{spec.id}: op {spec.op!r} is not in op_db")
    dtype = dtype_named(spec.dtype)
    with rng_restored():
        example = sample_at(op, dtype, spec.grad, SAMPLE_SEED, spec.sample)
        if example is None or example.layout() != spec.layout:
            raise StaleCaseList(f"{spec.id}: op_db's sample {spec.sample} is not the stored one")
        if spec.second is None or spec.second_seed is None:
            second = None
        elif spec.second == OPINFO:
            second = sample_at(op, dtype, spec.grad, spec.second_seed, spec.sample)
        else:
            second = redraw(example, spec.second_seed, spec.second)
    if spec.second is not None and (second is None or second.layout() != spec.layout):
        raise StaleCaseList(f"{spec.id}: the sample under seed {spec.second_seed} is not laid out like the example")
    return Case(spec, op_callable(op), example, second)
