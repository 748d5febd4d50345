"""Golden artifacts: a test's first exported program, stored, and checked against a fresh export later.

Why: the serialized format is a promise across torch versions. A program saved by one torch must load
under the next and compute the same outputs; a changed graph is worth a look even when it does. This
module knows torch (imported lazily) and nothing of pytest; :mod:`harness.golden.plugin` drives it from hooks.

Per test, three files side by side (``<stem>`` from :func:`artifact_stem`):

- ``<stem>.pt2``: ``torch.export.save`` of the program, which carries its example inputs;
- ``<stem>.outputs.pt``: the program's outputs on those inputs, tensors and scalars only
  (``torch.save``; read back with ``torch.load(weights_only=True)``);
- ``<stem>.json``: the sidecar, to review in a diff: torch and harness versions, node id, the
  normalized graph text, the graph signature, the outputs' pytree spec and the SHA-256 of both files.

Loading trusts nothing it does not have to: both checksums are compared before either file is
opened, and a ``.pt2`` is refused before ``torch.export.load`` sees it if loading it would unpickle
(:func:`refuse_pickles`). Every problem is a :class:`GoldenArtifactError` naming the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.golden import ACCEPT_HINT, ASPECTS

if TYPE_CHECKING:
    from torch.export import ExportedProgram

FORMAT = 1
"""Version of the sidecar layout; a sidecar of another version is refused, not guessed at."""

_MAX_STEM = 120
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


class GoldenArtifactError(Exception):
    """A stored artifact that is missing, corrupt, unsafe to load, or written by an unknown layout."""


def artifact_stem(nodeid: str) -> str:
    """A file name for a test id: ``tests/export/test_a.py::test_b[x-1]`` -> ``test_a__test_b_x-1_``.

    Only ``[A-Za-z0-9._-]`` survives; a long id is cut and keeps a hash of the whole id, so stems stay
    distinct and within file-name limits.
    """
    path, _, name = nodeid.partition("::")
    module = Path(path).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{module}__{name.replace('::', '__')}" if name else module)
    if len(stem) > _MAX_STEM:
        digest = hashlib.sha256(nodeid.encode()).hexdigest()[:12]
        stem = f"{stem[: _MAX_STEM - 13]}-{digest}"
    return stem


@dataclass(frozen=True)
class ArtifactPaths:
    """The three files of one test's artifact."""

    program: Path
    outputs: Path
    sidecar: Path

    @classmethod
    def of(cls, directory: Path, nodeid: str) -> ArtifactPaths:
        stem = artifact_stem(nodeid)
        return cls(directory / f"{stem}.pt2", directory / f"{stem}.outputs.pt", directory / f"{stem}.json")

    def files(self) -> tuple[Path, Path, Path]:
        return self.program, self.outputs, self.sidecar


def graph_text(program: ExportedProgram) -> list[str]:
    """The program's graph as readable code with shapes, one line per item, free of run-to-run noise.

    ``print_readable`` shows dtypes and shapes (``f32[s77, 3]``) and the submodules of control flow;
    its ``# File: ...`` comments are dropped (they hold paths and line numbers of the test file), and
    memory addresses become ``0x?``.
    """
    text = program.graph_module.print_readable(print_output=False)
    lines = [_ADDRESS.sub("0x?", line.rstrip()) for line in text.splitlines()]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def signature_text(program: ExportedProgram) -> list[str]:
    """The graph signature (inputs and outputs with their kinds and targets), addresses normalized."""
    return [_ADDRESS.sub("0x?", line.rstrip()) for line in str(program.graph_signature).splitlines() if line.strip()]


@dataclass
class Snapshot:
    """What a golden test's first export looked like, taken before the test could touch the program.

    The graph and signature are always taken; ``program`` (the saved ``.pt2`` bytes), ``outputs`` and
    ``treespec`` only when accepting, since checking reads them from the stored files instead.
    """

    graph: list[str]
    signature: list[str]
    program: bytes | None = None
    outputs: list[Any] = field(default_factory=list)
    treespec: str | None = None


