"""Writing one repro bundle: the programs, the inputs, error.txt, bundle.json and repro.py, in one folder.

Runs only for a failing test phase (or an expected failure with ``--repro-xfail``), on the process that
ran the test (an xdist worker holds the objects). Every file is written into a temporary folder that
replaces the bundle's folder at the end, so a reader never sees half a bundle. A file that cannot be
written is left out and ``error.txt`` says why; ``repro.py`` then falls back (the program's own
``example_inputs`` for missing inputs, ``program.fx.pt`` for a program ``torch.export.save`` refuses).

Imports torch lazily (only when a bundle is written).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import pprint
import shutil
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import EXPORT_STAGE
from harness.patching import Capture
from harness.repro.dump import dump_program
from harness.repro.portable import foreign_globals
from harness.results import TEST_STAGE

SCRIPT = "script.py"
"""The template of repro.py (a module of this package, so it is linted and typed like the rest)."""
SCRIPT_PLACEHOLDER = "BUNDLE: dict[str, Any] = {}  # replaced by the bundle's description (bundle.json) in a bundle"
MAX_TEXT = 2_000_000
"""Characters kept of a printed program (program.txt) or a traceback (error.txt)."""

FAMILY_STAGES = {
    "save_load": ("serialize", "deserialize"),
    "cpp_roundtrip": ("serialize", "cpp_roundtrip", "deserialize"),
    "retrace": ("retrace",),
    "decompose": ("decompose",),
}
"""The transformations repro.py can re-run with plain torch, and the stages each one has."""
STAGE_FAMILIES = {
    "serialize": "save_load",
    "deserialize": "save_load",
    "cpp_roundtrip": "cpp_roundtrip",
    "retrace": "retrace",
    "decompose": "decompose",
}
"""A stage's transformation when the wrapper's tags do not say (an entry-point wrapper without tags)."""
TAG_FAMILIES = (("cpp", "cpp_roundtrip"), ("serdes", "save_load"), ("retrace", "retrace"), ("decomp", "decompose"))
"""Wrapper tags, most specific first, and the transformation a wrapper so tagged applies."""
KNOWN_OPTIONS = ("strict", "preserve_module_call_signature", "prefer_deferred_runtime_asserts_over_guards")
"""Export options repro.py passes on as they were (``dynamic_shapes`` is converted on its own)."""


@dataclass
class Failure:
    """One failing (test, wrapper): what failed, where, and the capture of the wrapper call it concerns."""

    test: str
    """The test id (a matrix id without its wrapper parameter)."""
    nodeid: str
    wrapper: str
    tags: tuple[str, ...]
    stage: str
    """The wrapper stage that raised, or ``test`` (the test's own check after the transformation)."""
    cause: str
    """``Type: first line`` of torch's exception (or the test's)."""
    phase: str
    outcome: str
    """``failed`` or ``xfailed`` (written on request)."""
    error: BaseException
    """torch's exception (the stage error's cause), or the test's own for a failed check."""
    capture: Capture
    notes: list[str] = field(default_factory=list)


def transform_of(tags: tuple[str, ...], stage: str) -> str | None:
    """The transformation repro.py re-runs: from the wrapper's tags, else from the stage's name."""
    for tag, family in TAG_FAMILIES:
        if tag in tags:
            return family
    return STAGE_FAMILIES.get(stage)


def mode_of(failure: Failure) -> str:
    """What repro.py does: ``compare`` for a failed check, else the transformation whose stage failed."""
    if failure.stage == TEST_STAGE:
        return "compare"
    family = transform_of(failure.tags, failure.stage)
    if family is not None and failure.stage in FAMILY_STAGES[family]:
        return family
    return STAGE_FAMILIES.get(failure.stage, "unsupported")


def versions() -> dict[str, str]:
    import torch

    from harness import __version__

    return {
        "torch": str(torch.__version__),
        "harness": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n… cut at {MAX_TEXT} characters\n"


def _problem(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"


class _Writer:
    """Fills one temporary folder; every file it could not write becomes a note."""

    def __init__(self, folder: Path, failure: Failure) -> None:
        self.folder = folder
        self.failure = failure
        self.files: dict[str, str] = {}
        self.notes = failure.notes

    def pickle(self, key: str, name: str, value: Any, what: str) -> bool:
        """``torch.save`` ``value`` as ``name``, kept only if a plain-torch interpreter can load it."""
        import torch

        path = self.folder / name
        try:
            torch.save(value, path)
            foreign = foreign_globals(path)
        except Exception as error:
            path.unlink(missing_ok=True)
            self.notes.append(f"{what} could not be saved with torch.save: {_problem(error)}")
            return False
        if foreign:
            path.unlink(missing_ok=True)
            self.notes.append(
                f"{what} left out: pickled, it refers to {', '.join(foreign[:10])}, which plain torch cannot "
                "import (a class or function of the test suite)"
            )
            return False
        self.files[key] = name
        return True

    def program(self, key: str, program: Any, what: str) -> None:
        """``<key>.pt2`` by torch.export.save; where it cannot be saved or loaded back, ``<key>.fx.pt`` too.

        ``<key>.txt`` always holds the printed graph, signature and range constraints.
        """
        import torch

        printed = self.folder / f"{key}.txt"
        try:
            text = str(program)
        except Exception as error:
            text = f"(printing the program raised {_problem(error)})"
        saved, loads = self.folder / f"{key}.pt2", False
        why = ""
        try:
            torch.export.save(program, saved)
        except Exception as error:
            saved.unlink(missing_ok=True)
            why = f"torch.export.save raised:\n{_clip(''.join(traceback.format_exception(error)))}"
            self.notes.append(f"{what}: torch.export.save raised {_problem(error)}")
        else:
            self.files[key] = saved.name
            try:
                torch.export.load(saved)
                loads = True
            except Exception as error:
                why = f"{saved.name} was saved, but torch.export.load raises:\n"
                why += _clip("".join(traceback.format_exception(error)))
                self.notes.append(f"{what}: saved as {saved.name}, but torch.export.load raises {_problem(error)}")
        if why:
            text += f"\n\n{'-' * 100}\nWhat could not be serialized\n\n{why}"
        printed.write_text(_clip(text), encoding="utf-8")
        self.files[f"{key}_text"] = printed.name
        if not loads:
            try:
                dump = dump_program(program)
            except Exception as error:
                self.notes.append(f"{what}: could not be taken apart for {key}.fx.pt: {_problem(error)}")
            else:
                self.pickle(f"{key}_dump", f"{key}.fx.pt", dump, f"{what} (its graph as data, {key}.fx.pt)")

    def inputs(self) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """inputs.pt: the example inputs the test passed to export; what repro.py runs with."""
        capture = self.failure.capture
        args, kwargs = tuple(capture.args or ()), dict(capture.kwargs or {})
        if self.pickle("inputs", "inputs.pt", {"args": args, "kwargs": kwargs}, "the example inputs"):
            return args, kwargs
        self.notes.append("repro.py uses the program's own example_inputs instead of inputs.pt")
        program = capture.first
        example = getattr(program, "example_inputs", None)
        return (tuple(example[0]), dict(example[1] or {})) if example is not None else None

    def first_outputs(self, inputs: tuple[tuple[Any, ...], dict[str, Any]] | None) -> None:
        """first_outputs.pt: the first program's results on the inputs, in this process (before any save).

        Also says in a note when the transformed program's results agree with them: the check that failed
        then looked at something else (gradients, an error it expected, other inputs), which repro.py does
        not re-run, so it will say NOT REPRODUCED.
        """
        from harness.repro.script import assert_same, call

        capture = self.failure.capture
        first, transformed = capture.first, capture.transformed
        if inputs is None or first is None or transformed is None:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = call(first, *copy.deepcopy(inputs))
        except Exception as error:
            self.notes.append(f"the first program raised on the example inputs: {_problem(error)}")
            return
        self.pickle("first_outputs", "first_outputs.pt", results, "the first program's results")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert_same(call(transformed, *copy.deepcopy(inputs)), results, quiet=True)
        except Exception:
            return  # they differ (or the transformed program raises): what repro.py shows
        self.notes.append(
            "on the example inputs the transformed program's results (outputs, mutated inputs) equal the first "
            "program's: the check that failed looked at something else (gradients, an error it expected, other "
            "inputs; see the traceback below), so repro.py, which compares results, will say NOT REPRODUCED"
        )

    def options(self) -> dict[str, Any]:
        """The first export's options as repro.py passes them (JSON), ``dynamic_shapes`` made positional."""
        from harness.wrappers import positional_dynamic_shapes

        capture = self.failure.capture
        options: dict[str, Any] = {}
        for name, value in capture.options.items():
            if name in KNOWN_OPTIONS:
                options[name] = list(value) if isinstance(value, tuple | list) else value
            elif name != "dynamic_shapes":
                self.notes.append(f"export option {name}={value!r:.100} is not passed on by repro.py")
        dynamic_shapes = capture.options.get("dynamic_shapes")
        if dynamic_shapes is not None:
            try:
                positional = positional_dynamic_shapes(capture.mod, capture.args, capture.kwargs, dynamic_shapes)
            except Exception as error:
                positional = dynamic_shapes
                self.notes.append(f"dynamic_shapes kept as given (not made positional: {_problem(error)})")
            try:
                from torch._export.serde.dynamic_shapes import _dump_dynamic_shapes

                args, kwargs = tuple(capture.args or ()), dict(capture.kwargs or {})
                spec = _dump_dynamic_shapes(positional, args, kwargs, to_dict=True)
                json.dumps(spec)
                options["dynamic_shapes"] = spec
            except Exception as error:
                # torch's own format refuses a spec that does not match the inputs (which is what some retrace
                # failures are about): pickle it instead (a derived dim, 2*d, cannot be)
                saved = self.pickle("dynamic_shapes", "dynamic_shapes.pt", positional, "dynamic_shapes")
                if not saved:
                    self.notes.append(f"repro.py exports without dynamic_shapes (torch's format: {_problem(error)})")
        try:
            json.dumps(options)
        except TypeError as error:
            self.notes.append(f"export options dropped (not JSON): {error}")
            return {}
        return options


def write(directory: Path, name: str, failure: Failure) -> Path:
    """Write the bundle of ``failure`` as ``directory/name`` (replacing an older one); the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    temporary = directory / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        _fill(temporary, failure)
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def _fill(folder: Path, failure: Failure) -> None:
    writer = _Writer(folder, failure)
    capture = failure.capture
    mode = mode_of(failure)
    writer.program("program", capture.first, "the first exported program")
    inputs = writer.inputs()
    if mode == "compare":
        writer.program("transformed", capture.transformed, "the transformed program")
        writer.first_outputs(inputs)
    elif mode == "unsupported":
        writer.notes.append(
            f"stage {failure.stage!r} is not one of torch's that repro.py re-runs "
            "(save/load, the C++ round trip, retrace, decompose)"
        )
    options = writer.options()  # before the file list: a pickled dynamic_shapes is one of the files
    here = versions()
    description: dict[str, Any] = {
        "format": "torch-export-harness-repro",
        "version": 1,
        "test": failure.test,
        "nodeid": failure.nodeid,
        "wrapper": failure.wrapper,
        "tags": list(failure.tags),
        "stage": failure.stage,
        "cause": failure.cause,
        "phase": failure.phase,
        "outcome": failure.outcome,
        "mode": mode,
        "transform": transform_of(failure.tags, failure.stage),
        "files": {k: v for k, v in writer.files.items() if not k.endswith("_text")},
        "options": options,
        "notes": writer.notes,
        **here,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "bundle.json").write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
    (folder / "error.txt").write_text(_error_text(failure, description, writer.files), encoding="utf-8")
    (folder / "repro.py").write_text(script_for(description), encoding="utf-8")


def script_for(description: dict[str, Any]) -> str:
    """repro.py: the package's script with ``BUNDLE`` set to ``description``."""
    template = resources.files("harness.repro").joinpath(SCRIPT).read_text(encoding="utf-8")
    if template.count(SCRIPT_PLACEHOLDER) != 1:
        raise RuntimeError(f"harness/repro/{SCRIPT} has lost its BUNDLE placeholder line")
    literal = pprint.pformat(description, width=110, sort_dicts=False)
    return template.replace(SCRIPT_PLACEHOLDER, f"BUNDLE: dict[str, Any] = {literal}", 1)


FILE_TEXT = {
    "program": "the first exported program as torch returned it (torch.export.save)",
    "program_text": "the first program printed: graph, signature, range constraints (and what could not be saved)",
    "program_dump": "the first program's graph and state as data (repro.py rebuilds it without torch's serializer)",
    "inputs": "the example inputs the test passed to export ({'args': ..., 'kwargs': ...}, torch.save)",
    "transformed": "the program the wrapper returned (torch.export.save)",
    "transformed_text": "the transformed program printed",
    "transformed_dump": "the transformed program's graph and state as data",
    "first_outputs": "the first program's results on the inputs, computed in the test process",
    "dynamic_shapes": "the first export's dynamic_shapes (pickled: torch's own format refused them)",
}
MODE_TEXT = {
    "save_load": "torch.export.save, then torch.export.load",
    "cpp_roundtrip": "Python serializer, C++ deserialize + serialize (torch._C._export), Python deserializer",
    "retrace": "torch.export.export(program.module(), inputs, **options)",
    "decompose": "program.run_decompositions({})",
    "compare": "the first and the transformed program on the inputs, results compared",
    "unsupported": "nothing it can re-run: it says so (exit 2)",
}


def _error_text(failure: Failure, description: dict[str, Any], files: dict[str, str]) -> str:
    capture = failure.capture
    outcome = failure.outcome + (" (bundle written on request: --repro-xfail)" if failure.outcome == "xfailed" else "")
    stage = failure.stage
    if stage == TEST_STAGE:
        stage += " (the test's own check failed after the wrapper transformed the program)"
    options = ", ".join(f"{k}={v!r}" for k, v in capture.options.items())
    lines = [
        "torch.export repro bundle (torch-export-harness)",
        "",
        f"test:     {failure.test}",
        f"wrapper:  {failure.wrapper}" + (f" (tags: {', '.join(failure.tags)})" if failure.tags else ""),
        f"stage:    {stage}",
        f"phase:    {failure.phase}",
        f"outcome:  {outcome}",
        f"cause:    {failure.cause}",
        "",
        f"torch {description['torch']} · harness {description['harness']} · Python {description['python']} · "
        f"{description['platform']}",
        "",
        f"first export: torch.export.export(<module {type(capture.mod).__name__}>, args, kwargs"
        + (f", {options}" if options else "")
        + ")",
        "",
        "files:",
    ]
    for key, name in files.items():
        lines.append(f"  {name:<22} {FILE_TEXT.get(key, '')}")
    lines.append(f"  {'repro.py':<22} python repro.py: {MODE_TEXT[description['mode']]}; plain torch only;")
    lines.append(f"  {'':<22} exit 1 and 'REPRODUCED stage=...' when the failure reproduces")
    lines.append(f"  {'bundle.json':<22} this description, for tools")
    if failure.notes:
        lines += ["", "notes:", *(f"  - {note}" for note in failure.notes)]
    what = "torch's exception and traceback" if failure.stage != TEST_STAGE else "the test's failure and traceback"
    if failure.stage == EXPORT_STAGE:
        what = "torch.export.export's exception and traceback"
    lines += ["", "-" * 100, what, "", _clip(formatted(failure.error))]
    return "\n".join(lines) + "\n"


HARNESS = Path(__file__).resolve().parent.parent


def _plumbing(filename: str) -> bool:
    """pytest's and pluggy's frames, and the harness's hooks (not wrappers.py, whose frames show the stage)."""
    path = Path(filename)
    if "_pytest" in path.parts or "pluggy" in path.parts:
        return True
    return path.is_relative_to(HARNESS) and path.name != "wrappers.py"


def formatted(error: BaseException) -> str:
    """``error``'s traceback (and its chain) from the first frame past pytest's and the harness's plumbing."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and _plumbing(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))
