"""A program as plain data, for where ``torch.export.save`` cannot save it: ``program.fx.pt``.

A failure of the ``serialize`` stage means torch's serializer cannot write the program, so the bundle
cannot hold a ``.pt2``. It holds this instead: the graph (per node its op, name, target, arguments and
the metadata the serializer and the passes read), the submodules of higher-order operators, the graph
signature, state, constants, range constraints, module call graph, example inputs and verifiers,
pickled with ``torch.save``. ``repro.py`` (:func:`harness.repro.script.rebuild_program`) turns it back
into an ``ExportedProgram`` with plain torch, then runs the stage that failed.

What cannot travel: fake tensors (kept as size, stride, dtype, device and ``requires_grad``, rebuilt in a
fresh fake mode) and symbolic sizes (kept as sympy expressions with their hints). Operators are kept by
name (``aten::add.Tensor``), so an operator the test suite registered is missing in a fresh interpreter;
classes and functions of the test suite (a pytree node type, a user function in ``source_fn_stack``) are
either turned into the strings the serializer writes anyway or, where they matter, named by
:func:`harness.repro.portable.foreign_globals` so that error.txt says what plain torch lacks.

Imports torch lazily; nothing here runs unless a bundle is written.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from harness.repro.portable import portable_object

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram

FORMAT = "torch-export-harness-fx"
VERSION = 1
META_KEYS = (
    "val",
    "stack_trace",
    "nn_module_stack",
    "source_fn_stack",
    "torch_fn",
    "custom",
    "from_node",
    "unbacked_bindings",
)
"""Node metadata kept: what torch's serializer writes, plus ``val`` that passes and the verifier read."""


def dump_program(program: ExportedProgram) -> dict[str, Any]:
    """``program`` as plain data (see the module docstring); ``torch.save`` it."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "graph_module": _graph_module(program.graph_module),
        "graph_signature": program.graph_signature,
        "state_dict": dict(program.state_dict),
        "range_constraints": dict(program.range_constraints),
        "module_call_graph": list(program.module_call_graph),
        "example_inputs": program.example_inputs,
        "constants": dict(program.constants),
        "verifiers": list(program.verifiers),
    }


def _graph_module(module: torch.fx.GraphModule) -> dict[str, Any]:
    import torch

    nodes = []
    attributes: dict[str, Any] = {}
    for node in module.graph.nodes:
        nodes.append(
            {
                "op": node.op,
                "name": node.name,
                "target": _target(node.target),
                "args": _argument(node.args),
                "kwargs": _argument(dict(node.kwargs)),
                "meta": _meta(node.meta),
            }
        )
        if node.op in ("get_attr", "call_module") and isinstance(node.target, str):
            value = operator.attrgetter(node.target)(module)
            if isinstance(value, torch.fx.GraphModule):
                attributes[node.target] = {"__graph_module__": _graph_module(value)}
            else:
                attributes[node.target] = value
    return {"nodes": nodes, "attributes": attributes, "class_name": type(module).__name__}


def _target(target: Any) -> Any:
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return {"__op__": (target.namespace, target._opname, target._overloadname)}
    if isinstance(target, torch._ops.HigherOrderOperator):
        return {"__hop__": target.name()}  # type: ignore[no-untyped-call]
    return target


def _argument(value: Any) -> Any:
    import torch

    if isinstance(value, torch.fx.Node):
        return {"__node__": value.name}
    if isinstance(value, list):
        return [_argument(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_argument(v) for v in value)
    if isinstance(value, dict):
        return {k: _argument(v) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(_argument(value.start), _argument(value.stop), _argument(value.step))
    return value


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in META_KEYS:
        if key not in meta:
            continue
        value = meta[key]
        if key == "val":
            value = meta_value(value)
        elif key == "source_fn_stack":
            value = [(name, _portable_or_name(fn)) for name, fn in value]
        elif key == "nn_module_stack":
            value = {k: (path, ty if isinstance(ty, str) else _name_of(ty)) for k, (path, ty) in value.items()}
        elif key == "from_node":
            value = [source.to_dict() for source in value or [] if hasattr(source, "to_dict")]
        kept[key] = value
    return kept


def _name_of(thing: Any) -> str:
    """The string torch's serializer writes for a callable or type (``module.name``)."""
    return f"{getattr(thing, '__module__', '?')}.{getattr(thing, '__name__', repr(thing))}"


def _portable_or_name(thing: Any) -> Any:
    if isinstance(thing, str) or portable_object(thing):
        return thing
    return _name_of(thing)


def meta_value(value: Any) -> Any:
    """A node's ``val`` without fake tensors or symbolic values (see the module docstring)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor

    if isinstance(value, FakeTensor):
        return {
            "__fake__": {
                "size": [meta_value(s) for s in value.size()],
                "stride": [meta_value(s) for s in value.stride()],
                "dtype": value.dtype,
                "device": value.device,
                "requires_grad": value.requires_grad,
            }
        }
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        kind = {torch.SymInt: "int", torch.SymFloat: "float", torch.SymBool: "bool"}[type(value)]
        node = value.node
        hint = node.hint if isinstance(node.hint, int | float | bool) else None
        return {"__sym__": {"kind": kind, "expr": node.expr, "hint": hint}}
    if isinstance(value, list):
        return [meta_value(v) for v in value]
    if isinstance(value, tuple):
        items = [meta_value(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):
        return {k: meta_value(v) for k, v in value.items()}
    return value
