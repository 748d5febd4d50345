"""Results files: the record, the one writer, the one loader and the merge. Imports neither pytest nor torch.

Everything that reads or writes a results file goes through this module: the pytest recorder
(``harness/recording.py``), the report (``harness/report/``) and its ``--write-baseline``, the bench
(``tools/bench.py``) and the OpInfo probe (``tests/ops/probe_opinfo.py``).

A results file is JSON, version 2::

    {"format": "torch-export-harness-results", "version": 2, "run": "matrix", "wrappers": [...],
     "torch": "2.13.0", "harness": "0.1.0", "python": "3.11.7", "created": "2026-11-23T15:22:27.123+00:00",
     "shard": "1/4" | null, "exitstatus": 0, "args": [...],
     "selection": {"paths": ["tests/export"], "keyword": "dynamic" | null, "markexpr": "quick" | null,
                   "deselect": [...], "other": ["--lf"], "selected": 85, "key": "3f9a2c1b0d"} | null,
     "collection_errors": [{"node": ..., "cause": ...}],
     "tests": [{"test": "tests/export/a.py::test_x", "wrapper": "serdes_strict", "outcome": "failed",
                "stage": "deserialize", "cause": "KeyError: 'foo'", "duration": 0.12,
                "timings": [[0.05, 0.09], ...]}, ...]}

A record may also hold ``"bundle": "reports/repro/<test>__<wrapper>"``, the repro bundle of its failure
(``--repro-dir``); it is written only when there is one, and readers that predate it ignore it.
``timings`` holds, per program the wrapper transformed, the seconds of its first export and of the whole
wrapper call (``tools/bench.py`` turns them into each wrapper's cost over plain export). ``selection`` says
what the run selected; its ``key`` digests the paths, ``-k``, ``-m``, ``--deselect`` and the other
selection-changing options, not the shard and not the wrappers, so the shards of one run and the
per-wrapper sessions over the same tests share a key and an unrelated ``-k`` run does not. ``null`` means
unknown: a version-1 file (read as such) or a merge of several selections.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import EXPORT_STAGE as EXPORT_STAGE  # a stage records hold (re-exported)

FORMAT = "torch-export-harness-results"
VERSION = 2
"""The version this harness writes; it reads every version up to it (1: no selection, no python)."""

OUTCOMES = ("passed", "failed", "error", "crashed", "xfailed", "xpassed", "skipped")
"""Every outcome a record can have, in report order."""
BROKEN = frozenset({"failed", "error", "crashed"})
"""Outcomes that fail a run (a strict XPASS fails it too, but is recorded as ``xpassed``: a stale mark)."""

TEST_STAGE = "test"
"""The stage of a failure outside export and the wrapper: the test's own assertion on the program."""
CRASH_STAGE = "crash"
"""The stage of a test whose worker died under it."""
KEY_LENGTH = 10
"""Hex digits of the selection key (40 bits: no two selections of one project collide in practice)."""


class ResultsError(Exception):
    """A results file that is missing, unreadable or not a results file; the message starts with its path."""


@dataclass
class Record:
    """The outcome of one test under one wrapper."""

    test: str
    wrapper: str
    outcome: str = "passed"
    stage: str | None = None
    cause: str | None = None
    duration: float = 0.0
    timings: list[list[float]] = field(default_factory=list)
    """[first export, whole wrapper call] seconds per transformed program."""
    bundle: str | None = None
    """The repro bundle's folder, as the run named it (``reports/repro/<test>__<wrapper>``); ``None``: none.

    Optional in the file (written only when set, ignored by readers that predate it), so version 2 stands."""

    @property
    def key(self) -> tuple[str, str]:
        return self.test, self.wrapper

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "test": self.test,
            "wrapper": self.wrapper,
            "outcome": self.outcome,
            "stage": self.stage,
            "cause": self.cause,
            "duration": self.duration,
            "timings": [list(pair) for pair in self.timings],
        }
        if self.bundle is not None:
            document["bundle"] = self.bundle
        return document


