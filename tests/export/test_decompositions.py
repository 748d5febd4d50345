"""``ExportedProgram.run_decompositions``: the default core ATen table, ``{}`` and custom tables.

Every decomposed program must still compute what eager computes (outputs, mutated inputs
and buffers), keep its state, constants and dynamic ranges, and contain exactly the ops
the table asks for: non-core ops vanish under the default table, ``{}`` only turns the
training IR into the functional inference IR, and a custom table keeps or replaces ops.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch.export import Dim, ExportedProgram, default_decompositions

from tests.export.helpers import (
    ALL_WRAPPERS,
    LEGACY_STRICT_WRAPPERS,
    NEW_CAPTURE_WRAPPER,
    assert_same,
    bounds,
    check_export,
    compare_program,
    decomposes,
    input_kinds,
    module_of,
    module_state,
    op_targets,
    output_kinds,
    program_copy,
    randn,
)

aten = torch.ops.aten
F = torch.nn.functional

STRICT_DROPS_UNUSED_STATE = (
    "torch 2.13 strict export: a parameter or buffer the graph never reads (e.g. BatchNorm's "
    "num_batches_tracked in eval mode) stays in ep.state_dict but ep.module() does not register it, "
    "so the program's state misses it (module)"
)
STRICT_DROPS_UNUSED_STATE_MATCH = r"buffers differ from eager's by name: missing \['1\.num_batches_tracked'\]"

BN_TRAIN_BACKWARD_AFTER_WRITEBACK = (
    "torch 2.13 run_decompositions: training-mode batch norm becomes _native_batch_norm_legit_functional, whose "
    "autograd node saves running_mean and running_var, and ep.module() then copies the new running statistics into "
    "those same buffers in place, so a backward pass through the program raises 'one of the variables needed for "
    "gradient computation has been modified by an inplace operation' (decompose; eager and the training IR are fine; "
    "these tests decompose under every wrapper)"
)
BN_TRAIN_BACKWARD_AFTER_WRITEBACK_MATCH = (
    r"one of the variables needed for gradient computation has been modified by an inplace operation"
)
V2_PLACEHOLDERS_RENAMED = (
    "torch 2.13 strict_v2 (new capture path): with dynamic_shapes omitted the user-input placeholders are named "
    "after the flattened inputs (args_0, ...), and run_decompositions renames them to forward's parameter names "
    "(x), so the decomposed program's user_inputs differ from the program's (export, decompose)"
)
V2_PLACEHOLDERS_RENAMED_MATCH = r"assert \('x',\) == \('args_0',\)"


@torch.library.custom_op("harness_decomp::scaled_sin", mutates_args=())
def _scaled_sin(x: torch.Tensor, k: float) -> torch.Tensor:
    """A custom op that no decomposition table knows unless the test adds it."""
    return torch.sin(x) * k


@_scaled_sin.register_fake
def _scaled_sin_fake(x: torch.Tensor, k: float) -> torch.Tensor:
    return torch.empty_like(x)


def _matches_eager(
    decomposed: ExportedProgram,
    model: torch.nn.Module,
    runs: Sequence[tuple[Any, ...]],
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Run a copy of ``decomposed.module()`` against a fresh eager copy of ``model``, starting from its own state.

    ``check_export`` exports and runs copies, so ``model`` and the programs derived from its ``ep`` still hold
    the model's initial state; the decomposed program must start from it (checked, never copied from it to
    eager). Then outputs, mutated inputs, buffers, parameters and gradients must agree after every run.
    """
    eager = copy.deepcopy(model)
    program = program_copy(decomposed)
    assert_same(module_state(program), module_state(eager), rtol=rtol, atol=atol)
    compare_program(program, eager, [(tuple(args), {}) for args in runs], rtol=rtol, atol=atol, first_is_example=False)


def _is_core_aten(target: Any) -> bool:
    if not isinstance(target, torch._ops.OpOverload):
        return True  # operator.getitem and friends
    return torch.Tag.core in target.tags or target.namespace != "aten"


class _LinSoftmax(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).softmax(-1)


