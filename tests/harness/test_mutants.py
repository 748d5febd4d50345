"""Mutants: the kill-rate arithmetic (pure), the registry, each mutant on a small program, and a real run.

The mutants are called directly here (no patch installed), the way ``test_wrappers.py`` calls the wrappers;
the end-to-end run goes through a pytester subprocess.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.export
from torch.utils import _pytree as pytree

import harness
from harness import mutants, registry, results
from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.mutants import BASE, EVENTS, LOG_ENV, MUTANTS, Event, read_events
from harness.mutants.__main__ import main as mutants_main
from harness.mutants.analysis import analyse, by_module, markdown
from harness.plan import resolve
from harness.plugin import _list_wrappers
from harness.results import Record, RunFile
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper, WrapperCall

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

BY_NAME = {m.name: m for m in MUTANTS}
NAMES = list(BY_NAME)


# ----------------------------------------------------------------------------- the arithmetic: pure code


def _records(wrapper: str, **outcomes: str) -> list[Record]:
    return [Record(f"tests/test_a.py::{test}", wrapper, outcome) for test, outcome in outcomes.items()]


def _event(test: str, mutant: str, mutated: bool = True, detail: str = "changed") -> Event:
    return Event(f"tests/test_a.py::{test}[{mutant}]", mutant, mutated, detail)


def _run(*records: list[Record]) -> RunFile:
    return RunFile("matrix", [BASE, "mutant_a", "mutant_b"], [r for group in records for r in group])


def test_kill_rate_counts_only_base_passing_tests_the_mutant_reached() -> None:
    run = _run(
        _records(BASE, strong="passed", weak="passed", raises="passed", broken="failed", marked="xfailed"),
        _records("mutant_a", strong="failed", weak="passed", raises="passed", broken="failed", marked="failed"),
        _records("mutant_b", strong="error", weak="crashed", raises="passed", broken="failed", marked="failed"),
    )
    events = [
        _event("strong", "mutant_a"), _event("weak", "mutant_a"), _event("broken", "mutant_a"),
        _event("marked", "mutant_a"),
        _event("strong", "mutant_b"), _event("weak", "mutant_b", mutated=False, detail="nothing to change"),
        _event("weak", "mutant_b"),  # a second program of the same test was changed: reached
        _event("strong", "mutant_b", mutated=False, detail="could not mutate: TypeError: odd"),
    ]
    analysis = analyse(run, events)
    a, b = analysis.mutants
    assert analysis.passed == ["tests/test_a.py::raises", "tests/test_a.py::strong", "tests/test_a.py::weak"]
    assert (a.name, a.killed, list(a.survivors), a.kill_rate) == (
        "mutant_a", ["tests/test_a.py::strong"], ["tests/test_a.py::weak"], 0.5
    )
    assert a.not_reached == ["tests/test_a.py::raises"]
    assert b.killed == ["tests/test_a.py::strong", "tests/test_a.py::weak"] and b.kill_rate == 1.0
    assert dict(b.why_not) == {"nothing to change": 1} and dict(b.could_not_mutate) == {"TypeError: odd": 1}
    assert analysis.unreached == ["tests/test_a.py::raises"]
    assert analysis.below(0.95) == [a]


def test_survivor_outcomes_and_missing_records_are_kept_apart() -> None:
    run = _run(
        _records(BASE, skips="passed", gone="passed", never="passed"),
        _records("mutant_a", skips="skipped", never="passed"),
        _records("mutant_b", skips="passed", gone="passed", never="passed"),
    )
    events = [_event("skips", "mutant_a"), _event("gone", "mutant_a"), _event("gone", "mutant_b")]
    a, b = analyse(run, events).mutants
    assert a.survivors == {"tests/test_a.py::skips": "skipped"} and a.kill_rate == 0.0
    assert a.missing == ["tests/test_a.py::gone"]
    assert b.survivors == {"tests/test_a.py::gone": "passed"} and b.not_reached == [
        "tests/test_a.py::never", "tests/test_a.py::skips"
    ]
    text = markdown(analyse(run, events))
    assert "`skips` (skipped)" in text and "`never`" in text and "`mutant_a` 1" in text


def test_a_mutant_that_reaches_nothing_has_no_rate_and_is_never_below() -> None:
    run = _run(_records(BASE, t="passed"), _records("mutant_a", t="passed"), _records("mutant_b", t="passed"))
    analysis = analyse(run, [])
    assert [m.kill_rate for m in analysis.mutants] == [None, None]
    assert analysis.below(0.95) == [] and analysis.unreached == ["tests/test_a.py::t"]
    assert "| `mutant_a` | 0 | 0 | 0 | n/a | 1 | 0 |" in markdown(analysis)


def test_a_run_without_the_base_wrapper_is_refused() -> None:
    with pytest.raises(ValueError, match="no test ran under the base wrapper 'non_strict'"):
        analyse(RunFile("mutant_a", ["mutant_a"], _records("mutant_a", t="failed")), [])


def test_events_of_a_single_mutant_run_have_plain_ids() -> None:
    run = RunFile("mutant_a", [BASE, "mutant_a"], _records(BASE, t="passed") + _records("mutant_a", t="failed"))
    event = Event("tests/test_a.py::t", "mutant_a", True, "changed")
    assert analyse(run, [event]).mutants[0].killed == ["tests/test_a.py::t"]


def test_by_module_groups_and_sorts() -> None:
    assert by_module(["b.py::y", "a.py::x[1]", "b.py::x"]) == {"a.py": ["x[1]"], "b.py": ["x", "y"]}


def test_events_round_trip_through_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "events"))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_a.py::test_x[mutant_a] (call)")
    written = mutants.note("mutant_a", True, "shifted output 0")
    assert written.test == "tests/test_a.py::test_x[mutant_a]" and EVENTS[-1] == written
    assert read_events(tmp_path / "events") == [written]
    assert read_events(tmp_path / "nowhere") == []
    (tmp_path / "events" / "events-1.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"events-1\.jsonl:1: not a mutant event"):
        read_events(tmp_path / "events")


def test_report_cli_writes_json_and_gates_on_the_kill_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(
        _records(BASE, strong="passed", weak="passed"),
        _records("mutant_a", strong="failed", weak="passed"),
        _records("mutant_b", strong="failed", weak="failed"),
    )
    results.write(tmp_path / "run.json", run)
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "events-7.jsonl").write_text(
        "".join(json.dumps(_event(t, m).to_json()) + "\n"
                for t in ("strong", "weak") for m in ("mutant_a", "mutant_b"))
    )
    common = [str(tmp_path / "run.json"), "--events", str(tmp_path / "events"), "--out", str(tmp_path / "m.json")]
    assert mutants_main(["report", *common]) == 0
    assert "| `mutant_a` | 2 | 1 | 1 | 50.0 % | 0 | 0 |" in capsys.readouterr().out
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["mutants"][0]["survivors"] == {"tests/test_a.py": [{"test": "weak", "outcome": "passed"}]}
    assert mutants_main(["report", *common, "--min-kill-rate", "95"]) == 1
    assert "mutant_a 50.0 %" in capsys.readouterr().err
    assert mutants_main(["report", str(tmp_path / "none.json"), "--events", str(tmp_path)]) == 2


def test_package_and_analysis_import_neither_pytest_nor_torch() -> None:
    code = (
        "import sys, harness.mutants, harness.mutants.analysis, harness.registry; "
        "sys.exit(bool({'pytest', 'torch'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------------------- the registry


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry.available_wrappers.cache_clear()
    yield
    registry.available_wrappers.cache_clear()


def test_mutants_are_named_apart_and_described() -> None:
    assert NAMES == [
        "mutant_shift_outputs", "mutant_replay_example", "mutant_detach_outputs", "mutant_perturb_state",
        "mutant_drop_dynamic_shapes", "mutant_drop_state_mutations", "mutant_drop_input_mutations",
    ]
    for wrapper in MUTANTS:
        assert wrapper.description and "\n" not in wrapper.description
        assert wrapper.pytorch_xfail_attr is None and "mutant" in wrapper.tags
    assert not {w.name for w in BUILTIN_WRAPPERS} & set(NAMES)
    with pytest.raises(ValueError, match="starts with 'mutant_'"):
        mutants.mutant("shift", "x", lambda call, ep: (None, "no"))


def test_mutants_are_selectable_by_name_but_not_part_of_all() -> None:
    assert registry.parse_wrappers("all", "test") == tuple(registry.available_wrappers().values())
    assert not set(NAMES) & {w.name for w in registry.parse_wrappers("all", "test")}
    assert registry.get_wrapper("mutant_replay_example") is BY_NAME["mutant_replay_example"]
    listed = registry.parse_wrappers(mutants.matrix_value(), "test")
    assert [w.name for w in listed] == [BASE, *NAMES]
    # The real wrappers (all, marks, wrapper_names) leave the mutants out; what --export-wrapper accepts has them.
    assert "mutant_shift_outputs" not in registry.available_wrappers()
    assert registry.selectable_wrappers()["mutant_shift_outputs"] is BY_NAME["mutant_shift_outputs"]
    with pytest.raises(UnknownWrapperError):
        registry.get_wrapper("nope")
    assert not set(NAMES) & set(harness.wrapper_names())


def test_unknown_names_list_real_wrappers_and_mutants() -> None:
    with pytest.raises(UnknownWrapperError) as info:
        registry.parse_wrappers("non_strict,mutant_nope", "command-line option --export-wrapper")
    message = str(info.value)
    assert "'mutant_nope'" in message and "non_strict" in message and "mutant_replay_example" in message


def test_a_plan_of_mutants_is_a_matrix_run() -> None:
    plan = resolve(cli_wrapper=mutants.matrix_value(["mutant_shift_outputs"]), cli_compat=False, cli_shard=None,
                   environ={}, ini_wrapper=None, ini_compat=False)
    assert plan.matrix and plan.names == (BASE, "mutant_shift_outputs")


def test_an_entry_point_may_not_reuse_a_mutant_name(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("mutant_shift_outputs", f"{__name__}:STOLEN", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == point.group else [])
    with pytest.raises(WrapperPluginError, match="reuses the mutant name 'mutant_shift_outputs'"):
        registry.available_wrappers()


STOLEN = Wrapper("mutant_shift_outputs", "a plugin's wrapper", MUTANTS[0].transform)


def test_wrapper_list_puts_the_mutants_in_their_own_section() -> None:
    text = _list_wrappers()
    head, _, tail = text.partition("\n\nmutants (")
    assert all(w.name in head for w in BUILTIN_WRAPPERS) and not any(name in head for name in NAMES)
    assert [line.split()[0] for line in tail.splitlines()[1:]] == NAMES


# ----------------------------------------------------------------------------- each mutant on a small program


class Everything(torch.nn.Module):
    """Parameters, a buffer it counts its calls in, an input it scales in place, a bool output."""

    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.count.add_(1)
        y.mul_(2)
        return self.lin(x) + y, x > 0


class Plain(torch.nn.Module):
    """No state, no mutation, no grad: most mutants have nothing to change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sin()