def _plain_leaf(leaf: Any, where: str) -> Any:
    import torch

    if isinstance(leaf, torch.Tensor):
        if type(leaf) is not torch.Tensor and not isinstance(leaf, torch.nn.Parameter):
            raise GoldenArtifactError(
                f"{where} holds a tensor subclass ({type(leaf).__name__}); golden tests need plain tensors"
            )
        return leaf.detach().clone()
    if leaf is None or isinstance(leaf, bool | int | float | str):
        return leaf
    raise GoldenArtifactError(f"{where} holds a {type(leaf).__name__}; golden outputs must be tensors or scalars")


@contextmanager
def _treespec_copy_quiet() -> Iterator[None]:
    """Drop the FutureWarning torch 2.13 raises when ``copy.deepcopy`` rebuilds its own pytree ``LeafSpec``s.

    It is torch's own deprecation, raised by copying an ExportedProgram (``run_decompositions`` in the
    suite raises it too), not something a golden test did; only this one message, only around the copy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        yield


def snapshot(program: ExportedProgram, *, accept: bool) -> Snapshot:
    """Describe the program now; with ``accept``, also save it and run a copy on its example inputs.

    The program runs as a deep copy, on clones of the inputs, so neither the test's module, its inputs
    nor the program's own state see the run (a buffer-mutating program would otherwise shift them).
    """
    shot = Snapshot(graph_text(program), signature_text(program))
    if not accept:
        return shot
    import torch
    from torch.utils import _pytree as pytree

    if program.example_inputs is None:
        raise GoldenArtifactError("the program has no example inputs to store")
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    shot.program = buffer.getvalue()
    args, kwargs = copy.deepcopy(program.example_inputs)
    with _treespec_copy_quiet():
        copied = copy.deepcopy(program)
    outputs = copied.module()(*args, **kwargs)
    leaves, spec = pytree.tree_flatten(outputs)
    shot.outputs = [_plain_leaf(leaf, "the program's output") for leaf in leaves]
    shot.treespec = pytree.treespec_dumps(spec)
    return shot


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(paths: ArtifactPaths, nodeid: str, shot: Snapshot) -> None:
    """Store an accepted snapshot: the ``.pt2``, the outputs and the sidecar, replacing any old ones."""
    import torch

    import harness

    if shot.program is None or shot.treespec is None:
        raise ValueError("write() needs a snapshot taken with accept=True")
    outputs = io.BytesIO()
    torch.save({"leaves": shot.outputs}, outputs)
    paths.program.parent.mkdir(parents=True, exist_ok=True)
    paths.program.write_bytes(shot.program)
    paths.outputs.write_bytes(outputs.getvalue())
    sidecar = {
        "format": FORMAT,
        "node_id": nodeid,
        "torch_version": torch.__version__,
        "harness_version": harness.__version__,
        "program": {"file": paths.program.name, "sha256": _sha256(shot.program)},
        "outputs": {"file": paths.outputs.name, "sha256": _sha256(outputs.getvalue()), "treespec": shot.treespec},
        "signature": shot.signature,
        "graph": shot.graph,
    }
    paths.sidecar.write_text(json.dumps(sidecar, indent=1) + "\n")


def read_sidecar(paths: ArtifactPaths, nodeid: str) -> dict[str, Any]:
    """The sidecar of ``nodeid``'s artifact, checked for layout; a missing one says how to create it."""
    if not paths.sidecar.exists():
        raise GoldenArtifactError(
            f"no golden artifact for {nodeid}: {paths.sidecar} does not exist; create it with `{ACCEPT_HINT}`"
        )
    try:
        sidecar = json.loads(paths.sidecar.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenArtifactError(
            f"{paths.sidecar}: not a valid sidecar ({exc}); re-accept with `{ACCEPT_HINT}`"
        ) from exc
    problems = _sidecar_problems(sidecar, nodeid)
    if problems:
        raise GoldenArtifactError(f"{paths.sidecar}: {problems}; re-accept with `{ACCEPT_HINT}`")
    return dict(sidecar)


def _sidecar_problems(sidecar: Any, nodeid: str) -> str | None:
    if not isinstance(sidecar, dict):
        return "not a JSON object"
    if sidecar.get("format") != FORMAT:
        return f"sidecar format {sidecar.get('format')!r}, this harness reads {FORMAT}"
    if sidecar.get("node_id") != nodeid:
        return f"written for {sidecar.get('node_id')!r}, not {nodeid!r}"
    for key in ("program", "outputs"):
        entry = sidecar.get(key)
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("file", "sha256")):
            return f"{key!r} must name a file and its sha256"
    for key in ("graph", "signature"):
        if not isinstance(sidecar.get(key), list) or not all(isinstance(x, str) for x in sidecar[key]):
            return f"{key!r} must be a list of lines"
    if not isinstance(sidecar["outputs"].get("treespec"), str):
        return "'outputs' must hold the outputs' treespec"
    return None