class _Counter(torch.nn.Module):
    """In-place buffer updates: the training IR keeps them, the inference IR turns them into outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("total", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        self.total.add_(x.sum(0))
        return F.gelu(self.lin(x)) + self.total


def _case(
    name: str, make: Callable[[], torch.nn.Module], shapes: Sequence[tuple[int, ...]], gone: str, present: str
) -> Any:
    return pytest.param(make, shapes, gone, present, id=name)


CORE_CASES = [
    _case("linear_2d", lambda: torch.nn.Linear(4, 3), [(2, 4)], "aten.linear.default", "aten.addmm.default"),
    _case("linear_3d", lambda: torch.nn.Linear(4, 3), [(2, 5, 4)], "aten.linear.default", "aten.addmm.default"),
    _case("softmax", lambda: module_of(lambda x: x.softmax(-1)), [(2, 3)], "aten.softmax.int", "aten._softmax.default"),
    _case(
        "log_softmax",
        lambda: module_of(lambda x: F.log_softmax(x, -1)),
        [(2, 3)],
        "aten.log_softmax.int",
        "aten._log_softmax.default",
    ),
    _case(
        "layer_norm",
        lambda: torch.nn.LayerNorm(4),
        [(2, 4)],
        "aten.layer_norm.default",
        "aten.native_layer_norm.default",
    ),
    _case(
        "conv2d", lambda: torch.nn.Conv2d(2, 3, 3), [(1, 2, 5, 5)], "aten.conv2d.default", "aten.convolution.default"
    ),
    _case("flatten", lambda: torch.nn.Flatten(), [(2, 3, 4)], "aten.flatten.using_ints", "aten.view.default"),
    _case("matmul", lambda: module_of(torch.matmul), [(2, 3, 4), (2, 4, 5)], "aten.matmul.default", "aten.bmm.default"),
    _case("silu", lambda: torch.nn.SiLU(), [(6,)], "aten.silu.default", "aten.sigmoid.default"),
    _case("hardswish", lambda: torch.nn.Hardswish(), [(6,)], "aten.hardswish.default", "aten.clamp.default"),
    _case(
        "addcmul",
        lambda: module_of(lambda a, b, c: torch.addcmul(a, b, c, value=0.5)),
        [(3,), (3,), (3,)],
        "aten.addcmul.default",
        "aten.mul.Tensor",
    ),
    _case(
        "adaptive_avg_pool",
        lambda: torch.nn.AdaptiveAvgPool2d(1),
        [(1, 2, 4, 4)],
        "aten.adaptive_avg_pool2d.default",
        "aten.mean.dim",
    ),
    _case("glu", lambda: torch.nn.GLU(), [(2, 4)], "aten.glu.default", "aten.sigmoid.default"),
    _case("std", lambda: module_of(lambda x: x.std(0)), [(3, 2)], "aten.std.dim", "aten.sqrt.default"),
]


@pytest.mark.parametrize(("make", "shapes", "gone", "present"), CORE_CASES)
def test_default_table_lowers_to_core_aten(
    make: Callable[[], torch.nn.Module], shapes: Sequence[tuple[int, ...]], gone: str, present: str
) -> None:
    model = make()
    args = tuple(randn(*shape) for shape in shapes)
    ep = check_export(model, args, fresh=[tuple(randn(*shape) for shape in shapes)])
    if not decomposes():
        # {} (run_decomp wrappers) already lowers some of these, e.g. flatten -> view.
        assert gone in op_targets(ep)
    decomposed = ep.run_decompositions()
    assert gone not in op_targets(decomposed)
    assert present in op_targets(decomposed)
    _matches_eager(decomposed, model, [args, tuple(randn(*shape) for shape in shapes)], rtol=1e-5, atol=1e-5)


@pytest.mark.quick
def test_default_table_output_is_all_core_aten() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.SiLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(-1)
    )
    ep = check_export(model, (randn(2, 4),), fresh=[(randn(2, 4),)])
    decomposed = ep.run_decompositions()
    nodes = [n for n in decomposed.graph.nodes if n.op == "call_function"]
    not_core = [str(n.target) for n in nodes if not _is_core_aten(n.target)]
    assert not_core == []
    _matches_eager(decomposed, model, [(randn(2, 4),)], rtol=1e-5, atol=1e-5)


@pytest.mark.golden
@pytest.mark.quick
def test_empty_table_functionalizes_buffer_mutation() -> None:
    model = _Counter()
    ep = check_export(model, (randn(3, 4),), fresh=[(randn(3, 4),)])
    decomposed = ep.run_decompositions({})
    assert "aten.add_.Tensor" not in op_targets(decomposed)
    assert "aten.linear.default" in op_targets(decomposed), "{} must not lower to core ATen"
    assert "aten.gelu.default" in op_targets(decomposed)
    mutations = [target for kind, target in output_kinds(decomposed) if kind == "BUFFER_MUTATION"]
    assert sorted(mutations) == ["calls", "total"]
    _matches_eager(decomposed, model, [(randn(3, 4),), (randn(3, 4),)])


def test_empty_table_keeps_non_core_ops() -> None:
    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    decomposed = ep.run_decompositions({})
    assert {"aten.linear.default", "aten.softmax.int"} <= op_targets(decomposed)
    assert "aten.addmm.default" not in op_targets(decomposed)
    _matches_eager(decomposed, model, [(randn(2, 4),)])


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "train",
            marks=pytest.mark.xfail_under(
                *ALL_WRAPPERS, reason=BN_TRAIN_BACKWARD_AFTER_WRITEBACK, match=BN_TRAIN_BACKWARD_AFTER_WRITEBACK_MATCH
            ),
        ),
        pytest.param(
            "eval",
            marks=pytest.mark.xfail_under(
                *LEGACY_STRICT_WRAPPERS, reason=STRICT_DROPS_UNUSED_STATE, match=STRICT_DROPS_UNUSED_STATE_MATCH
            ),
        ),
    ],
)
def test_empty_table_batch_norm(mode: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model.train(mode == "train")
    ep = check_export(model, (randn(5, 4),), fresh=[(randn(5, 4),)], rtol=1e-5, atol=1e-5)
    decomposed = ep.run_decompositions({})
    targets = op_targets(decomposed)
    assert "aten.batch_norm.default" not in targets
    mutations = sorted(target for kind, target in output_kinds(decomposed) if kind == "BUFFER_MUTATION")
    if mode == "train":
        assert "aten._native_batch_norm_legit_functional.default" in targets
        assert mutations == ["1.num_batches_tracked", "1.running_mean", "1.running_var"]
    else:
        assert "aten._native_batch_norm_legit_no_training.default" in targets
        assert mutations == []
    _matches_eager(decomposed, model, [(randn(5, 4),), (randn(5, 4),)], rtol=1e-5, atol=1e-5)


def test_empty_table_user_input_mutation() -> None:
    def scale_in_place(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x.mul_(2)
        return x + y

    model = module_of(scale_in_place)
    ep = check_export(model, (randn(3), randn(3)), fresh=[(randn(3), randn(3))])
    decomposed = ep.run_decompositions({})
    assert "aten.mul_.Tensor" not in op_targets(decomposed)
    assert [kind for kind, _ in output_kinds(decomposed)] == ["USER_INPUT_MUTATION", "USER_OUTPUT"]
    _matches_eager(decomposed, model, [(randn(3), randn(3))])


@pytest.mark.quick
def test_custom_table_without_linear_keeps_linear() -> None:
    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    table = default_decompositions()
    assert aten.linear.default in table
    del table[aten.linear.default]
    decomposed = ep.run_decompositions(table)
    targets = op_targets(decomposed)
    assert "aten.linear.default" in targets
    assert "aten.addmm.default" not in targets
    assert "aten._softmax.default" in targets, "the rest of the table still applies"
    _matches_eager(decomposed, model, [(randn(2, 4),)])


def test_default_decompositions_returns_a_fresh_table() -> None:
    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    first = default_decompositions()
    del first[aten.linear.default]
    second = default_decompositions()
    assert aten.linear.default in second
    decomposed = ep.run_decompositions(second)
    assert "aten.linear.default" not in op_targets(decomposed)
    assert "aten.addmm.default" in op_targets(decomposed)


def test_custom_decomposition_replaces_core_op() -> None:
    """relu is core ATen, so the default table keeps it; a table entry can still replace it."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    ep = check_export(model, (randn(3, 4),))
    assert "aten.relu.default" in op_targets(ep.run_decompositions())
    table = default_decompositions()
    table[aten.relu.default] = lambda x: torch.clamp(x, min=0)
    decomposed = ep.run_decompositions(table)
    assert "aten.relu.default" not in op_targets(decomposed)
    assert "aten.clamp.default" in op_targets(decomposed)
    _matches_eager(decomposed, model, [(randn(3, 4),), (randn(3, 4),)])


