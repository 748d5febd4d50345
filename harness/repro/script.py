"""Reproduce one torch.export failure with plain torch: every repro bundle holds a copy of this file as repro.py.

This is the template of ``repro.py`` (``harness/repro/bundle.py`` copies it into each bundle with the
bundle's description in ``BUNDLE``). It imports torch and the standard library only: no harness, no test
suite. Run it from anywhere: ``python repro.py``. It loads the files next to it (the first exported
program, the example inputs, the transformed program where there is one) and re-runs what failed:

- save/load (``torch.export.save`` then ``torch.export.load``): stages ``serialize``, ``deserialize``;
- the C++ round trip (Python serializer, ``torch._C._export`` deserialize and serialize, Python
  deserializer): stages ``serialize``, ``cpp_roundtrip``, ``deserialize``;
- re-export of ``ep.module()`` with the same inputs and options: stage ``retrace``;
- ``ep.run_decompositions({})``: stage ``decompose``;
- a test's own check that failed after a transformation (stage ``test``): the first program's outputs
  against the transformed program's, on the saved inputs.

Where ``torch.export.save`` could not save the first program (a failure of the ``serialize`` stage), the
bundle holds ``program.fx.pt`` instead: the program's graph, metadata and state as plain data, which
:func:`rebuild_program` turns back into an ``ExportedProgram`` without going through torch's serializer.

The last line says what happened, and so does the exit status:

- ``REPRODUCED stage=S: Type: message`` (exit 1): the recorded stage failed with the recorded type;
- ``FAILED DIFFERENTLY stage=S: ...`` (exit 3): another stage or another exception type failed;
- ``NOT REPRODUCED: ...`` (exit 0): every stage passed (or the outputs agree);
- ``CANNOT REPRODUCE: ...`` (exit 2): the bundle's files could not be loaded, or the stage is not torch's.

The ``.pt`` files are pickles written by the harness, loaded here with ``weights_only=False``: run the
script only on bundles you trust, as you would any pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import pathlib
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch

BUNDLE: dict[str, Any] = {}  # replaced by the bundle's description (bundle.json) in a bundle

HERE = pathlib.Path(__file__).resolve().parent

EXIT_NOT_REPRODUCED = 0
EXIT_REPRODUCED = 1
EXIT_CANNOT = 2
EXIT_DIFFERENTLY = 3

MAX_LINE = 500
"""Characters of an exception's first line printed in the verdict."""


class StageFailed(Exception):
    """A stage raised: which one, and torch's exception (``__cause__``)."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.error = error


class CannotReproduce(Exception):
    """The repro cannot be set up (a file is missing or cannot be loaded with plain torch)."""


# ------------------------------------------------------------------------------------------- reporting


def first_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    text = text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"
    return f"{type(error).__name__}: {text}"


def recorded_type() -> str:
    return str(BUNDLE.get("cause", "")).partition(":")[0].strip()


def verdict(stage: str, error: BaseException) -> int:
    """Print torch's traceback and the verdict line; the exit status."""
    print(f"\nstage {stage!r} raised:", flush=True)
    traceback.print_exception(error, file=sys.stdout)
    cause = first_line(error)
    if stage == BUNDLE.get("stage") and type(error).__name__ == recorded_type():
        print(f"\nREPRODUCED stage={stage}: {cause}")
        return EXIT_REPRODUCED
    print(f"\nrecorded: stage={BUNDLE.get('stage')}: {BUNDLE.get('cause')}")
    print(f"FAILED DIFFERENTLY stage={stage}: {cause}")
    return EXIT_DIFFERENTLY


def not_reproduced(what: str) -> int:
    print(f"\nrecorded: stage={BUNDLE.get('stage')}: {BUNDLE.get('cause')}")
    print(f"NOT REPRODUCED: {what}")
    return EXIT_NOT_REPRODUCED