DYNAMIC = {"x": {0: torch.export.Dim("batch")}, "y": None}


def _mutate(name: str, module: torch.nn.Module, args: tuple[Any, ...], **options: Any) -> tuple[Any, Event]:
    before = len(EVENTS)
    program = BY_NAME[name].transform(WrapperCall(name, torch.export.export, module, args, None, options))
    assert len(EVENTS) == before + 1, "every program a mutant sees is one event"
    return program, EVENTS[-1]


def _observe(program: torch.export.ExportedProgram, x: torch.Tensor, y: torch.Tensor) -> list[Any]:
    """What a test can see of one call of the program, on copies of the inputs: outputs, inputs, state, grad."""
    module = copy.deepcopy(program).module()
    x, y = x.detach().clone().requires_grad_(x.requires_grad), y.clone()
    try:
        out = module(x, y)
    except Exception as exc:
        return [type(exc).__name__]
    leaves = pytree.tree_leaves(out)
    return [
        *(leaf.detach() for leaf in leaves), [leaf.requires_grad for leaf in leaves], y, dict(module.named_buffers()),
        {k: v.detach() for k, v in module.named_parameters()},
    ]


def _same(a: Any, b: Any) -> bool:
    try:
        torch.testing.assert_close(a, b)
    except (AssertionError, TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_each_mutant_changes_what_a_test_sees_and_nothing_of_the_test(name: str) -> None:
    torch.manual_seed(0)
    module, x, y = Everything(), torch.randn(2, 3, requires_grad=True), torch.randn(3)
    state, x_before, y_before = copy.deepcopy(module.state_dict()), x.detach().clone(), y.clone()
    reference = torch.export.export(copy.deepcopy(module), (x, y.clone()), dynamic_shapes=DYNAMIC)
    program, event = _mutate(name, module, (x, y), dynamic_shapes=DYNAMIC)
    assert event.mutated and event.mutant == name, event
    # Neither the module nor the example inputs changed.
    assert _same(module.state_dict(), state) and _same(x.detach(), x_before) and _same(y, y_before)
    fresh = (torch.randn(4, 3, requires_grad=True), torch.randn(3))
    assert not _same(_observe(program, *fresh), _observe(reference, *fresh))
    # The wrong program is a valid one: it deep-copies, saves and loads, and decomposes, and stays wrong.
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    assert not _same(_observe(loaded, *fresh), _observe(reference, *fresh))
    program.run_decompositions({})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mutant_shift_outputs", lambda x, out: torch.equal(out, x.sin() + 0.5)),
        ("mutant_replay_example", lambda x, out: out.shape == (2, 3)),
    ],
)
def test_output_mutants_on_a_plain_program(name: str, expected: Any) -> None:
    x = torch.randn(2, 3)
    program, event = _mutate(name, Plain(), (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    assert event.mutated
    fresh = torch.randn(5, 3)
    assert expected(fresh, program.module()(fresh))


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("mutant_detach_outputs", "no example input or parameter requires grad"),
        ("mutant_perturb_state", "no parameter, buffer or tensor constant with elements"),
        ("mutant_drop_dynamic_shapes", "exported without dynamic_shapes"),
        ("mutant_drop_state_mutations", "no buffer/parameter mutation in the program"),
        ("mutant_drop_input_mutations", "no input mutation in the program"),
    ],
)
def test_a_mutant_with_nothing_to_change_says_so_and_hands_the_program_over(name: str, why: str) -> None:
    x = torch.randn(2, 3)
    program, event = _mutate(name, Plain(), (x,))
    assert (event.mutated, event.detail) == (False, why)
    torch.testing.assert_close(program.module()(x), x.sin())