def read_checked(path: Path, sha256: str) -> bytes:
    """A stored file's bytes, refused unless they hash to what the sidecar recorded."""
    if not path.exists():
        raise GoldenArtifactError(f"{path} does not exist (its sidecar names it); re-accept with `{ACCEPT_HINT}`")
    data = path.read_bytes()
    if _sha256(data) != sha256:
        raise GoldenArtifactError(
            f"{path}: SHA-256 {_sha256(data)[:16]}... does not match the sidecar's {sha256[:16]}...: "
            f"the file is corrupt or was changed by hand; re-accept with `{ACCEPT_HINT}`"
        )
    return data


_PICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")
"""Constants ``torch.export.load`` unpickles whatever they hold (torch 2.13, ``pt2_archive/_package.py``)."""


def refuse_pickles(path: Path, data: bytes) -> None:
    """Refuse a ``.pt2`` that would make ``torch.export.load`` unpickle anything.

    torch 2.13's loader unpickles (``weights_only=False`` or plain ``pickle``) exactly these: weights and
    constants flagged ``use_pickle`` (tensor subclasses), script and opaque objects among the constants,
    the legacy single-file weights and constants, and example inputs that ``torch.load(weights_only=True)``
    rejects (it then retries with ``weights_only=False``). Plain tensors are read as raw bytes. So this
    reads the archive's configs and loads the example inputs itself with ``weights_only=True``; a file
    that passes is loaded by torch without unpickling.
    """
    import torch

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        for name in names:
            if name.endswith("_config.json") and ("/data/weights/" in name or "/data/constants/" in name):
                config = json.loads(archive.read(name))["config"]
                for fqn, meta in config.items():
                    if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(_PICKLED_CONSTANT_PREFIXES):
                        raise GoldenArtifactError(
                            f"{path}: {fqn!r} ({name}) is stored as a pickle; refusing to load it"
                        )
            elif name.endswith(".pt") and ("/data/weights/" in name or "/data/constants/" in name):
                raise GoldenArtifactError(f"{path}: legacy pickled state {name}; refusing to load it")
        samples = [name for name in names if "/data/sample_inputs/" in name]
        for name in samples:
            torch.load(io.BytesIO(archive.read(name)), weights_only=True)
    except GoldenArtifactError:
        raise
    except Exception as exc:
        raise GoldenArtifactError(f"{path}: not a loadable .pt2 without unpickling: {first_line(exc)}") from exc
    if not samples:
        raise GoldenArtifactError(f"{path}: the archive holds no example inputs")


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: short enough for a table cell or a results record."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class Verdict:
    """One check: per aspect of :data:`ASPECTS`, ``None`` when it held, else what went wrong."""

    failures: dict[str, str] = field(default_factory=dict)
    saved_by: str | None = None
    """The torch version that wrote the artifact (from its sidecar)."""

    def as_record(self) -> dict[str, Any]:
        return {"saved_by": self.saved_by, **{aspect: self.failures.get(aspect) for aspect in ASPECTS}}


def _diff(stored: list[str], fresh: list[str], label: str, sidecar: Path) -> str | None:
    import difflib

    if stored == fresh:
        return None
    diff = difflib.unified_diff(
        stored, fresh, f"{sidecar} ({label}, stored)", f"{label}, fresh export", lineterm="", n=1
    )
    return "\n".join(list(diff)[:40])