@dataclass(frozen=True)
class RunSelection:
    """What a run selected. ``key`` digests everything but ``selected`` (the count it led to)."""

    paths: tuple[str, ...] = ()
    """The test path arguments (``tests/export``, ``a.py::test_x``), relative to the rootdir, sorted."""
    keyword: str | None = None
    markexpr: str | None = None
    deselect: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    """Any other option that changes which tests run, as on the command line (``--lf``, ``--ignore=x``)."""
    selected: int | None = None
    """How many tests (test x wrapper items) the run selected; ``None`` when not known."""

    @property
    def key(self) -> str:
        """A short digest of the selection, stable across runs, machines and Python versions."""
        criteria = [
            sorted(self.paths), self.keyword or "", self.markexpr or "", sorted(self.deselect), sorted(self.other)
        ]
        digest = hashlib.sha256(json.dumps(criteria, separators=(",", ":")).encode("utf-8")).hexdigest()
        return digest[:KEY_LENGTH]

    def describe(self) -> str:
        """As a command line would say it: ``tests/export -m quick -k 'dynamic and not slow'``."""
        parts = [shlex.quote(p) for p in self.paths] or ["(the configured test paths)"]
        if self.keyword:
            parts += ["-k", shlex.quote(self.keyword)]
        if self.markexpr:
            parts += ["-m", shlex.quote(self.markexpr)]
        parts += [f"--deselect {shlex.quote(d)}" for d in self.deselect]
        parts += [shlex.quote(o) for o in self.other]
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "paths": list(self.paths),
            "keyword": self.keyword,
            "markexpr": self.markexpr,
            "deselect": list(self.deselect),
            "other": list(self.other),
            "selected": self.selected,
            "key": self.key,
        }

    @classmethod
    def from_json(cls, value: Any, source: str) -> RunSelection:
        """Read a ``selection`` object; the key is recomputed (a stored key that disagrees is an error)."""
        if not isinstance(value, dict):
            raise ResultsError(f"{source}: \"selection\" is not an object or null: {value!r:.200}")

        def strings(name: str) -> tuple[str, ...]:
            items = value.get(name, [])
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ResultsError(f"{source}: selection.{name} is not a list of strings: {items!r:.200}")
            return tuple(items)

        def text(name: str) -> str | None:
            item = value.get(name)
            if item is not None and not isinstance(item, str):
                raise ResultsError(f"{source}: selection.{name} is not a string or null: {item!r:.200}")
            return item or None

        selected = value.get("selected")
        if selected is not None and (not isinstance(selected, int) or isinstance(selected, bool)):
            raise ResultsError(f"{source}: selection.selected is not a number of tests: {selected!r:.200}")
        selection = cls(
            strings("paths"), text("keyword"), text("markexpr"), strings("deselect"), strings("other"), selected
        )
        stored = value.get("key")
        if stored is not None and stored != selection.key:
            raise ResultsError(
                f"{source}: selection.key {stored!r} does not match its selection (key {selection.key!r}); "
                "the file was edited by hand or written by another tool"
            )
        return selection


