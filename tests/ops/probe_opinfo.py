"""Regenerate ``tests/ops/opinfo_findings.py``: run the OpInfo sweep under every wrapper, group failures by cause.

Usage, from the repository root with the shared environment's python (2 hours 10 minutes for all 11 wrappers on 2
cores shared with other jobs, 2026-12-02; non_strict alone took 8 minutes, strict 24)::

    .nox/shared/bin/python -m tests.ops.probe_opinfo            # probe, print the table, write the findings module
    .nox/shared/bin/python -m tests.ops.probe_opinfo --dry-run  # probe and print only
    .nox/shared/bin/python -m tests.ops.probe_opinfo --from-raw /tmp/probe   # regroup saved raw results

For each wrapper it runs ``pytest tests/ops/test_opinfo.py -p tests.ops.probe_opinfo -n 0 --export-wrapper W``
(``--jobs`` of them at once, one pytest process each). Loaded with ``-p``, this module is a pytest plugin: it drops
the findings' ``xfail_under`` marks, so every case runs bare, and writes what a results file does not hold of each
failure (the exception's dotted type, its root cause's, three lines of message, and ``"Type: message"`` of every
exception in its chain) as JSON beside the run's results file (``--results``), which the main program reads through
``harness.results``. The main program then names each failure's cause with ``RULES`` (regular expressions over the
torch messages) and writes one ``Finding`` per (cause, stage, exception type, set of wrappers), with the rule's
``match`` regex, which the test turns into ``xfail_under(..., match=...)`` so a mark accepts only its own cause.
The table is not written unless every finding's ``match`` accepts every failure it covers. A failure that no rule
names gets a cause spelled from its own message, matched literally; read it and add a rule. Nothing here is tuned
per op.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import results
from harness.errors import EXPORT_STAGE, ExportWrapperError, chain
from harness.marks import SKIP, XFAIL
from harness.registry import available_wrappers

ROOT = Path(__file__).resolve().parents[2]
TEST_FILE = "tests/ops/test_opinfo.py"
FINDINGS_FILE = ROOT / "tests" / "ops" / "opinfo_findings.py"
OUT_ENV = "OPINFO_PROBE_OUT"
WRAPPER_ERROR = "harness.errors.ExportWrapperError"

WRAPPERS = tuple(available_wrappers())
AFTER_THE_WRAPPER = frozenset({results.TEST_STAGE, "setup", "teardown"})
"""Record stages of a failure that is not the wrapper's: told apart as compare or run by the exception type."""
STRICT_FIRST_EXPORT = frozenset(name for name, wrapper in available_wrappers().items() if "strict" in wrapper.tags)


# ---------------------------------------------------------------------------------------------------------------
# The plugin half: runs inside each pytest process.
# ---------------------------------------------------------------------------------------------------------------


def _dotted(exc_type: type[BaseException]) -> str:
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


CHAIN_CHARS = 4000
"""How much of each chained exception's ``"Type: message"`` the probe keeps (what ``match=`` is searched in)."""


def _first_lines(exc: BaseException, n: int = 3) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " | ".join(lines[:n])


class _Recorder:
    """The exception details of each failing call, by test id (outcomes and stages are in the results file)."""

    def __init__(self) -> None:
        self.errors: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            item.own_markers = [mark for mark in item.own_markers if mark.name not in (XFAIL, SKIP)]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
        yield
        if call.when == "call" and call.excinfo is not None:
            exc = call.excinfo.value
            wrapper_error = isinstance(exc, ExportWrapperError)
            root = exc.__cause__ if wrapper_error and exc.__cause__ is not None else exc
            self.errors[item.nodeid] = {
                "type": WRAPPER_ERROR if wrapper_error else _dotted(type(exc)),
                "root_type": _dotted(type(root)),
                "message": _first_lines(root),
                "chain": [f"{type(e).__name__}: {e}"[:CHAIN_CHARS] for e in chain(exc)],
            }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        Path(os.environ[OUT_ENV]).write_text(json.dumps(self.errors, indent=1, sort_keys=True))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(OUT_ENV):
        config.pluginmanager.register(_Recorder(), "opinfo-probe-recorder")