def run_stage(stage: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call one stage; an exception from it becomes :class:`StageFailed` naming the stage."""
    print(f"-- {stage}: {getattr(function, '__qualname__', function)}", flush=True)
    try:
        return function(*args, **kwargs)
    except Exception as error:
        raise StageFailed(stage, error) from error


# ------------------------------------------------------------------------------------------- the files


def path_of(key: str) -> pathlib.Path | None:
    name = BUNDLE.get("files", {}).get(key)
    return None if name is None else HERE / name


def load_pickle(path: pathlib.Path) -> Any:
    """One of the bundle's own ``.pt`` files (pickles; see the module docstring)."""
    try:
        return torch.load(path, weights_only=False)
    except (ModuleNotFoundError, AttributeError) as error:
        raise CannotReproduce(
            f"{path.name} refers to {error}; plain torch cannot import it (a class or function of the test "
            "suite); see error.txt"
        ) from error


def first_program() -> torch.export.ExportedProgram:
    """The first exported program: program.pt2, or rebuilt from program.fx.pt where it could not be saved."""
    return program_from("program", "program_dump")


def transformed_program() -> torch.export.ExportedProgram:
    return program_from("transformed", "transformed_dump")


def program_from(saved: str, dumped: str) -> torch.export.ExportedProgram:
    """The program torch.export.save saved; where there is none or it does not load, the one rebuilt from its dump."""
    pt2, dump = path_of(saved), path_of(dumped)
    problems = []
    if pt2 is not None:
        print(f"-- loading {pt2.name} (torch.export.load)", flush=True)
        try:
            return torch.export.load(pt2)
        except Exception as error:
            if dump is None:
                raise CannotReproduce(f"could not load {pt2.name}: {first_line(error)}") from error
            problems.append(f"{pt2.name}: {first_line(error)}")
            print(f"   torch.export.load({pt2.name}) raised {first_line(error)}")
    if dump is not None:
        why = "it does not load" if pt2 is not None else "torch.export.save could not save it"
        print(f"-- rebuilding the program from {dump.name} ({why})", flush=True)
        try:
            return rebuild_program(load_pickle(dump))
        except CannotReproduce:
            raise
        except Exception as error:
            problems.append(f"{dump.name}: {first_line(error)}")
            raise CannotReproduce(f"could not load the program: {'; '.join(problems)}") from error
    raise CannotReproduce(
        f"the bundle holds neither {saved}.pt2 nor {saved}.fx.pt: torch could not save the program and plain torch "
        "could not load it back from data; error.txt's notes say why"
    )


def inputs(program: torch.export.ExportedProgram | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The example inputs the test passed to export (inputs.pt), else the program's own example_inputs."""
    path = path_of("inputs")
    if path is not None:
        saved = load_pickle(path)
        return tuple(saved["args"]), dict(saved["kwargs"] or {})
    if program is not None and program.example_inputs is not None:
        print("-- inputs.pt is missing (see error.txt); using the program's example_inputs")
        args, kwargs = program.example_inputs
        return tuple(args), dict(kwargs or {})
    raise CannotReproduce("no example inputs: inputs.pt is missing and the program has no example_inputs")


def export_options() -> dict[str, Any]:
    """The options of the first export (``strict``, ``dynamic_shapes`` ...), as the wrapper passed them."""
    options = dict(BUNDLE.get("options", {}))
    spec = options.pop("dynamic_shapes", None)
    if spec is not None:
        from torch._export.serde.dynamic_shapes import _load_dynamic_shapes

        options["dynamic_shapes"] = _load_dynamic_shapes(spec, from_dict=True)
    pickled = path_of("dynamic_shapes")
    if pickled is not None:
        options["dynamic_shapes"] = load_pickle(pickled)
    if "preserve_module_call_signature" in options:
        options["preserve_module_call_signature"] = tuple(options["preserve_module_call_signature"])
    return options


# ------------------------------------------------------------------------------------------- the stages


def save_load() -> int:
    """``torch.export.save`` then ``torch.export.load`` (program.pt2 was written by torch.export.save)."""
    if path_of("program") is not None:
        program = run_stage("deserialize", torch.export.load, path_of("program"))
    else:
        program = first_program()
    buffer = io.BytesIO()
    run_stage("serialize", torch.export.save, program, buffer)
    buffer.seek(0)
    run_stage("deserialize", torch.export.load, buffer)
    return not_reproduced("torch.export.save and torch.export.load both passed")


def cpp_roundtrip_of(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Python serializer, C++ deserialize and serialize (``torch._C._export``), Python deserializer."""
    import torch._C._export as cpp_export
    from torch._export.serde import serialize as serde

    artifact = run_stage("serialize", serde.serialize, program)

    def through_cpp(artifact: Any) -> Any:
        cpp_program = cpp_export.deserialize_exported_program(artifact.exported_program.decode("utf-8"))
        payload = cpp_export.serialize_exported_program(cpp_program)
        return dataclasses.replace(artifact, exported_program=payload.encode("utf-8"))

    artifact = run_stage("cpp_roundtrip", through_cpp, artifact)
    deserialized: torch.export.ExportedProgram = run_stage("deserialize", serde.deserialize, artifact)
    return deserialized


def cpp_roundtrip() -> int:
    cpp_roundtrip_of(first_program())
    return not_reproduced("serialize, the C++ round trip and deserialize all passed")


def retrace_of(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    args, kwargs = inputs(program)
    options = export_options()
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    print(f"-- re-exporting program.module() with the saved inputs and {shown or 'no options'}")
    retraced: torch.export.ExportedProgram = run_stage(
        "retrace", torch.export.export, program.module(), args, kwargs or None, **options
    )
    return retraced


def retrace() -> int:
    retrace_of(first_program())
    return not_reproduced("re-exporting program.module() passed")


def decompose_of(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    decomposed: torch.export.ExportedProgram = run_stage("decompose", program.run_decompositions, {})
    return decomposed


def decompose() -> int:
    decompose_of(first_program())
    return not_reproduced("run_decompositions({}) passed")


def save_load_of(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    buffer = io.BytesIO()
    run_stage("serialize", torch.export.save, program, buffer)
    buffer.seek(0)
    loaded: torch.export.ExportedProgram = run_stage("deserialize", torch.export.load, buffer)
    return loaded


TRANSFORMS: dict[str, Callable[[torch.export.ExportedProgram], torch.export.ExportedProgram]] = {
    "save_load": save_load_of,
    "cpp_roundtrip": cpp_roundtrip_of,
    "retrace": retrace_of,
    "decompose": decompose_of,
}


# ------------------------------------------------------------------------------------------- numeric check


def call(program: torch.export.ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Outputs and the inputs after the call (in-place mutation), run on copies of both."""
    args, kwargs = copy.deepcopy((args, kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = copy.deepcopy(program).module()
    outputs = module(*args, **kwargs)
    return {"outputs": outputs, "inputs after the call": (args, kwargs)}


def assert_same(actual: Any, expected: Any, quiet: bool = False) -> None:
    """Every leaf of ``actual`` equals ``expected``'s (tensors by torch.testing.assert_close, NaN == NaN)."""
    import torch.utils._pytree as pytree

    for part in ("outputs", "inputs after the call"):
        got, got_spec = pytree.tree_flatten(actual[part])
        want, want_spec = pytree.tree_flatten(expected[part])
        if got_spec != want_spec:
            raise AssertionError(f"{part}: structure {got_spec} differs from {want_spec}")
        for index, (a, e) in enumerate(zip(got, want, strict=True)):
            if isinstance(a, torch.Tensor) and isinstance(e, torch.Tensor):
                try:
                    torch.testing.assert_close(a, e, equal_nan=True)
                except AssertionError:
                    if not quiet:
                        print(f"   {part}, leaf {index}: transformed {a!r}\n   first program {e!r}")
                    raise
            elif a != e:
                raise AssertionError(f"{part}, leaf {index}: {a!r} != {e!r}")


def compare() -> int:
    """The transformed program against the first one on the saved inputs (stage ``test``)."""
    first = first_program()
    transformed = transformed_program()
    args, kwargs = inputs(first)
    reference = path_of("first_outputs")
    if reference is not None:
        print(f"-- expected: {reference.name} (the first program's results, as torch returned it, in the harness)")
        expected = load_pickle(reference)
    else:
        print("-- expected: the first program's results on the inputs")
        try:
            expected = call(first, args, kwargs)
        except Exception as error:
            raise CannotReproduce(f"the first program fails on the saved inputs: {first_line(error)}") from error
    failure: StageFailed | None = None
    try:
        run_stage("test", lambda: assert_same(call(transformed, args, kwargs), expected))
    except StageFailed as failed:
        failure = failed
    transform = BUNDLE.get("transform")
    if transform in TRANSFORMS:
        print(f"\n-- for comparison: {transform} of the first program again, here, and the same check")
        try:
            again = TRANSFORMS[transform](first)
            assert_same(call(again, args, kwargs), expected)
            print(f"   {transform} again: the results agree with the first program")
        except StageFailed as failed:
            print(f"   {transform} again: stage {failed.stage!r} raised {first_line(failed.error)}")
        except Exception as error:
            print(f"   {transform} again: {first_line(error)} (the same difference: {transform} itself causes it)")
    if failure is not None:
        return verdict(failure.stage, failure.error)
    return not_reproduced(
        "the transformed program's results agree with the first program's on the saved inputs (the test's check "
        "looked at something else; see error.txt)"
    )


# ------------------------------------------------------------------------------------------- rebuilding


def rebuild_program(dump: dict[str, Any]) -> torch.export.ExportedProgram:
    """An ``ExportedProgram`` from ``program.fx.pt``: its graph (nodes, targets, metadata) and state.

    Node metadata ``val`` is rebuilt as fake tensors and symbolic sizes in a fresh fake mode. The program
    is not re-verified: it is taken as the wrapper was handed it.
    """
    import sympy
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.export.exported_program import ExportedProgram
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    shape_env = ShapeEnv()
    fake_mode = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=True)

    def sym(value: dict[str, Any]) -> Any:
        expr, hint = value["expr"], value["hint"]
        if value["kind"] == "bool":
            return shape_env.create_symboolnode(expr)
        if value["kind"] == "float":
            return shape_env.create_symfloatnode(expr, hint=hint)
        if isinstance(expr, sympy.Integer):
            return int(expr)
        return shape_env.create_symintnode(expr, hint=hint)

    def meta_value(value: Any) -> Any:
        if isinstance(value, dict) and "__fake__" in value:
            spec = value["__fake__"]
            with fake_mode:
                tensor = torch.empty_strided(
                    [meta_value(s) for s in spec["size"]],
                    [meta_value(s) for s in spec["stride"]],
                    dtype=spec["dtype"],
                    device=spec["device"],
                    requires_grad=spec["requires_grad"],
                )
            return tensor
        if isinstance(value, dict) and "__sym__" in value:
            return sym(value["__sym__"])
        if isinstance(value, list):
            return [meta_value(v) for v in value]
        if isinstance(value, tuple):
            items = [meta_value(v) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        if isinstance(value, dict):
            return {k: meta_value(v) for k, v in value.items()}
        return value

    def target(value: Any) -> Any:
        if isinstance(value, dict) and "__op__" in value:
            namespace, name, overload = value["__op__"]
            return getattr(getattr(getattr(torch.ops, namespace), name), overload)
        if isinstance(value, dict) and "__hop__" in value:
            return getattr(torch.ops.higher_order, value["__hop__"])
        return value

    def graph_module(spec: dict[str, Any]) -> torch.fx.GraphModule:
        graph = torch.fx.Graph()
        nodes: dict[str, torch.fx.Node] = {}

        def argument(value: Any) -> Any:
            if isinstance(value, dict) and "__node__" in value:
                return nodes[value["__node__"]]
            if isinstance(value, list):
                return [argument(v) for v in value]
            if isinstance(value, tuple):
                return tuple(argument(v) for v in value)
            if isinstance(value, dict):
                return {k: argument(v) for k, v in value.items()}
            return value

        for node in spec["nodes"]:
            created = graph.create_node(
                node["op"], target(node["target"]), argument(node["args"]), argument(node["kwargs"]), node["name"]
            )
            meta = dict(node["meta"])
            if "from_node" in meta:
                from torch.fx.traceback import NodeSource

                meta["from_node"] = [NodeSource._from_dict(d) for d in meta["from_node"]]
            created.meta = {k: meta_value(v) if k == "val" else v for k, v in meta.items()}
            nodes[node["name"]] = created
        root = {
            name: graph_module(value["__graph_module__"]) if isinstance(value, dict) and "__graph_module__" in value
            else value
            for name, value in spec["attributes"].items()
        }
        module = torch.fx.GraphModule(root, graph, spec.get("class_name", "GraphModule"))
        module.meta.update(spec.get("meta", {}))
        return module

    root = graph_module(dump["graph_module"])
    arguments = dict(
        root=root,
        graph=root.graph,
        graph_signature=dump["graph_signature"],
        state_dict=dump["state_dict"],
        range_constraints=dump["range_constraints"],
        module_call_graph=dump["module_call_graph"],
        example_inputs=dump["example_inputs"],
        constants=dump["constants"],
        verifiers=dump["verifiers"],
    )
    validate = ExportedProgram.validate
    ExportedProgram.validate = lambda self: None  # type: ignore[method-assign]
    try:
        program = ExportedProgram(**arguments)
    finally:
        ExportedProgram.validate = validate  # type: ignore[method-assign]
    return program


# ------------------------------------------------------------------------------------------- main

MODES: dict[str, Callable[[], int]] = {
    "save_load": save_load,
    "cpp_roundtrip": cpp_roundtrip,
    "retrace": retrace,
    "decompose": decompose,
    "compare": compare,
}


def main() -> int:
    print(f"test:    {BUNDLE.get('test')}")
    print(f"wrapper: {BUNDLE.get('wrapper')}")
    print(f"stage:   {BUNDLE.get('stage')}")
    print(f"cause:   {BUNDLE.get('cause')}")
    print(f"torch:   {torch.__version__} here; the bundle was written with torch {BUNDLE.get('torch')}\n", flush=True)
    mode = MODES.get(str(BUNDLE.get("mode")))
    try:
        if mode is None:
            raise CannotReproduce(
                f"stage {BUNDLE.get('stage')!r} of wrapper {BUNDLE.get('wrapper')!r} is not one of torch's "
                "(save/load, C++ round trip, retrace, decompose, a test's check); see error.txt"
            )
        return mode()
    except StageFailed as failed:
        return verdict(failed.stage, failed.error)
    except CannotReproduce as problem:
        if problem.__cause__ is not None:
            traceback.print_exception(problem.__cause__, file=sys.stdout)
        print(f"\nCANNOT REPRODUCE: {problem}")
        return EXIT_CANNOT


if __name__ == "__main__":
    sys.exit(main())
