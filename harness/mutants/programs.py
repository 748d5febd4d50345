"""The torch side of the mutants: from the program as exported to a wrong one.

Each function takes the :class:`~harness.wrappers.WrapperCall` and the freshly exported program (the
mutant's own: it may be edited in place) and returns ``(wrong program, what changed)`` or ``(None, why
nothing could be changed)``. The wrong program is a valid ``ExportedProgram`` (rebuilt through its
constructor, so torch's verifier checks it): the change shows in ``ep.module()``, in the graph and signature,
and in ``ep.state_dict`` / ``ep.constants``, and survives ``copy.deepcopy``, save/load and
``run_decompositions``. Tensors are never changed in place: the test's module shares its parameters and
buffers with the program's state dict, and the example inputs are the test's own.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import fx
from torch.export import ExportedProgram
from torch.export.graph_signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from torch.utils import _pytree as pytree

from harness.wrappers import WrapperCall

aten = torch.ops.aten
Result = tuple[ExportedProgram | None, str]

STATE_KINDS = (InputKind.PARAMETER, InputKind.BUFFER)
STATE_MUTATIONS = (OutputKind.BUFFER_MUTATION, OutputKind.PARAMETER_MUTATION)


# --- building blocks ----------------------------------------------------------------------------------------


def _with_outputs(
    program: ExportedProgram, output: Any, values: list[Any], specs: list[Any], renamed: dict[str, str]
) -> ExportedProgram:
    """The program returning ``values`` from its output node, with ``specs`` as the user outputs' specs."""
    output.args = (tuple(values),)
    signature = ExportGraphSignature(input_specs=list(program.graph_signature.input_specs), output_specs=specs)
    return _rebuild(program, signature, renamed_outputs=renamed)


def _rebuild(
    program: ExportedProgram,
    signature: ExportGraphSignature | None = None,
    *,
    state_dict: dict[str, Any] | None = None,
    constants: dict[str, Any] | None = None,
    renamed_outputs: dict[str, str] | None = None,
) -> ExportedProgram:
    """The program with its (edited) graph, a new signature or state; the constructor runs torch's verifier.

    Output specs that name a node the graph no longer returns (an output that was a placeholder, now its
    copy) are renamed to the node returned in their place, in the root module-call signature too.
    """
    module = program.graph_module
    module.graph.lint()
    module.recompile()
    signature = signature if signature is not None else program.graph_signature
    signature, renamed = _synced_outputs(module.graph, signature)
    renamed_outputs = {**(renamed_outputs or {}), **renamed}
    call_graph = program.module_call_graph
    if renamed_outputs:
        call_graph = [_rename_root_outputs(entry, renamed_outputs) for entry in call_graph]
    return ExportedProgram(
        root=module,
        graph=module.graph,
        graph_signature=signature,
        state_dict=state_dict if state_dict is not None else program.state_dict,
        range_constraints=program.range_constraints,
        module_call_graph=call_graph,
        example_inputs=program.example_inputs,
        constants=constants if constants is not None else program.constants,
        verifiers=program.verifiers,
    )


def _synced_outputs(graph: fx.Graph, signature: ExportGraphSignature) -> tuple[ExportGraphSignature, dict[str, str]]:
    """``signature`` with every output spec naming the node the graph returns at its position."""
    values = _output_values(_output_node(graph))
    specs = list(signature.output_specs)
    renamed: dict[str, str] = {}
    for index, (spec, value) in enumerate(zip(specs, values, strict=True)):
        name = getattr(spec.arg, "name", None)
        if isinstance(value, fx.Node) and name is not None and name != value.name and not isinstance(
            spec.arg, ConstantArgument
        ):
            renamed[name] = value.name
            specs[index] = dataclasses.replace(spec, arg=dataclasses.replace(spec.arg, name=value.name))
    if not renamed:
        return signature, renamed
    return ExportGraphSignature(input_specs=list(signature.input_specs), output_specs=specs), renamed


def _rename_root_outputs(entry: Any, renamed: dict[str, str]) -> Any:
    """The root module-call entry with its output arguments naming the new output nodes (unflatten reads them)."""
    signature = entry.signature
    if entry.fqn != "" or signature is None:
        return entry
    outputs = [
        dataclasses.replace(arg, name=renamed[arg.name]) if getattr(arg, "name", None) in renamed else arg
        for arg in signature.outputs
    ]
    return dataclasses.replace(entry, signature=dataclasses.replace(signature, outputs=outputs))