# ---------------------------------------------------------------------------------------------------------------
# The driver half: one pytest per wrapper, then the causes.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A named cause, found by ``pattern`` and marked with ``match``.

    ``pattern`` is searched in ``"<wrapper> <stage> <root exception type>: <message>"``, the message being every
    exception of the failure's chain with newlines written `` | ``. A ``(?P<detail>...)`` group in it is
    collected over every failure of the cause and replaces ``{details}`` in ``text`` (sorted, comma-separated)
    and in ``match`` (escaped, as alternatives). ``match`` becomes the expected failure's ``match=``: a regex
    the plugin searches in ``"<Type>: <message>"`` of the exception and of each one chained behind it.
    """

    name: str
    pattern: str
    text: str
    match: str


RULES: tuple[Rule, ...] = (
    Rule(
        "RETURN_TYPES_NOT_SERIALIZABLE",
        r"NotImplementedError: No registered serialization name for <class 'torch\.return_types\.",
        "no registered serialization name for the named-tuple outputs torch.return_types.* "
        "(max.dim, sort, topk, linalg.*...), NotImplementedError",
        r"NotImplementedError: No registered serialization name for <class 'torch\.return_types\.\w+'>",
    ),
    Rule(
        "DATA_DEPENDENT_OUTPUT",
        r"Data dependent operator \| Explanation: Operator `(?P<detail>aten\.\w+)",
        "dynamo refuses {details}, whose non-tensor output depends on tensor data (Unsupported)",
        r"Unsupported: Data dependent operator\s+Explanation: Operator `(?:{details})\.",
    ),
    Rule(
        "DATA_DEPENDENT_OUTPUT",
        r"DataDependentOutputException: (?P<detail>aten\.\w+)",
        "fake tensors cannot compute the data-dependent non-tensor output of {details} "
        "(DataDependentOutputException)",
        r"DataDependentOutputException: (?:{details})\.",
    ),
    Rule(
        "DYNAMIC_OUTPUT_SHAPE",
        r"Dynamic shape operator \(no meta kernel\) \| Explanation: Operator `(?P<detail>aten\.\w+)",
        "no meta kernel for the data-dependent output shape of {details} (Unsupported)",
        r"Unsupported: Dynamic shape operator \(no meta kernel\)\s+Explanation: Operator `(?:{details})\.",
    ),
    Rule(
        "DYNAMIC_OUTPUT_SHAPE",
        r"DynamicOutputShapeException: (?P<detail>aten\.\w+)",
        "no meta kernel for the data-dependent output shape of {details} (DynamicOutputShapeException)",
        r"DynamicOutputShapeException: (?:{details})\.",
    ),
    Rule(
        "DATA_DEPENDENT_GUARD",
        r"Could not guard on data-dependent expression (?P<detail>\S.*?) \(unhinted",
        "could not guard on the data-dependent expression {details}, a Python branch on tensor values "
        "(e.g. `if torch.any(var < 0)`)",
        r"Could not guard on data-dependent expression (?:{details}) \(unhinted",
    ),
    # Diagnosed by hand on torch 2.13.0 (nn.functional.one_hot without num_classes): the decomposition
    # (torch/_decomp/decompositions.py, one_hot) makes the output width max(input) + 1 a Python int.
    Rule(
        "DATA_DEPENDENT_SIZE",
        r"Could not extract specialized integer from data-dependent expression (?P<detail>\S+) \(unhinted"
        r".*in one_hot\)",
        "could not extract a specialized integer from the data-dependent expression {details}: one_hot's "
        "decomposition makes the output width max(input) + 1 a Python int when num_classes is not given",
        r"Could not extract specialized integer from data-dependent expression (?:{details}) \(unhinted"
        r"[\s\S]*\bin one_hot\)",
    ),
    Rule(
        "SKIPPED_BUILTIN",
        r"Dynamo does not know how to trace the builtin `(?P<detail>[^`]+?)\.?`",
        "dynamo does not trace the builtin {details} (Unsupported: function marked as skipped)",
        r"Dynamo does not know how to trace the builtin `(?:{details})\.?`",
    ),
    Rule(
        "RESIZE_UNSUPPORTED",
        r"Unsupported Tensor\.resize_\(\) call",
        "dynamo does not support tracing Tensor.resize_() (Unsupported)",
        r"Unsupported: Unsupported Tensor\.resize_\(\) call",
    ),
    # Diagnosed by hand on torch 2.13.0 (x.mT under strict_v2): the generated forward holds the line
    # `return self._dynamo_bytecode_unflatten((,), _fn_args)`, an empty tuple written `(,)`.
    Rule(
        "NEW_CAPTURE_INVALID_CODEGEN",
        r"SyntaxError: invalid syntax \(<eval_with_key>",
        "the new capture path (strict_v2) generates invalid Python, `_dynamo_bytecode_unflatten((,), ...)`, "
        "when forward returns a view property of its input (x.T, x.H, x.mT, x.mH): SyntaxError",
        r"SyntaxError: invalid syntax \(<eval_with_key>\.\d+, line \d+\)",
    ),
    # Diagnosed by hand on torch 2.13.0 (item under strict_v2; forward returning x.item() or x.item() + 1
    # fails alike, the legacy capture exports all three): process_outputs in torch/_dynamo/functional_export.py
    # runs forward again under proxy tensors (dynamo_bytecode_unflatten), and .item() of a tensor without data
    # raises.
    Rule(
        "NEW_CAPTURE_ITEM_REPLAYED",
        r"^strict_v2 export_strict .*The tensor has a non-zero number of elements, but its data is not allocated",
        "the new capture path (strict_v2) runs forward a second time on tensors without data to build its "
        "outputs (dynamo_bytecode_unflatten in functional_export.process_outputs), so a forward returning "
        "x.item() raises RuntimeError: The tensor has a non-zero number of elements, but its data is not "
        "allocated yet",
        r"RuntimeError: The tensor has a non-zero number of elements, but its data is not allocated yet\.",
    ),
    Rule(
        "NO_FAKE_TENSOR_KERNEL",
        r"UnsupportedOperatorException: (?P<detail>aten\.\w+)",
        "dynamo's fake-tensor pass has no kernel for {details} (Unsupported: operator does not support "
        "running with fake tensors)",
        r"UnsupportedOperatorException: (?:{details})\.",
    ),
    # Diagnosed by hand on torch 2.13.0 (_native_batch_norm_legit-grad under run_decomp_*): the decomposed
    # program calls _native_batch_norm_legit_functional, whose backward saves running_mean and running_var,
    # then copies the updated statistics into those inputs (USER_INPUT_MUTATION), bumping their version.
    Rule(
        "BACKWARD_SAVED_INPUT_OVERWRITTEN",
        r"backward on [^:]+: the program's raises 'RuntimeError: one of the variables needed for gradient "
        r"computation has been modified by an inplace operation",
        "the program's backward raises 'one of the variables needed for gradient computation has been "
        "modified by an inplace operation' where eager's works: the functional op it calls saves an input "
        "for backward (_native_batch_norm_legit_functional: running_mean, running_var) that the program "
        "then overwrites with its updated value (a train-mode nn.BatchNorm1d's decomposed program fails "
        "alike on its running-stat buffers)",
        r"AssertionError: backward on [^:]+: the program's raises 'RuntimeError: one of the variables needed "
        r"for gradient computation has been modified by an inplace operation",
    ),
    # Diagnosed by hand on torch 2.13.0 (norm.inf): the C++ ExportedProgram serializer writes the float
    # argument ord=-Infinity back as Infinity; the test names a non-finite constant the program lost.
    Rule(
        "CPP_NEGATIVE_INFINITY",
        r"^cpp_serdes compare .*the program lost the call's float argument -inf",
        "the C++ round trip writes a -Infinity float argument back as Infinity (seen: linalg_vector_norm "
        "ord=-inf), so ep.module() computes another function than eager",
        r"AssertionError: the program lost the call's float argument -inf: no node of its graph passes it "
        r"\(non-finite floats it passes: inf\)",
    ),
)

STAGE_TEXT = {
    "export_strict": "strict export (stage export)",
    "export_non_strict": "non-strict export (stage export)",
    "serialize": "serializer (stage serialize)",
    "deserialize": "deserializer (stage deserialize)",
    "cpp_roundtrip": "C++ serde round trip (stage cpp_roundtrip)",
    "retrace": "retrace of ep.module() (stage retrace)",
    "decompose": "run_decompositions (stage decompose)",
    "run": "calling ep.module() (after the wrapper)",
    "compare": "ep.module() vs eager (after the wrapper)",
}


@dataclass(frozen=True)
class Failure:
    case: str
    wrapper: str
    stage: str
    raises: str | None
    cause: str
    text: str
    detail: str | None
    match: str
    """The rule's ``match`` template (``{details}`` not yet filled in)."""
    chain: tuple[str, ...]
    """``"Type: message"`` of the exception and of each one chained behind it, as the plugin searches them."""


