"""What ``ExportedProgram.module()`` is and how it behaves, and what the program records about its inputs.

Covers the module's type, state (``state_dict`` against ``ep.state_dict``, shared tensors
between two ``ep.module()`` calls), the unsupported ``train()``/``eval()``, the errors torch
2.13 raises when the module is called with wrong shapes, ranks, dtypes, argument counts or
keywords, and the graph signature's user input/output names, ``ep.example_inputs``,
``ep.state_dict`` and ``ep.constants``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.export import Dim

from tests.export.helpers import (
    LEGACY_CAPTURE_WRAPPERS,
    LEGACY_STRICT_WRAPPERS,
    NEW_CAPTURE_WRAPPER,
    assert_same,
    check_export,
    input_kinds,
    module_of,
    raises_on_call,
    randn,
)

EXTRA_DIM_NOT_GUARDED = (
    "torch 2.13 ep.module(): with the default check_guards=True the generated _guards_fn checks each "
    "dim's size but not the rank, and the pre-hook then skips _check_input_constraints_for_graph, so an "
    "input with an extra trailing dim runs silently and returns a wrong-rank result (call)"
)
EXTRA_DIM_NOT_GUARDED_MATCH = r"a rank-3 input was accepted by a program exported for rank 2"
STRICT_DROPS_UNUSED_STATE = (
    "torch 2.13 strict export: a parameter or buffer the graph never reads (e.g. BatchNorm's "
    "num_batches_tracked in eval mode) stays in ep.state_dict but ep.module() does not register it, "
    "so the program's state misses it (module)"
)
STRICT_DROPS_UNUSED_STATE_MATCH = r"buffers differ from eager's by name: missing \['unused'\]"

V2_STATIC_DIMS_UNGUARDED = (
    "torch 2.13 strict_v2 (new capture path): with dynamic_shapes omitted every input dim is traced as a free "
    "symbol (s77) that is not in range_constraints, and ep.module()'s _guards_fn checks only the sizes the trace "
    "itself specialized (a Linear's in_features), no other size, no rank and no input type, so a wrong batch "
    "size, rank or a non-tensor input runs silently or fails in a kernel (call)"
)
V2_POSITIONAL_PLACEHOLDERS = (
    "torch 2.13 strict_v2 (new capture path): with dynamic_shapes omitted the graph is captured over the "
    "flattened inputs, so the user-input placeholders and graph_signature.user_inputs are named args_0, "
    "args_1, ... instead of forward's parameter names (export)"
)
V2_POSITIONAL_PLACEHOLDERS_MATCH = r"'args_0'"


class _Net(torch.nn.Module):
    """Parameters, a persistent and a non-persistent buffer, and a plain tensor attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.register_buffer("shift", torch.full((3,), 0.5))
        self.register_buffer("scratch", torch.full((3,), 2.0), persistent=False)
        self.offset = torch.arange(3.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + y + self.shift * self.scratch + self.offset


class _Counter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return x * self.calls


def _net_args() -> tuple[torch.Tensor, torch.Tensor]:
    return randn(2, 4), randn(2, 3)


def _error_of(call: Callable[[], Any]) -> BaseException | None:
    """The exception ``call`` raises, or ``None``: lets a test assert on 'no error' as an AssertionError."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


# --- the module object and its state -------------------------------------------------------------------------


@pytest.mark.quick
@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_POSITIONAL_PLACEHOLDERS, match=V2_POSITIONAL_PLACEHOLDERS_MATCH)
def test_module_is_graph_module_and_nn_module() -> None:
    ep = check_export(_Net(), _net_args(), fresh=[_net_args()])
    program = ep.module()
    assert isinstance(program, torch.nn.Module)
    assert isinstance(program, torch.fx.GraphModule)
    placeholders = [n.target for n in program.graph.nodes if n.op == "placeholder"]
    assert placeholders == ["x", "y"]


def test_module_state_dict_matches_ep_state_dict() -> None:
    model = _Net()
    ep = check_export(model, _net_args())
    program_state = dict(ep.module().state_dict())
    assert sorted(program_state) == sorted(ep.state_dict) == ["lin.bias", "lin.weight", "shift"]
    for name, value in ep.state_dict.items():
        torch.testing.assert_close(program_state[name], value)


@pytest.mark.xfail_under(
    *LEGACY_STRICT_WRAPPERS, reason=STRICT_DROPS_UNUSED_STATE, match=STRICT_DROPS_UNUSED_STATE_MATCH
)
def test_module_registers_unused_parameter_and_buffer() -> None:
    class Spare(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.spare = torch.nn.Parameter(torch.zeros(2))
            self.register_buffer("unused", torch.ones(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    model = Spare()
    ep = check_export(model, (randn(1, 2),))
    assert sorted(ep.module().state_dict()) == sorted(model.state_dict())
    assert sorted(ep.state_dict) == sorted(model.state_dict())


def test_module_keeps_parameter_names_and_requires_grad() -> None:
    model = _Net()
    ep = check_export(model, _net_args())
    params = dict(ep.module().named_parameters())
    assert sorted(params) == ["lin.bias", "lin.weight"]
    assert all(p.requires_grad for p in params.values())
    assert sorted(name for name, _ in ep.module().named_buffers()) == ["scratch", "shift"]


def test_module_twice_gives_distinct_modules_sharing_tensors() -> None:
    """Two ``ep.module()`` calls build two GraphModules; torch 2.13 hands both the program's own tensors."""
    ep = check_export(_Net(), _net_args())
    first, second = ep.module(), ep.module()
    assert first is not second
    assert first.graph is not second.graph
    first.lin = torch.nn.Identity()
    assert isinstance(second.lin, torch.nn.Module) and not isinstance(second.lin, torch.nn.Identity)
    assert second.get_parameter("lin.weight").data_ptr() == ep.state_dict["lin.weight"].data_ptr()
    x, y = _net_args()
    assert_same(ep.module()(x, y), second(x, y))


def test_module_twice_shares_buffer_mutation() -> None:
    """Buffers are shared too: a mutation through one module is seen by the other and by ep.state_dict."""
    ep = check_export(_Counter(), (randn(3),))
    first, second = ep.module(), ep.module()
    start = float(ep.state_dict["calls"])
    first(randn(3))
    assert float(second.calls) == start + 1
    assert float(ep.state_dict["calls"]) == start + 1
    x = randn(3)
    assert_same(second(x), x * (start + 2))


@pytest.mark.quick
@pytest.mark.parametrize("method", ["train", "eval"])
def test_module_train_eval_not_supported(method: str) -> None:
    ep = check_export(_Net(), _net_args())
    program = ep.module()
    with pytest.raises(NotImplementedError, match=rf"Calling {method}\(\) is not supported yet"):
        getattr(program, method)()


def test_eval_mode_is_baked_into_the_program() -> None:
    """Exported in eval mode, dropout is gone for good; the module's ``training`` flag does not bring it back."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.9)).eval()
    ep = check_export(model, (randn(3, 4),), fresh=[(randn(3, 4),)])
    program = ep.module()
    assert program.training is True
    x = randn(3, 4)
    assert_same(program(x), model(x))
    assert_same(program(x), program(x))


# --- calling with the wrong inputs ---------------------------------------------------------------------------


@pytest.mark.quick
@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        # The feature dim still gets its guard: aten.linear specializes it to the weight's 4.
        pytest.param(
            (3, 4),
            r"Guard failed: x.size\(\)\[0\] == 2",
            id="batch",
            marks=pytest.mark.xfail_under(
                NEW_CAPTURE_WRAPPER,
                reason=V2_STATIC_DIMS_UNGUARDED,
                match=r"The size of tensor a \(3\) must match the size of tensor b \(2\)",
            ),
        ),
        pytest.param((2, 5), r"Guard failed: x.size\(\)\[1\] == 4", id="features"),
    ],
)
def test_wrong_static_size_raises(shape: tuple[int, int], fragment: str) -> None:
    ep = check_export(_Net(), _net_args())
    with pytest.raises(AssertionError, match=fragment):
        ep.module()(randn(*shape), randn(2, 3))


@pytest.mark.xfail_under(*LEGACY_CAPTURE_WRAPPERS, reason=EXTRA_DIM_NOT_GUARDED, match=EXTRA_DIM_NOT_GUARDED_MATCH)
@pytest.mark.xfail_under(
    NEW_CAPTURE_WRAPPER,
    reason=V2_STATIC_DIMS_UNGUARDED,
    match=r"a rank-3 input was accepted by a program exported for rank 2",
)
def test_extra_dimension_raises() -> None:
    ep = check_export(module_of(lambda x: x * 2), (randn(2, 4),))
    error = _error_of(lambda: ep.module()(randn(2, 4, 1)))
    assert error is not None, "a rank-3 input was accepted by a program exported for rank 2"


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_STATIC_DIMS_UNGUARDED, match=r"DID NOT RAISE IndexError")
def test_missing_dimension_raises_index_error_in_guards() -> None:
    """torch 2.13's guard function indexes ``x.size()[1]`` and fails with a bare IndexError."""
    ep = check_export(module_of(lambda x: x * 2), (randn(2, 4),))
    with pytest.raises(IndexError, match="tuple index out of range"):
        ep.module()(randn(2))


@pytest.mark.parametrize("shape", [(2, 4, 1), (2,)], ids=["extra_dim", "missing_dim"])
def test_rank_mismatch_without_guards_fn(shape: tuple[int, ...]) -> None:
    """With ``check_guards=False`` the pre-hook checks the rank itself."""
    ep = check_export(module_of(lambda x: x * 2), (randn(2, 4),))
    program = ep.module(check_guards=False)
    assert not hasattr(program, "_guards_fn")
    with pytest.raises(RuntimeError, match=r"Unexpected number of dimensions in input at \*args\[0\]\.shape"):
        program(randn(*shape))


def test_wrong_dtype_is_not_guarded() -> None:
    """torch 2.13 guards shapes, not dtypes: an elementwise program runs in the caller's dtype."""
    ep = check_export(module_of(lambda x: x * 2), (randn(2, 4),))
    x = randn(2, 4, dtype=torch.float64)
    out = ep.module()(x)
    assert out.dtype == torch.float64
    assert_same(out, x * 2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32], ids=str)