@dataclass
class RunFile:
    """One results file: what the run was (the header) and its records."""

    run: str
    wrappers: list[str]
    records: list[Record] = field(default_factory=list)
    selection: RunSelection | None = None
    """``None``: unknown (a version-1 file, or a merge of several selections)."""
    shard: str | None = None
    """``"i/n"`` when the run was shard i of n."""
    exitstatus: int | None = None
    args: list[str] = field(default_factory=list)
    collection_errors: list[dict[str, str]] = field(default_factory=list)
    created: str = ""
    torch: str = "?"
    harness: str = "?"
    python: str = "?"
    merged_from: list[str] | None = None
    """The files a merged results file (``--write-baseline``) was made from."""
    version: int = VERSION
    path: str | None = None
    """Where it was loaded from (not stored in the file)."""

    @property
    def selection_key(self) -> str | None:
        return None if self.selection is None else self.selection.key

    @property
    def name(self) -> str:
        """The path it was loaded from, or ``<run>`` for one made in memory."""
        return self.path or f"<{self.run}>"

    @property
    def created_at(self) -> datetime:
        """``created`` as an aware datetime (UTC if it gives no zone); the oldest possible if unreadable."""
        try:
            moment = datetime.fromisoformat(self.created)
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "run": self.run,
            "wrappers": list(self.wrappers),
            "torch": self.torch,
            "harness": self.harness,
            "python": self.python,
            "created": self.created,
            "shard": self.shard,
            "exitstatus": self.exitstatus,
            "args": list(self.args),
            "selection": None if self.selection is None else self.selection.to_json(),
        }
        if self.merged_from is not None:
            document["merged_from"] = list(self.merged_from)
        document["collection_errors"] = list(self.collection_errors)
        document["tests"] = [record.to_json() for record in self.records]
        return document

    @classmethod
    def from_json(cls, document: Any, source: str) -> RunFile:
        """Check and read a parsed results document; every problem is a :class:`ResultsError` naming ``source``."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ResultsError(f"{source}: not a results file (no \"format\": \"{FORMAT}\")")
        version = document.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
            raise ResultsError(f"{source}: results format version {version!r}; this harness reads 1 to {VERSION}")
        tests = document.get("tests")
        if not isinstance(tests, list):
            raise ResultsError(f"{source}: \"tests\" is missing or not a list")
        records = [_record(entry, index, source) for index, entry in enumerate(tests)]
        raw_selection = document.get("selection")
        selection = None if raw_selection is None else RunSelection.from_json(raw_selection, source)
        exitstatus = document.get("exitstatus")
        merged_from = document.get("merged_from")
        for name in ("wrappers", "args", "collection_errors"):
            if not isinstance(document.get(name, []), list):
                raise ResultsError(f"{source}: \"{name}\" is not a list")
        return cls(
            run=str(document.get("run", "?")),
            wrappers=[str(w) for w in document.get("wrappers", [])],
            records=records,
            selection=selection,
            shard=document.get("shard") if isinstance(document.get("shard"), str) else None,
            exitstatus=exitstatus if isinstance(exitstatus, int) and not isinstance(exitstatus, bool) else None,
            args=[str(a) for a in document.get("args", [])],
            collection_errors=[
                {str(k): str(v) for k, v in e.items()} for e in document.get("collection_errors", [])
                if isinstance(e, dict)
            ],
            created=str(document.get("created", "")),
            torch=str(document.get("torch", "?")),
            harness=str(document.get("harness", "?")),
            python=str(document.get("python", "?")),
            merged_from=[str(p) for p in merged_from] if isinstance(merged_from, list) else None,
            version=version,
            path=source,
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _record(entry: Any, index: int, source: str) -> Record:
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("test"), str)
        and isinstance(entry.get("wrapper"), str)
        and entry.get("outcome") in OUTCOMES
    ):
        raise ResultsError(f"{source}: tests[{index}] is not a record with test, wrapper and a known outcome: "
                           f"{entry!r:.200}")
    timings = entry.get("timings", [])
    pairs = []
    for pair in timings if isinstance(timings, list) else [None]:
        numbers = [_number(v) for v in pair] if isinstance(pair, list) else []
        if len(numbers) != 2 or None in numbers:
            raise ResultsError(f"{source}: tests[{index}].timings holds {pair!r:.100}, not [first export, call] "
                               "seconds")
        pairs.append([float(n) for n in numbers if n is not None])
    stage, cause, bundle = entry.get("stage"), entry.get("cause"), entry.get("bundle")
    return Record(
        test=entry["test"],
        wrapper=entry["wrapper"],
        outcome=entry["outcome"],
        stage=stage if isinstance(stage, str) else None,
        cause=cause if isinstance(cause, str) else None,
        duration=_number(entry.get("duration")) or 0.0,
        timings=pairs,
        bundle=bundle if isinstance(bundle, str) else None,
    )


def load(path: Path) -> RunFile:
    """Read and check one results file (any version up to :data:`VERSION`; timings kept).

    Every problem is a :class:`ResultsError` whose message starts with the path.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{source}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{source}: cannot read: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON ({exc}); a corrupt or truncated results file") from exc
    return RunFile.from_json(document, source)