def _output_node(graph: fx.Graph) -> fx.Node:
    output: fx.Node = next(node for node in reversed(graph.nodes) if node.op == "output")
    return output


def _output_values(output: fx.Node) -> list[Any]:
    """The flat outputs of the graph (mutations first, then user outputs), one per output spec."""
    values = output.args[0]
    if not isinstance(values, list | tuple):
        raise TypeError(f"the graph's output is {type(values).__name__}, not a flat tuple")
    return list(values)


def _placeholders(graph: fx.Graph) -> list[fx.Node]:
    return [node for node in graph.nodes if node.op == "placeholder"]


def _fake_of(like: Any, fn: Any) -> Any:
    """``fn(like)`` under ``like``'s fake mode: the meta value of a node applying ``fn`` to a node valued ``like``."""
    mode = getattr(like, "fake_mode", None)
    if mode is None:
        return like
    with mode:
        return fn(like)


def _shifted_tensor(value: torch.Tensor) -> torch.Tensor:
    """A new tensor: bools negated, floats and complex + 0.5, ints + 1 (no in-place change)."""
    if value.dtype == torch.bool:
        return torch.logical_not(value)
    if value.is_floating_point() or value.is_complex():
        return value + 0.5
    return value + 1


def _perturbed(value: torch.Tensor) -> torch.Tensor:
    """A new tensor unlike ``value``: :func:`_shifted_tensor`, and floats whose + 0.5 rounds away (magnitudes of
    about 1e7 and over in float32, infinities) negated instead. NaNs stay NaN."""
    new = _shifted_tensor(value)
    if value.is_floating_point() or value.is_complex():
        new = torch.where(new == value, -value, new)
    return new.clone()


def _root(value: Any) -> Any:
    """The node a tensor node views (through view ops and ``getitem`` of views), or the node itself."""
    seen: set[fx.Node] = set()
    while isinstance(value, fx.Node) and value not in seen and value.op == "call_function" and value.args:
        seen.add(value)
        target = value.target
        if target is operator.getitem or (isinstance(target, torch._ops.OpOverload) and target.is_view):
            parent = value.args[0]
            if target is operator.getitem and not (
                isinstance(parent, fx.Node)
                and isinstance(parent.target, torch._ops.OpOverload)
                and parent.target.is_view
            ):
                return value
            value = parent
            continue
        break
    return value


UNDECLARED_WRITES = {"aten::batch_norm": ((3, 4), 5), "aten::instance_norm": ((3, 4), 5)}
"""Composite ops that update running statistics in place although their schema declares no write:
``{schema name: (positions written, position of the flag that makes them write)}`` (``training``,
``use_input_stats``). The training IR keeps ``aten.batch_norm`` as such."""


def _argument(node: fx.Node, index: int, name: str) -> Any:
    return node.args[index] if index < len(node.args) else node.kwargs.get(name)