def test_custom_decomposition_is_used_numerically() -> None:
    """A deliberately different gelu: the program must compute the table's version, not eager's."""

    def sigmoid_gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)

    model = module_of(F.gelu)
    ep = check_export(model, (randn(8),))
    table = default_decompositions()
    table[aten.gelu.default] = sigmoid_gelu
    decomposed = ep.run_decompositions(table)
    assert "aten.gelu.default" not in op_targets(decomposed)
    x = randn(8) * 3
    actual = decomposed.module()(x)
    torch.testing.assert_close(actual, sigmoid_gelu(x))
    assert not torch.allclose(actual, F.gelu(x))


class _UsesCustomOp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.harness_decomp.scaled_sin(self.lin(x), 2.0)


def test_custom_op_kept_by_default_and_decomposed_on_request() -> None:
    model = _UsesCustomOp()
    ep = check_export(model, (randn(2, 4),))
    assert "harness_decomp.scaled_sin.default" in op_targets(ep.run_decompositions())
    calls: list[float] = []

    def decompose_scaled_sin(x: torch.Tensor, k: float) -> torch.Tensor:
        calls.append(k)
        return torch.sin(x) * k

    table = default_decompositions()
    table[torch.ops.harness_decomp.scaled_sin.default] = decompose_scaled_sin
    decomposed = ep.run_decompositions(table)
    assert calls == [2.0], "the decomposition runs once, while tracing"
    targets = op_targets(decomposed)
    assert "harness_decomp.scaled_sin.default" not in targets
    assert {"aten.sin.default", "aten.addmm.default"} <= targets
    _matches_eager(decomposed, model, [(randn(2, 4),)], rtol=1e-5, atol=1e-5)