def _stage(wrapper: str, entry: dict[str, Any]) -> str:
    stage = entry.get("stage")
    if stage == EXPORT_STAGE:
        return "export_strict" if wrapper in STRICT_FIRST_EXPORT else "export_non_strict"
    if stage and stage not in AFTER_THE_WRAPPER:
        return str(stage)
    return "compare" if entry.get("type") == "builtins.AssertionError" else "run"


def _auto_cause(root_type: str, message: str) -> tuple[str, str, str]:
    """A cause for a message no rule names: its type and the gist of its first line, matched literally."""
    first = message.split(" | ")[0]
    gist = re.sub(r"\s+", " ", first)[:140]
    short = root_type.rsplit(".", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{short}_{gist[:40]}").strip("_").upper()
    return name, f"{short}: {gist}", re.escape(f"{short}: {first[:100]}").replace("{", "{{").replace("}", "}}")


def classify(wrapper: str, case: str, entry: dict[str, Any]) -> Failure:
    stage = _stage(wrapper, entry)
    root_type, message = entry.get("root_type", "?"), entry.get("message", entry.get("outcome", "?"))
    chain = tuple(entry.get("chain") or (f"{root_type.rsplit('.', 1)[-1]}: {message}",))
    full = " || ".join(" | ".join(line.strip() for line in link.splitlines() if line.strip()) for link in chain)
    subject = f"{wrapper} {stage} {root_type}: {full}"
    detail = None
    for rule in RULES:
        found = re.search(rule.pattern, subject)
        if found:
            name, text, match = rule.name, rule.text, rule.match
            detail = found.groupdict().get("detail")
            break
    else:
        name, text, match = _auto_cause(root_type, message)
    raises = entry.get("type")
    if raises is not None and not _importable(raises):
        raises = None
    return Failure(case, wrapper, stage, raises, name, text, detail, match, chain)


def fill_match(template: str, details: Iterable[str]) -> str:
    """``template`` with ``{details}`` replaced by the escaped details as alternatives (``{{``/``}}`` literal)."""
    alternatives = "|".join(re.escape(d) for d in sorted(details))
    return template.replace("{details}", alternatives).replace("{{", "{").replace("}}", "}")


def check_matches(found: Iterable[Failure], matches: dict[tuple[str, str], str]) -> list[str]:
    """Every failure whose finding's ``match`` would not accept it (a rule to fix before writing the table)."""
    problems = []
    for failure in found:
        pattern = matches[(failure.cause, failure.stage)]
        if not any(re.search(pattern, link) for link in failure.chain):
            problems.append(f"{failure.wrapper} {failure.case}: match {pattern!r} misses {failure.chain[0][:200]!r}")
    return problems


def _importable(dotted: str) -> bool:
    import importlib

    module, _, attr = dotted.rpartition(".")
    try:
        return isinstance(getattr(importlib.import_module(module), attr), type)
    except (ImportError, AttributeError):
        return False


def _raw_files(raw_dir: Path, wrapper: str) -> tuple[Path, Path]:
    """The run's results file (harness.results format) and this probe's exception details beside it."""
    return raw_dir / f"{wrapper}.json", raw_dir / f"{wrapper}.errors.json"


def read_raw(raw_dir: Path, wrapper: str) -> dict[str, dict[str, Any]]:
    """One entry per test id: the record's outcome (``passed`` unless it broke) and stage, and the details."""
    results_file, errors_file = _raw_files(raw_dir, wrapper)
    run = results.load(results_file)
    errors: dict[str, dict[str, Any]] = json.loads(errors_file.read_text()) if errors_file.exists() else {}
    return {
        record.test: {
            "outcome": record.outcome if record.outcome in results.BROKEN else "passed",
            "stage": record.stage,
            **errors.get(record.test, {}),
        }
        for record in run.records
    }


def run_wrapper(wrapper: str, raw_dir: Path) -> dict[str, Any]:
    results_file, errors_file = _raw_files(raw_dir, wrapper)
    env = {**os.environ, OUT_ENV: str(errors_file)}
    command = [sys.executable, "-m", "pytest", TEST_FILE, "-p", "tests.ops.probe_opinfo", "-n", "0", "-q"]
    command += ["-p", "no:cacheprovider", "--export-wrapper", wrapper, "--results", str(results_file)]
    print(f"== {wrapper}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    print("   " + (done.stdout.strip().splitlines() or ["(no output)"])[-1], file=sys.stderr, flush=True)
    return read_raw(raw_dir, wrapper)


def _case_id(nodeid: str) -> str:
    return nodeid.split("[", 1)[1].rsplit("]", 1)[0]


def failures(raw: dict[str, dict[str, Any]]) -> list[Failure]:
    found = []
    for wrapper in WRAPPERS:
        for nodeid, entry in sorted(raw.get(wrapper, {}).items()):
            if entry["outcome"] != "passed":
                found.append(classify(wrapper, _case_id(nodeid), entry))
    return found


def _constant(cause: str, stage: str, taken: dict[str, tuple[str, str]], key: tuple[str, str]) -> str:
    base = f"{cause}_{stage}".upper()
    name, n = base, 2
    while name in taken and taken[name] != key:
        name, n = f"{base}_{n}", n + 1
    taken[name] = key
    return name


def render(found: list[Failure], torch_version: str, counts: dict[str, int]) -> str:
    """The findings module: reason constants, then one Finding per (cause, stage, raises, wrappers)."""
    per_case: dict[tuple[str, str, str | None, str], set[str]] = defaultdict(set)
    texts: dict[tuple[str, str], str] = {}
    templates: dict[tuple[str, str], str] = {}
    details: dict[tuple[str, str], set[str]] = defaultdict(set)
    for failure in found:
        per_case[(failure.cause, failure.stage, failure.raises, failure.case)].add(failure.wrapper)
        texts[(failure.cause, failure.stage)] = failure.text
        templates[(failure.cause, failure.stage)] = failure.match
        if failure.detail:
            details[(failure.cause, failure.stage)].add(failure.detail)
    matches = {key: fill_match(template, details[key]) for key, template in templates.items()}
    problems = check_matches(found, matches)
    if problems:
        raise SystemExit("a finding's match= would not accept its own failures; fix RULES:\n" + "\n".join(problems))
    groups: dict[tuple[str, str, str | None, tuple[str, ...]], set[str]] = defaultdict(set)
    for (cause, stage, raises, case), wrappers in per_case.items():
        ordered = tuple(w for w in WRAPPERS if w in wrappers)
        groups[(cause, stage, raises, ordered)].add(case)
    version = torch_version.split("+")[0]
    taken: dict[str, tuple[str, str]] = {}
    constants = {key: _constant(*key, taken, key) for key in sorted(texts)}
    lines = [
        '"""Expected failures of the OpInfo sweep (tests/ops/test_opinfo.py), grouped by cause.',
        "",
        "GENERATED by `.nox/shared/bin/python -m tests.ops.probe_opinfo` (tests/ops/probe_opinfo.py), which runs",
        "every case under every wrapper with these marks removed and names each failure's cause. Do not edit by",
        "hand: refresh it for a new torch by rerunning the probe.",
        "",
        f"Probed on torch {torch_version}; failing cases per wrapper:",
        *(chunk.rstrip() for chunk in _chunks(", ".join(f"{w} {counts.get(w, 0)}" for w in WRAPPERS) + ".", 110)),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        f"TORCH_VERSION = {json.dumps(torch_version)}",
        "",
        "",
        "class Finding(NamedTuple):",
        '    """``cases`` fail under each of ``wrappers`` for ``reason``: raising ``raises`` (dotted type name), with',
        '    ``match`` (a regex) found in the message of the exception or of one chained behind it."""',
        "",
        "    reason: str",
        "    raises: str | None",
        "    wrappers: tuple[str, ...]",
        "    cases: frozenset[str]",
        "    match: str",
        "",
        "",
    ]
    for key, name in constants.items():
        cause, stage = key
        text = texts[key].replace("{details}", ", ".join(sorted(details[key])))
        reason = f"torch {version} {STAGE_TEXT.get(stage, stage)}: {text}"
        lines.append(f"{name} = (")
        lines += [f"    {json.dumps(chunk)}" for chunk in _chunks(reason, 100)]
        lines.append(")")
    lines += ["", "FINDINGS: tuple[Finding, ...] = ("]
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2] or "", tuple(WRAPPERS.index(w) for w in k[3])))
    for cause, stage, raises, wrappers in order:
        cases = sorted(groups[(cause, stage, raises, wrappers)])
        lines.append("    Finding(")
        lines.append(f"        {constants[(cause, stage)]},")
        lines.append(f"        {json.dumps(raises)},".replace("null", "None"))
        lines.append(f"        ({''.join(json.dumps(w) + ', ' for w in wrappers).rstrip()}),")
        lines.append("        frozenset({")
        lines += [f"            {json.dumps(case)}," for case in cases]
        lines.append("        }),")
        literal = _regex_literal(matches[(cause, stage)])
        lines += [f"        {piece}" for piece in literal[:-1]]
        lines.append(f"        {literal[-1]},")
        lines.append("    ),")
    lines.append(")")
    return "\n".join(lines) + "\n"