def _written(node: fx.Node) -> Iterable[Any]:
    """The arguments an ATen op node writes to (``Tensor(a!)`` in its schema, or :data:`UNDECLARED_WRITES`)."""
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return
    arguments = target._schema.arguments
    for index, argument in enumerate(arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        value = _argument(node, index, argument.name)
        yield from value if isinstance(value, list | tuple) else (value,)
    positions, flag = UNDECLARED_WRITES.get(target._schema.name, ((), None))
    if flag is not None and _argument(node, flag, arguments[flag].name) is True:
        yield from (_argument(node, index, arguments[index].name) for index in positions)


def mutated_placeholders(graph: fx.Graph) -> set[fx.Node]:
    """Placeholders an in-place op writes to, directly or through a view (training IR keeps mutations in place)."""
    found = set()
    for node in graph.nodes:
        for value in _written(node):
            root = _root(value)
            if isinstance(root, fx.Node) and root.op == "placeholder":
                found.add(root)
    return found


def _work_on_copies(graph: fx.Graph, nodes: Sequence[fx.Node]) -> None:
    """Insert ``clone(p)`` after the placeholders for each of ``nodes`` and point every use of ``p`` at it."""
    last = _placeholders(graph)[-1]
    for node in reversed(nodes):
        with graph.inserting_after(last):
            copy = graph.call_function(aten.clone.default, (node,))
        copy.meta = {**node.meta, "val": _fake_of(node.meta.get("val"), torch.clone)}
        node.replace_all_uses_with(copy, delete_user_cb=lambda user, copy=copy: user is not copy)  # type: ignore[misc]


def _drop_outputs(program: ExportedProgram, kinds: Sequence[OutputKind]) -> tuple[ExportGraphSignature, int]:
    """Remove the outputs of ``kinds`` (functional IR: mutations returned as outputs) from graph and signature."""
    signature = program.graph_signature
    output = _output_node(program.graph)
    values = _output_values(output)
    keep = [i for i, spec in enumerate(signature.output_specs) if spec.kind not in kinds]
    dropped = len(values) - len(keep)
    if dropped:
        output.args = (tuple(values[i] for i in keep),)
        signature = ExportGraphSignature(
            input_specs=list(signature.input_specs), output_specs=[signature.output_specs[i] for i in keep]
        )
    return signature, dropped


def _drop_mutations(program: ExportedProgram, input_kinds: Sequence[InputKind], output_kinds: Sequence[OutputKind],
                    what: str) -> Result:
    graph = program.graph
    specs = program.graph_signature.input_specs
    kind_of = {node: spec for node, spec in zip(_placeholders(graph), specs, strict=True)}
    targets = [node for node in _placeholders(graph) if node in mutated_placeholders(graph)
               and kind_of[node].kind in input_kinds]
    signature, dropped = _drop_outputs(program, output_kinds)
    if not targets and not dropped:
        return None, f"no {what} mutation in the program"
    _work_on_copies(graph, targets)
    names = [kind_of[node].target or node.name for node in targets]
    return _rebuild(program, signature), f"{what} mutations on copies: {', '.join(names)}" + (
        f"; {dropped} mutation output(s) dropped" if dropped else ""
    )


# --- the mutants --------------------------------------------------------------------------------------------


def shift_outputs(call: WrapperCall, program: ExportedProgram) -> Result:
    """Every user output off: float and complex tensors + 0.5, int tensors + 1, bool tensors negated, sparse ones
    doubled; SymInts, SymFloats and int/float/bool constants likewise. ``None``, strings and other leaves stay."""
    graph = program.graph
    output = _output_node(graph)
    values = _output_values(output)
    specs = list(program.graph_signature.output_specs)
    renamed: dict[str, str] = {}
    changed = []
    for index, spec in enumerate(specs):
        if spec.kind != OutputKind.USER_OUTPUT:
            continue
        value = values[index]
        if isinstance(value, fx.Node):
            val = value.meta.get("val")
            if isinstance(val, torch.Tensor) and _empty(val):
                continue  # nothing to shift: an empty tensor plus anything is the same empty tensor
            with graph.inserting_before(output):
                if isinstance(val, torch.Tensor) and val.layout != torch.strided:
                    # Sparse layouts have no add(sparse, scalar); doubling changes every stored value.
                    new = graph.call_function(aten.mul.Tensor, (value, 2))
                    new.meta = {**value.meta, "val": _fake_of(val, lambda v: v * 2)}
                    arg: Any = TensorArgument(name=new.name)
                elif isinstance(val, torch.Tensor):
                    if val.dtype == torch.bool:
                        new = graph.call_function(aten.logical_not.default, (value,))
                    else:
                        step = 0.5 if val.is_floating_point() or val.is_complex() else 1
                        new = graph.call_function(aten.add.Tensor, (value, step))
                    new.meta = {**value.meta, "val": _fake_of(val, _shifted_tensor)}
                    arg = TensorArgument(name=new.name)
                elif isinstance(val, torch.SymInt | torch.SymFloat):
                    step = 1 if isinstance(val, torch.SymInt) else 0.5
                    new = graph.call_function(operator.add, (value, step))
                    shifted: Any = val  # typeshed-free: SymFloat's + is defined at run time
                    new.meta = {**value.meta, "val": shifted + step}
                    arg = (SymIntArgument if isinstance(val, torch.SymInt) else SymFloatArgument)(name=new.name)
                else:
                    continue
            renamed[value.name] = new.name
            values[index] = new
            specs[index] = dataclasses.replace(spec, arg=arg)
            changed.append(f"output {index}")
        elif isinstance(value, bool):
            values[index] = not value
            specs[index] = dataclasses.replace(spec, arg=ConstantArgument(name=spec.arg.name, value=not value))
            changed.append(f"constant output {index}")
        elif isinstance(value, int | float):
            values[index] = value + (0.5 if isinstance(value, float) else 1)
            specs[index] = dataclasses.replace(spec, arg=ConstantArgument(name=spec.arg.name, value=values[index]))
            changed.append(f"constant output {index}")
    if not changed:
        return None, "no non-empty tensor, symbolic or constant number among the user outputs"
    return _with_outputs(program, output, values, specs, renamed), f"shifted {', '.join(changed)}"


def replay_example(call: WrapperCall, program: ExportedProgram) -> Result:
    """The program computes on copies of the example inputs (lifted constants), whatever it is called with.

    Its user inputs stay in the signature, so ``ep.module()`` still checks what it is called with; every use
    of a tensor input reads the example's copy instead (a fresh clone per call where the program writes to
    it, so calls never see each other's mutations).
    """
    graph = program.graph
    signature = program.graph_signature
    placeholders = _placeholders(graph)
    user = [(node, spec) for node, spec in zip(placeholders, signature.input_specs, strict=True)
            if spec.kind == InputKind.USER_INPUT]
    examples = _user_leaves(program, call.args, call.kwargs)
    if len(examples) != len(user):
        raise ValueError(f"{len(examples)} leaves in the example inputs, {len(user)} user inputs in the program")
    targets = [(node, spec, value) for (node, spec), value in zip(user, examples, strict=True)
               if isinstance(value, torch.Tensor) and isinstance(spec.arg, TensorArgument)]
    if not targets:
        return None, "no tensor among the user inputs"
    constants = dict(program.constants)
    mutated = mutated_placeholders(graph)
    input_specs = list(signature.input_specs)
    first_user = next(i for i, spec in enumerate(input_specs) if spec.kind == InputKind.USER_INPUT)
    fake_mode = next((getattr(n.meta.get("val"), "fake_mode", None) for n in placeholders
                      if getattr(n.meta.get("val"), "fake_mode", None) is not None), None)
    copies = []
    for number, (node, _spec, value) in enumerate(targets):
        target = _fresh_name(f"mutant_replay_{node.name}", constants)
        constants[target] = value.detach().clone()
        with graph.inserting_before(user[0][0]):
            constant = graph.placeholder(f"c_{target}")
        constant.meta = dict(node.meta)
        if fake_mode is not None:
            constant.meta["val"] = fake_mode.from_tensor(constants[target], static_shapes=True)
        input_specs.insert(first_user + number, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(constant.name),
                                                          target=target))
        copies.append((node, constant))
    for node, constant in copies:
        node.replace_all_uses_with(constant)
    _work_on_copies(graph, [constant for node, constant in copies if node in mutated])
    new_signature = ExportGraphSignature(input_specs=input_specs, output_specs=list(signature.output_specs))
    names = ", ".join(node.name for node, _ in copies)
    return _rebuild(program, new_signature, constants=constants), f"inputs {names} replaced by the example's"