def test_plain_dict_table_decomposes_only_listed_op() -> None:
    def linear_by_hand(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return torch.mm(x, w.t()) + b

    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    decomposed = ep.run_decompositions({aten.linear.default: linear_by_hand})
    targets = op_targets(decomposed)
    assert "aten.linear.default" not in targets
    assert "aten.mm.default" in targets
    assert "aten.softmax.int" in targets, "ops missing from the table are left alone"
    _matches_eager(decomposed, model, [(randn(2, 4),)], rtol=1e-5, atol=1e-5)


def test_run_decompositions_leaves_original_program_unchanged() -> None:
    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    before = op_targets(ep)
    decomposed = ep.run_decompositions()
    assert decomposed is not ep
    assert op_targets(ep) == before
    assert "aten.linear.default" in op_targets(ep)
    assert_same(ep.module()(torch.ones(2, 4)), model(torch.ones(2, 4)))


def test_default_table_is_idempotent() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.GELU())
    ep = check_export(model, (randn(2, 4),))
    once = ep.run_decompositions()
    twice = once.run_decompositions()
    assert op_targets(twice) == op_targets(once)
    _matches_eager(twice, model, [(randn(2, 4),)], rtol=1e-5, atol=1e-5)


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_PLACEHOLDERS_RENAMED, match=V2_PLACEHOLDERS_RENAMED_MATCH)
def test_decomposition_preserves_state_and_input_kinds() -> None:
    model = _Counter()
    ep = check_export(model, (randn(3, 4),))
    decomposed = ep.run_decompositions()
    assert input_kinds(decomposed) == input_kinds(ep)
    assert decomposed.graph_signature.user_inputs == ep.graph_signature.user_inputs
    assert sorted(decomposed.state_dict) == sorted(ep.state_dict)
    assert_same(dict(decomposed.state_dict), dict(ep.state_dict))