def test_wrong_dtype_fails_in_the_kernel(dtype: torch.dtype) -> None:
    ep = check_export(_Net(), _net_args())
    with pytest.raises(RuntimeError, match="must have the same dtype"):
        ep.module()(torch.ones(2, 4, dtype=dtype), randn(2, 3))


@pytest.mark.parametrize("count", [1, 3], ids=["too_few", "too_many"])
def test_wrong_number_of_args_raises(count: int) -> None:
    ep = check_export(_Net(), _net_args())
    args = (randn(2, 4), randn(2, 3), randn(2, 3))[:count]
    with pytest.raises(ValueError, match="Trying to flatten user inputs with exported input tree spec"):
        ep.module()(*args)


def test_unexpected_keyword_raises() -> None:
    ep = check_export(_Net(), _net_args())
    with pytest.raises(ValueError, match=r"Ran into a kwarg keyword mismatch: Got the following keywords \['z'\]"):
        ep.module()(randn(2, 4), z=randn(2, 3))


def test_keyword_input_passed_positionally_raises() -> None:
    def kw_only(x: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
        return x - y

    x, y = randn(3), randn(3)
    ep = check_export(module_of(kw_only), (x,), {"y": y}, fresh=[((randn(3),), {"y": randn(3)})])
    with pytest.raises(ValueError, match=r"but expected \['y'\]"):
        ep.module()(x, y)


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_STATIC_DIMS_UNGUARDED, match=r"DID NOT RAISE AttributeError")
def test_non_tensor_input_raises() -> None:
    """torch 2.13: the guard function fails first (AttributeError); without it the pre-hook names the input."""
    ep = check_export(module_of(lambda x: x + 1), (randn(2),))
    with pytest.raises(AttributeError, match="'int' object has no attribute 'size'"):
        ep.module()(3)
    with pytest.raises(RuntimeError, match=r"Expected input at \*args\[0\] to be a tensor"):
        ep.module(check_guards=False)(3)