def _user_leaves(program: ExportedProgram, args: tuple[Any, ...], kwargs: Any) -> list[Any]:
    """The example's leaves in the order of the program's user inputs (kwargs in the order of its in_spec)."""
    kwargs = dict(kwargs or {})
    spec = program.call_spec.in_spec
    children = spec.children() if hasattr(spec, "children") else getattr(spec, "children_specs", None)
    if kwargs and children is not None and len(children) == 2 and isinstance(children[1].context, list):
        kwargs = {key: kwargs[key] for key in children[1].context if key in kwargs}
    return pytree.tree_leaves((tuple(args), kwargs))


def _fresh_name(base: str, taken: dict[str, Any]) -> str:
    name, number = base, 0
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def detach_outputs(call: WrapperCall, program: ExportedProgram) -> Result:
    """Floating and complex user outputs detached, when an example input or a parameter requires grad."""
    example = [t for t in pytree.tree_leaves((call.args, call.kwargs or {})) if isinstance(t, torch.Tensor)]
    grads = any(t.requires_grad for t in example) or any(
        getattr(t, "requires_grad", False) for t in program.state_dict.values()
    )
    if not grads:
        return None, "no example input or parameter requires grad"
    graph = program.graph
    output = _output_node(graph)
    values = _output_values(output)
    specs = list(program.graph_signature.output_specs)
    renamed: dict[str, str] = {}
    for index, spec in enumerate(specs):
        value = values[index]
        val = value.meta.get("val") if isinstance(value, fx.Node) else None
        if spec.kind != OutputKind.USER_OUTPUT or not isinstance(val, torch.Tensor):
            continue
        if not (val.is_floating_point() or val.is_complex()):
            continue
        assert isinstance(value, fx.Node)
        with graph.inserting_before(output):
            new = graph.call_function(aten.detach.default, (value,))
        new.meta = {**value.meta, "val": _fake_of(val, torch.Tensor.detach)}
        renamed[value.name] = new.name
        values[index] = new
        specs[index] = dataclasses.replace(spec, arg=TensorArgument(name=new.name))
    if not renamed:
        return None, "no floating user output"
    return _with_outputs(program, output, values, specs, renamed), f"detached {len(renamed)} output(s)"