def check(paths: ArtifactPaths, nodeid: str, fresh: Snapshot) -> Verdict:
    """Compare the stored artifact with a fresh export's snapshot and run the stored program.

    ``load``: the files exist, match their checksums, are safe to load, and ``torch.export.load`` takes the
    ``.pt2``; ``outputs``: the loaded program's ``.module()`` on the stored example inputs gives the stored
    outputs; ``graph`` and ``signature``: the fresh export's text equals the stored text.
    """
    verdict = Verdict()
    try:
        sidecar = read_sidecar(paths, nodeid)
    except GoldenArtifactError as exc:
        verdict.failures = {aspect: str(exc) for aspect in ASPECTS}
        return verdict
    verdict.saved_by = str(sidecar.get("torch_version"))
    for aspect, stored, now in (
        ("graph", sidecar["graph"], fresh.graph),
        ("signature", sidecar["signature"], fresh.signature),
    ):
        problem = _diff(stored, now, aspect, paths.sidecar)
        if problem is not None:
            verdict.failures[aspect] = problem
    try:
        program = _load(paths, sidecar["program"]["sha256"])
    except GoldenArtifactError as exc:
        verdict.failures["load"] = str(exc)
        verdict.failures["outputs"] = "not run: the program did not load"
        return verdict
    try:
        _compare_outputs(program, paths, sidecar["outputs"])
    except GoldenArtifactError as exc:
        verdict.failures["outputs"] = str(exc)
    except Exception as exc:  # torch's own error while comparing: still this artifact's failure, named
        verdict.failures["outputs"] = f"{paths.program}: comparing outputs: {first_line(exc)}"
    return verdict


def _load(paths: ArtifactPaths, sha256: str) -> ExportedProgram:
    import torch

    data = read_checked(paths.program, sha256)
    refuse_pickles(paths.program, data)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise GoldenArtifactError(f"{paths.program}: torch.export.load failed: {first_line(exc)}") from exc


def _compare_outputs(program: ExportedProgram, paths: ArtifactPaths, entry: Mapping[str, str]) -> None:
    import torch
    from torch.utils import _pytree as pytree

    data = read_checked(paths.outputs, entry["sha256"])
    try:
        stored = torch.load(io.BytesIO(data), weights_only=True)["leaves"]
    except Exception as exc:
        raise GoldenArtifactError(f"{paths.outputs}: not readable with weights_only=True: {first_line(exc)}") from exc
    if program.example_inputs is None:
        raise GoldenArtifactError(f"{paths.program}: the loaded program has no example inputs")
    args, kwargs = copy.deepcopy(program.example_inputs)
    try:
        outputs = program.module()(*args, **kwargs)
    except Exception as exc:
        raise GoldenArtifactError(
            f"{paths.program}: running .module() on the stored inputs: {first_line(exc)}"
        ) from exc
    leaves, spec = pytree.tree_flatten(outputs)
    if pytree.treespec_dumps(spec) != entry["treespec"]:
        raise GoldenArtifactError(f"{paths.program}: the output structure differs from {paths.sidecar}'s treespec")
    if len(leaves) != len(stored):
        raise GoldenArtifactError(f"{paths.program}: {len(leaves)} outputs, {paths.outputs} holds {len(stored)}")
    for index, (actual, expected) in enumerate(zip(leaves, stored, strict=True)):
        try:
            if isinstance(expected, torch.Tensor):
                torch.testing.assert_close(actual, expected, equal_nan=True)
            elif actual != expected:
                raise AssertionError(f"{actual!r} != {expected!r}")
        except AssertionError as exc:
            raise GoldenArtifactError(
                f"{paths.program}: output {index} differs from {paths.outputs}: {first_line(exc)}"
            ) from exc


def total_size(directory: Path) -> tuple[int, int]:
    """(files, bytes) of the stored artifacts in ``directory``: for the end-of-run line."""
    files = [p for p in directory.glob("*") if p.is_file() and p.name.endswith((".pt2", ".outputs.pt", ".json"))]
    return len(files), sum(p.stat().st_size for p in files)