def test_dynamic_batch_out_of_range_raises() -> None:
    batch = Dim("batch", min=3, max=8)
    ep = check_export(
        _Net(), (randn(4, 4), randn(4, 3)), fresh=[(randn(8, 4), randn(8, 3))], dynamic_shapes=({0: batch}, {0: batch})
    )
    program = ep.module()
    raises_on_call(program, randn(9, 4), randn(9, 3), match=r"x.size\(\)\[0\] <= 8")
    raises_on_call(program, randn(2, 4), randn(2, 3), match=r"x.size\(\)\[0\] >= 3")
    assert_same(program(randn(3, 4), torch.zeros(3, 3)).shape, torch.Size([3, 3]))


def test_dynamic_batch_mismatch_between_inputs_raises() -> None:
    batch = Dim("batch")
    ep = check_export(
        _Net(), (randn(4, 4), randn(4, 3)), fresh=[(randn(6, 4), randn(6, 3))], dynamic_shapes=({0: batch}, {0: batch})
    )
    with pytest.raises(AssertionError, match=r"Guard failed: y.size\(\)\[0\] == x.size\(\)\[0\]"):
        ep.module()(randn(3, 4), randn(5, 3))


# --- what the program records --------------------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.quick
@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_POSITIONAL_PLACEHOLDERS, match=V2_POSITIONAL_PLACEHOLDERS_MATCH)
def test_graph_signature_user_inputs_and_outputs() -> None:
    class TwoOutputs(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x + y, x * y

    ep = check_export(TwoOutputs(), (randn(3), randn(3)))
    signature = ep.graph_signature
    assert signature.user_inputs == ("x", "y")
    assert len(signature.user_outputs) == 2
    output_node = next(n for n in ep.graph.nodes if n.op == "output")
    assert tuple(str(arg) for arg in output_node.args[0]) == signature.user_outputs
    assert list(inspect.signature(ep.module().forward).parameters) == ["x", "y"]


@pytest.mark.xfail_under(NEW_CAPTURE_WRAPPER, reason=V2_POSITIONAL_PLACEHOLDERS, match=V2_POSITIONAL_PLACEHOLDERS_MATCH)
def test_graph_signature_names_keyword_inputs() -> None:
    class Affine(torch.nn.Module):
        def forward(self, x: torch.Tensor, *, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return x * scale + bias

    model = Affine()
    args, kwargs = (randn(3),), {"scale": randn(3), "bias": randn(3)}
    ep = check_export(model, args, kwargs, fresh=[((randn(3),), {"scale": randn(3), "bias": randn(3)})])
    assert ep.graph_signature.user_inputs == ("x", "scale", "bias")
    assert [kind for kind, _ in input_kinds(ep)] == ["USER_INPUT"] * 3


def test_example_inputs_are_recorded() -> None:
    x, y = _net_args()
    ep = check_export(_Net(), (x, y))
    args, kwargs = ep.example_inputs
    assert kwargs == {}
    assert_same(args, (x, y))


def test_example_inputs_record_keywords() -> None:
    x, scale = randn(2, 3), randn(3)
    ep = check_export(module_of(lambda x, *, scale: x * scale), (x,), {"scale": scale})
    args, kwargs = ep.example_inputs
    assert_same(args, (x,))
    assert sorted(kwargs) == ["scale"]
    assert_same(kwargs["scale"], scale)


def test_state_dict_holds_parameters_and_persistent_buffers() -> None:
    model = _Net()
    ep = check_export(model, _net_args())
    assert sorted(ep.state_dict) == ["lin.bias", "lin.weight", "shift"]
    assert_same(ep.state_dict["lin.weight"], model.lin.weight.detach())
    assert_same(ep.state_dict["shift"], torch.full((3,), 0.5))
    assert list(ep.graph_signature.non_persistent_buffers) == ["scratch"]


def test_constants_hold_non_persistent_buffers_and_tensor_attributes() -> None:
    ep = check_export(_Net(), _net_args())
    assert sorted(ep.constants) == ["offset", "scratch"]
    assert_same(ep.constants["scratch"], torch.full((3,), 2.0))
    assert_same(ep.constants["offset"], torch.arange(3.0))
    kinds = {target: kind for kind, target in input_kinds(ep)}
    assert kinds["offset"] == "CONSTANT_TENSOR"
    assert kinds["scratch"] == "BUFFER"
    assert kinds["shift"] == "BUFFER"


def test_module_dynamic_batch_accepts_fresh_sizes() -> None:
    batch = Dim("batch", min=1, max=32)
    model = _Net()
    ep = check_export(
        model,
        _net_args(),
        fresh=[(randn(n, 4), randn(n, 3)) for n in (1, 7, 32)],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    program = ep.module()
    for n in (5, 16):
        x, y = randn(n, 4), randn(n, 3)
        assert_same(program(x, y), model(x, y))


def test_module_output_structure_is_preserved() -> None:
    def structured(x: torch.Tensor) -> dict[str, Any]:
        return {"sum": x.sum(), "pair": (x + 1, [x * 2])}

    ep = check_export(module_of(structured), (randn(3),), fresh=[(randn(3),)])
    out = ep.module()(torch.ones(3))
    assert sorted(out) == ["pair", "sum"]
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    assert_same(out["pair"][1][0], torch.full((3,), 2.0))