def perturb_state(call: WrapperCall, program: ExportedProgram) -> Result:
    """New parameters, buffers and tensor constants: floats + 0.5, ints + 1, bools negated (shared ones stay shared)."""
    made: dict[int, torch.Tensor] = {}
    names: list[str] = []

    def perturbed(name: str, value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.numel() == 0 or value.is_meta:
            return value
        if id(value) not in made:
            with torch.no_grad():
                new = _perturbed(value.detach())
            made[id(value)] = (
                torch.nn.Parameter(new, requires_grad=value.requires_grad)
                if isinstance(value, torch.nn.Parameter) else new
            )
        names.append(name)
        return made[id(value)]

    state_dict = {name: perturbed(name, value) for name, value in program.state_dict.items()}
    constants = {name: perturbed(name, value) for name, value in program.constants.items()}
    if not names:
        return None, "no parameter, buffer or tensor constant with elements"
    return _rebuild(program, state_dict=state_dict, constants=constants), f"perturbed {', '.join(sorted(names))}"


def drop_dynamic_shapes(call: WrapperCall, program: ExportedProgram) -> Result:
    """The call exported again without ``dynamic_shapes``: a program specialized to the example's sizes."""
    if call.options.get("dynamic_shapes") is None:
        return None, "exported without dynamic_shapes"
    symbolic = [
        node.name
        for node, spec in zip(_placeholders(program.graph), program.graph_signature.input_specs, strict=True)
        if spec.kind == InputKind.USER_INPUT and _has_symbols(node.meta.get("val"))
    ]
    if not symbolic:
        return None, "dynamic_shapes left every input static"
    try:
        static = call.export(dynamic_shapes=None)
    except Exception as exc:
        return None, f"the export without dynamic_shapes raised {type(exc).__name__}: {exc}".splitlines()[0]
    return static, f"inputs {', '.join(symbolic)} static"


def _empty(value: torch.Tensor) -> bool:
    """Whether a (fake) tensor has no elements whatever its symbolic sizes are (a static 0 among them)."""
    return any(isinstance(size, int) and size == 0 for size in value.shape)


def _has_symbols(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return any(not isinstance(size, int) for size in value.shape)
    return isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool)


def drop_state_mutations(call: WrapperCall, program: ExportedProgram) -> Result:
    """Buffer and parameter mutations act on per-call copies: outputs as before, the state never written."""
    return _drop_mutations(program, STATE_KINDS, STATE_MUTATIONS, "buffer/parameter")


def drop_input_mutations(call: WrapperCall, program: ExportedProgram) -> Result:
    """In-place mutations of user inputs act on per-call copies: outputs as before, the inputs never written."""
    return _drop_mutations(program, (InputKind.USER_INPUT,), (OutputKind.USER_INPUT_MUTATION,), "input")