class _WithConstant(torch.nn.Module):
    """A plain tensor attribute: neither parameter nor buffer, so export lifts it as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.offset = torch.arange(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + self.offset


def test_decomposition_preserves_lifted_constants() -> None:
    model = _WithConstant()
    ep = check_export(model, (randn(2, 3),))
    decomposed = ep.run_decompositions()
    assert ("CONSTANT_TENSOR", "offset") in input_kinds(decomposed)
    assert_same(decomposed.constants["offset"], torch.arange(3.0))
    _matches_eager(decomposed, model, [(randn(2, 3),)], rtol=1e-5, atol=1e-5)


def test_default_table_buffer_mutation_matches_eager() -> None:
    model = _Counter()
    ep = check_export(model, (randn(3, 4),), fresh=[(randn(3, 4),)])
    decomposed = ep.run_decompositions()
    assert "aten.gelu.default" in op_targets(decomposed)
    assert "aten.addmm.default" in op_targets(decomposed)
    mutations = sorted(target for kind, target in output_kinds(decomposed) if kind == "BUFFER_MUTATION")
    assert mutations == ["calls", "total"]
    _matches_eager(decomposed, model, [(randn(3, 4),), (randn(3, 4),), (randn(3, 4),)], rtol=1e-5, atol=1e-5)


@pytest.mark.quick
@pytest.mark.parametrize("table", ["default", "empty", "custom"])
def test_decomposition_dynamic_batch(table: str) -> None:
    model = _LinSoftmax()
    batch = Dim("batch", min=2, max=32)
    ep = check_export(model, (randn(3, 4),), fresh=[(randn(7, 4),)], dynamic_shapes=({0: batch},))
    if table == "default":
        decomposed = ep.run_decompositions()
    elif table == "empty":
        decomposed = ep.run_decompositions({})
    else:
        custom = default_decompositions()
        del custom[aten.linear.default]
        decomposed = ep.run_decompositions(custom)
    assert bounds(decomposed) == bounds(ep) == [(2, 32)]
    _matches_eager(decomposed, model, [(randn(n, 4),) for n in (2, 5, 32)], rtol=1e-5, atol=1e-5)


def test_decomposition_dynamic_flatten_keeps_symbolic_view() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    batch = Dim("batch", min=1, max=16)
    ep = check_export(model, (randn(4, 3, 4),), fresh=[(randn(9, 3, 4),)], dynamic_shapes=({0: batch},))
    decomposed = ep.run_decompositions()
    assert "aten.view.default" in op_targets(decomposed)
    assert "aten.flatten.using_ints" not in op_targets(decomposed)
    assert bounds(decomposed) == [(1, 16)]
    _matches_eager(decomposed, model, [(randn(n, 3, 4),) for n in (1, 6, 16)], rtol=1e-5, atol=1e-5)
    with pytest.raises((AssertionError, RuntimeError), match=r"batch|shape|size|range|<= 16"):
        decomposed.module()(randn(17, 3, 4))


@pytest.mark.xfail_under(
    *ALL_WRAPPERS, reason=BN_TRAIN_BACKWARD_AFTER_WRITEBACK, match=BN_TRAIN_BACKWARD_AFTER_WRITEBACK_MATCH
)
def test_decomposition_dynamic_batch_norm_training() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    batch = Dim("batch", min=2, max=64)
    ep = check_export(model, (randn(4, 4),), fresh=[(randn(9, 4),)], dynamic_shapes=({0: batch},), rtol=1e-5, atol=1e-5)
    decomposed = ep.run_decompositions()
    assert "aten._native_batch_norm_legit_functional.default" in op_targets(decomposed)
    assert bounds(decomposed) == [(2, 64)]
    _matches_eager(decomposed, model, [(randn(n, 4),) for n in (2, 11, 3)], rtol=1e-5, atol=1e-5)


def test_decomposition_dynamic_two_dims_with_buffer_mutation() -> None:
    class RunningMax(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("peak", torch.full((4,), -1e9))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.peak.copy_(torch.maximum(self.peak, x.amax(dim=(0, 1))))
            return F.layer_norm(x, (4,)) * self.peak

    model = RunningMax()
    dims = {0: Dim("batch", min=1, max=8), 1: Dim("seq", min=2, max=10)}
    ep = check_export(model, (randn(2, 3, 4),), fresh=[(randn(5, 7, 4),)], dynamic_shapes=(dims,))
    decomposed = ep.run_decompositions()
    assert "aten.native_layer_norm.default" in op_targets(decomposed)
    assert ("BUFFER_MUTATION", "peak") in output_kinds(decomposed)
    assert sorted(bounds(decomposed)) == [(1, 8), (2, 10)]
    _matches_eager(decomposed, model, [(randn(1, 2, 4),), (randn(8, 10, 4) * 5,)], rtol=1e-5, atol=1e-5)


def test_default_after_empty_table() -> None:
    """Training IR -> inference IR -> core ATen in two steps equals one default decomposition."""
    model = _LinSoftmax()
    ep = check_export(model, (randn(2, 4),))
    two_steps = ep.run_decompositions({}).run_decompositions()
    one_step = ep.run_decompositions()
    assert op_targets(two_steps) == op_targets(one_step)
    _matches_eager(two_steps, model, [(randn(2, 4),)], rtol=1e-5, atol=1e-5)