def write(path: Path, run: RunFile) -> None:
    """Write ``run`` to ``path`` atomically (a reader never sees half a file), as the current version."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(run.to_json(), indent=1) + "\n", encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def now() -> str:
    """The ``created`` stamp of a file written now (UTC, milliseconds: files of one second still order)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Merged:
    """The records of several results files, by (test, wrapper); where two files hold one, the newer wins."""

    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    files: list[RunFile] = field(default_factory=list)
    """Oldest first (the order they were applied in)."""
    collection_errors: list[dict[str, str]] = field(default_factory=list)
    superseded: int = 0
    """Records replaced by a newer file's record of the same test and wrapper."""

    @property
    def selections(self) -> dict[str | None, RunSelection | None]:
        """The selections merged, by key (``None``: unknown), in the order first seen."""
        return {f.selection_key: f.selection for f in self.files}


def merge(files: Iterable[RunFile]) -> Merged:
    """All records of ``files``; where two hold the same test and wrapper, the newer file (``created``) wins."""
    merged = Merged()
    for run in sorted(files, key=lambda f: (f.created_at, f.name)):
        merged.files.append(run)
        merged.collection_errors.extend({**e, "file": run.name} for e in run.collection_errors)
        for record in run.records:
            if record.key in merged.records:
                merged.superseded += 1
            merged.records[record.key] = record
    return merged


def merged_file(merged: Merged, wrappers: Sequence[str]) -> RunFile:
    """``merged`` as one results file (``run`` = ``merged``); its selection is the files' if they share one."""
    here = versions()
    torch = sorted({f.torch for f in merged.files})
    selections = merged.selections
    newest = max(merged.files, key=lambda f: f.created_at, default=None)
    return RunFile(
        run="merged",
        wrappers=list(wrappers),
        records=[record for _, record in sorted(merged.records.items())],
        selection=next(iter(selections.values())) if len(selections) == 1 else None,
        collection_errors=merged.collection_errors,
        created=newest.created if newest is not None else now(),
        torch=", ".join(torch) if torch else here["torch"],
        harness=here["harness"],
        python=here["python"],
        merged_from=[f.name for f in merged.files],
    )


def expand_inputs(inputs: Sequence[str | Path], exclude: Iterable[Path] = ()) -> list[Path]:
    """Files as given, directories as their ``*.json`` files (not hidden ones), minus ``exclude``."""
    excluded = {Path(p).resolve() for p in exclude}
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            paths.extend(p for p in sorted(path.glob("*.json")) if not p.name.startswith("."))
        else:
            paths.append(path)  # a missing file is reported by load(), naming it
    return [p for p in dict.fromkeys(paths) if p.resolve() not in excluded]


def versions() -> dict[str, str]:
    """The torch, harness and Python versions of this process (torch without importing it if possible)."""
    from harness import __version__

    torch = sys.modules.get("torch")
    torch_version = getattr(torch, "__version__", None)
    if torch_version is None:
        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = "not installed"
    return {"torch": str(torch_version), "harness": __version__, "python": platform.python_version()}


def file_name(run: str, selection: RunSelection, shard: tuple[int, int] | None) -> str:
    """The name of a run's file in a results directory: ``<run>-<selection key>[-shard-I-of-N].json``.

    Two runs share a name only when they are the same run (wrapper or matrix), selection and shard, so a
    rerun replaces its own earlier file and never another selection's or another shard's.
    """
    suffix = f"-shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return f"{run}-{selection.key}{suffix}.json"


def describe_file(run: RunFile) -> str:
    """One line about a file: ``results/x.json (matrix, shard 1/4, 935 of 935 selected, exit 0, created ...)``."""
    parts = [run.run]
    if run.shard:
        parts.append(f"shard {run.shard}")
    selected = run.selection.selected if run.selection else None
    parts.append(f"{len(run.records)} records" + (f" of {selected} selected" if selected is not None else ""))
    if run.exitstatus is not None:
        parts.append(f"exit {run.exitstatus}")
    if run.created:
        parts.append(f"created {run.created}")
    return f"{run.name} ({', '.join(parts)})"


def describe_selection(selection: RunSelection | None) -> str:
    """``3f9a2c1b0d: tests/export -m quick`` or ``unknown (a version-1 file or a merge)``."""
    if selection is None:
        return "unknown (a version-1 file, or a merge of several selections)"
    return f"{selection.key}: {selection.describe()}"