def _regex_literal(pattern: str, width: int = 100) -> list[str]:
    """``pattern`` as Python source, in pieces of at most about ``width`` characters (implicitly concatenated).

    Pieces end after a space where one is near, never inside an escape; raw strings where they can be (no
    quote, newline or trailing backslash), else escaped strings.
    """
    pieces, rest = [], pattern
    while len(rest) > width:
        cut = rest.rfind(" ", width // 2, width) + 1 or width
        while cut < len(rest) and rest[cut - 1] == "\\":
            cut += 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [
        f'r"{piece}"' if '"' not in piece and "\n" not in piece and not piece.endswith("\\") else json.dumps(piece)
        for piece in pieces
    ]


def _chunks(text: str, width: int) -> list[str]:
    """Split ``text`` at spaces into pieces of at most about ``width`` characters (for line length)."""
    pieces, current = [], ""
    for word in text.split(" "):
        if current and len(current) + len(word) + 1 > width:
            pieces.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*pieces, current]


def summary(found: list[Failure]) -> str:
    """cause (stage) -> number of tests -> wrappers, for the report."""
    table: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for failure in found:
        table[(failure.cause, failure.stage)][failure.wrapper].add(failure.case)
    rows = []
    for (cause, stage), per_wrapper in sorted(table.items()):
        counts = ", ".join(f"{w} {len(per_wrapper[w])}" for w in WRAPPERS if w in per_wrapper)
        rows.append(f"{cause} ({stage}): {counts}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wrappers", default=",".join(WRAPPERS), help="comma-separated wrappers to probe")
    parser.add_argument("--raw", type=Path, default=None, help="keep the raw JSON results in this folder")
    parser.add_argument("--from-raw", type=Path, default=None, help="regroup the raw JSON saved by --raw")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="wrappers probed at once")
    parser.add_argument("--dry-run", action="store_true", help="print the findings module instead of writing it")
    options = parser.parse_args(argv)
    import torch

    raw: dict[str, dict[str, Any]] = {}
    if options.from_raw is not None:
        for wrapper in WRAPPERS:
            if _raw_files(options.from_raw, wrapper)[0].exists():
                raw[wrapper] = read_raw(options.from_raw, wrapper)
    else:
        raw_dir = options.raw or Path(tempfile.mkdtemp(prefix="opinfo-probe-"))
        raw_dir.mkdir(parents=True, exist_ok=True)
        names = options.wrappers.split(",")
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            raw.update(zip(names, pool.map(lambda name: run_wrapper(name, raw_dir), names), strict=True))
    found = failures(raw)
    counts = {w: sum(1 for e in raw.get(w, {}).values() if e["outcome"] != "passed") for w in WRAPPERS}
    print(summary(found), file=sys.stderr)
    module = render(found, torch.__version__, counts)
    if options.dry_run:
        print(module)
    else:
        FINDINGS_FILE.write_text(module)
        print(f"wrote {FINDINGS_FILE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