def test_static_dynamic_shapes_leave_nothing_to_drop() -> None:
    _, event = _mutate("mutant_drop_dynamic_shapes", Plain(), (torch.randn(2, 3),), dynamic_shapes={"x": None})
    assert (event.mutated, event.detail) == (False, "dynamic_shapes left every input static")


def test_shift_covers_int_and_bool_tensors_and_symint_outputs() -> None:
    class Kinds(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
            return x.long(), x > 0, x.shape[0]

    x = torch.randn(3, 2)
    program, event = _mutate("mutant_shift_outputs", Kinds(), (x,), dynamic_shapes={"x": {0: torch.export.Dim("n")}})
    assert event.detail == "shifted output 0, output 1, output 2"
    fresh = torch.randn(5, 2)
    ints, bools, size = program.module()(fresh)
    assert torch.equal(ints, fresh.long() + 1) and torch.equal(bools, fresh <= 0) and size == 6


def test_shift_covers_symfloat_and_sparse_outputs() -> None:
    class Odd(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
            return x.sum().item(), x.to_sparse()

    x = torch.randn(3, 2)
    program, event = _mutate("mutant_shift_outputs", Odd(), (x,))
    assert event.detail == "shifted output 0, output 1"
    total, sparse = program.module()(x)
    assert total == pytest.approx(x.sum().item() + 0.5) and torch.equal(sparse.to_dense(), 2 * x)


def test_replay_copies_the_example_and_keeps_the_user_inputs() -> None:
    module, x, y = Everything(), torch.randn(2, 3), torch.randn(3)
    program, _ = _mutate("mutant_replay_example", module, (x, y))
    kinds = [spec.kind.name for spec in program.graph_signature.input_specs]
    assert kinds.count("USER_INPUT") == 2 and kinds.count("CONSTANT_TENSOR") == 2
    x.add_(100)  # the test changing its example later does not change what the program replays
    call = program.module()
    first, second = call(torch.randn(2, 3), torch.randn(3)), call(torch.randn(2, 3), torch.randn(3))
    torch.testing.assert_close(first, second)  # each call starts from the example, not from the last call


def test_drop_mutations_keep_outputs_and_lose_the_writes() -> None:
    module, x, y = Everything(), torch.randn(2, 3), torch.randn(3)
    reference = torch.export.export(copy.deepcopy(module), (x, y.clone())).module()
    state, _ = _mutate("mutant_drop_state_mutations", copy.deepcopy(module), (x, y))
    inputs, _ = _mutate("mutant_drop_input_mutations", copy.deepcopy(module), (x, y))
    y_ref, y_state, y_inputs = y.clone(), y.clone(), y.clone()
    expected = reference(x, y_ref)
    state_module, inputs_module = state.module(), inputs.module()
    torch.testing.assert_close(state_module(x, y_state), expected)
    torch.testing.assert_close(inputs_module(x, y_inputs), expected)
    counts = [dict(m.named_buffers())["count"].item() for m in (state_module, reference, inputs_module)]
    assert counts == [0, 1, 1]
    assert torch.equal(y_state, y_ref) and torch.equal(y_inputs, y) and not torch.equal(y_ref, y)


def test_batch_norm_running_stats_count_as_state_mutations_in_training_only() -> None:
    # The training IR keeps aten.batch_norm, whose schema declares no write of the running statistics.
    bn, x = torch.nn.BatchNorm1d(3).train(), torch.randn(4, 3)
    program, event = _mutate("mutant_drop_state_mutations", bn, (x,))
    assert event.detail == "buffer/parameter mutations on copies: running_mean, running_var, num_batches_tracked"
    module = program.module()
    module(x)
    assert not module.running_mean.any() and module.num_batches_tracked.item() == 0
    _, event = _mutate("mutant_drop_state_mutations", bn.eval(), (x,))
    assert not event.mutated


def test_replay_follows_pytree_inputs_and_kwargs_in_the_program_order() -> None:
    class Mixed(torch.nn.Module):
        def forward(self, pair: tuple[torch.Tensor, torch.Tensor], *, k: torch.Tensor, j: torch.Tensor) -> Any:
            return pair[0] + k - j * pair[1]

    args, kwargs = ((torch.randn(2), torch.randn(2)),), {"k": torch.randn(2), "j": torch.randn(2)}
    before = len(EVENTS)
    program = BY_NAME["mutant_replay_example"].transform(
        WrapperCall("mutant_replay_example", torch.export.export, Mixed(), args, kwargs, {})
    )
    assert EVENTS[-1].mutated and len(EVENTS) == before + 1
    zeros = torch.zeros(2)
    torch.testing.assert_close(program.module()((zeros, zeros), j=zeros, k=zeros), Mixed()(*args, **kwargs))


def test_perturbed_state_is_new_and_shared_state_stays_shared() -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(2, 2, bias=False)
            self.b = self.a
            self.register_buffer("flags", torch.tensor([True, False]))
            self.register_buffer("steps", torch.tensor(3))
            self.register_buffer("peak", torch.tensor([-1e9, float("inf"), 1.0]))  # + 0.5 rounds away: negated

        flags: torch.Tensor
        steps: torch.Tensor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.b(self.a(x)) * self.flags + self.steps
            return out

    module = Tied()
    weight = module.a.weight.detach().clone()
    program, event = _mutate("mutant_perturb_state", module, (torch.randn(2),))
    assert event.mutated and torch.equal(module.a.weight, weight)
    state = program.state_dict
    assert isinstance(state["a.weight"], torch.nn.Parameter) and state["a.weight"].requires_grad
    torch.testing.assert_close(state["a.weight"], weight + 0.5)
    assert state["flags"].tolist() == [False, True] and state["steps"].item() == 4
    assert state["peak"].tolist() == [1e9, -float("inf"), 1.5]


def test_a_mutation_that_raises_hands_over_a_clean_export(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.mutants import programs

    def broken(call: WrapperCall, program: Any) -> Any:
        output = next(node for node in program.graph.nodes if node.op == "output")
        output.args = ((output.args[0][0].args[0],),)  # now returns its input: half-changed, then raises
        program.graph_module.recompile()
        raise TypeError("cannot handle this")

    monkeypatch.setattr(programs, "shift_outputs", broken)
    x = torch.randn(3)
    program, event = _mutate("mutant_shift_outputs", Plain(), (x,))
    assert (event.mutated, event.detail) == (False, "could not mutate: TypeError: cannot handle this")
    torch.testing.assert_close(program.module()(x), x.sin())


def test_export_errors_reach_the_test_unchanged_and_make_no_event() -> None:
    before = len(EVENTS)
    with pytest.raises(torch._dynamo.exc.UserError):
        BY_NAME["mutant_shift_outputs"].transform(
            WrapperCall("mutant_shift_outputs", torch.export.export, Plain(), (torch.randn(3),), None,
                        {"dynamic_shapes": {"nope": None}})
        )
    assert len(EVENTS) == before


# ----------------------------------------------------------------------------- a real run (pytester)

TINY_SUITE = """
    import pytest
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    def test_strong():
        x = torch.randn(3)
        torch.testing.assert_close(export(Double(), (x,)).module()(x), x * 2)

    def test_weak():
        x = torch.randn(3)
        assert export(Double(), (x,)).module()(x).shape == x.shape

    def test_error_path():
        with pytest.raises(torch._dynamo.exc.UserError):
            export(Double(), (torch.randn(3),), dynamic_shapes={"nope": None})

    @pytest.mark.xfail_under("non_strict", reason="an expected failure of the base is not measured")
    def test_marked():
        x = torch.randn(3)
        torch.testing.assert_close(export(Double(), (x,)).module()(x), x * 3)
"""


def test_a_mutants_run_kills_the_strong_test_and_names_the_weak_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "events"))
    pytester.makepyfile(TINY_SUITE)
    value = mutants.matrix_value(["mutant_shift_outputs", "mutant_perturb_state"])
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", value, "--results", str(tmp_path / "run.json")
    )
    # Marks name real wrappers only: under each mutant test_marked is a plain test (and fails).
    result.assert_outcomes(passed=8, failed=3, xfailed=1)
    analysis = analyse(results.load(tmp_path / "run.json"), read_events(tmp_path / "events"))
    shift, perturb = analysis.mutants
    ids = {name: next(t for t in analysis.passed if t.endswith(f"::test_{name}")) for name in ("strong", "weak",
                                                                                                  "error_path")}
    assert (shift.killed, list(shift.survivors), shift.kill_rate) == ([ids["strong"]], [ids["weak"]], 0.5)
    assert perturb.reached == [] and perturb.why_not == {"no parameter, buffer or tensor constant with elements": 3}
    assert analysis.unreached == [ids["error_path"]]
    assert not any(t.endswith("::test_marked") for t in analysis.passed)


def test_a_mark_naming_a_mutant_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail_under("mutant_shift_outputs", reason="marks name real wrappers")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "mutant_shift_outputs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names unknown wrapper(s) ?'mutant_shift_outputs'?; valid names: non_strict*"])
