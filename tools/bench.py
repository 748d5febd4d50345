"""What the harness costs: overhead, per-wrapper cost, xdist scaling, start-up; a Markdown table and JSON.

    python tools/bench.py                                  # the defaults: -m quick over tests/export, 3 repeats
    python tools/bench.py --repeat 1 --select "-k test_add"  # a quick check of the tool

Four figures, all from the repository root with the shared environment already installed:

- **overhead**: the same selection with the plugin loaded but no wrapper selected (nothing is patched, torch's
  own export runs) against ``--export-wrapper non_strict`` (the pass-through wrapper: patch, rebinding, the
  program tally, the results file) with the golden-artifact checks switched off
  (``-p no:export-harness-golden``). tests/conftest.py refuses to run without the plugin, so "no wrapper" is
  the baseline; what differs is exactly what the harness does when it wraps. Ratio of median wall times, and
  the lowest and highest ratio of one repeat's pair, so the machine's noise is in the table too. The golden
  checks, which a ``non_strict`` run does on top, are timed as a figure of their own.
- **xdist**: the same selection under ``non_strict`` (golden checks off) with ``-n 0`` and ``-n 2``.
  These configurations alternate within each repeat, so a slow spell of a busy machine hits all of them, in an
  order rotated each repeat, after one warm-up run that is not counted.
- **per-wrapper cost**: one matrix run (``--export-wrapper all``, ``-n 2``) of the selection; each program's
  whole wrapper call over its first export, timed inside the process (the results file's ``timings``),
  median and p90 per wrapper.
- **first result**: from launching ``nox -s cpp_serdes -- -k dynamic`` (the built-in suite, a ``-k``
  selection of it) to the first test's result (a probe plugin, ``tools/bench_probe.py``, writes the time),
  with the shared environment already installed. Goal: 5 s on a 2-core machine.

Results files go to a temporary directory: a benchmark never overwrites results/.

With ``--pytorch-dir DIR`` (a PyTorch checkout's ``test/export``, with ``testing.py`` beside ``test_export.py``;
docs/pytorch-style-suites.md), a fifth figure, the **peer comparison**: for each of ``serdes_non_strict``,
``cpp_serdes`` and ``retrace_non_strict``, PyTorch's own variant file (only its generated classes for that
variant, harness plugin not loaded) against the harness on ``test_export.py`` (``--export-wrapper W
--pytorch-compat``) on the same tests, both ``-n 2``, paired and repeated, the order alternating each repeat.
It prints the time ratio (harness / PyTorch, goal <= 1.00), how many tests end the same way on both sides
(passed, failed, skipped, xfailed, xpassed, error; ids mapped back with the registry's ``pytorch_class_prefix``
and ``pytorch_suffix``), every test that does not, and the tests whose time differs most.
Without the option, or when the folder does not exist, it is skipped with one line saying so.

    python tools/bench.py --pytorch-dir ~/pytorch/test/export --peer-only --repeat 2 --keep /tmp/peer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import golden, results, wrappers  # noqa: E402  (needs ROOT on sys.path)
from tools import bench_probe  # noqa: E402

SUITE = "tests/export"
STARTUP_SESSION = ("cpp_serdes", "-k", "dynamic")
"""The first-result figure's command: a wrapper session over the whole built-in suite, narrowed by ``-k``."""
STARTUP_COMMAND = f"nox -s {STARTUP_SESSION[0]} -- {' '.join(STARTUP_SESSION[1:])}"
STARTUP_GOAL = 5.0
OUT = ROOT / "reports" / "bench.json"
GOAL = 1.03
NO_GOLDEN = ("-p", f"no:{golden.PLUGIN_NAME}")
BASELINE = "no wrapper, -n 0"
WRAPPED = "non_strict, -n 0"
GOLDEN = "non_strict + golden checks, -n 0"
PARALLEL = "non_strict, -n 2"
CONFIGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    BASELINE: ((), None),
    WRAPPED: (NO_GOLDEN, "non_strict"),
    GOLDEN: ((), "non_strict"),
    PARALLEL: (("-n", "2", *NO_GOLDEN), "non_strict"),
}
"""Each configuration's extra pytest arguments and wrapper (``None``: plugin loaded, nothing selected)."""


@dataclass(frozen=True)
class Run:
    config: str
    repeat: int
    seconds: float
    cpu_seconds: float
    """User + system time of the pytest process and its children (xdist workers)."""
    exit_code: int


def _env(wrapper: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXPORT_WRAPPER", "EXPORT_SHARD")}
    if wrapper is not None:
        env["EXPORT_WRAPPER"] = wrapper
    return {**env, **extra}


def run_pytest(python: str, args: Sequence[str], wrapper: str | None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the process and its children) and exit code of one pytest run."""
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=_env(wrapper), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def run_config(python: str, selection: Sequence[str], config: str, scratch: Path) -> tuple[float, float, int]:
    """One run of ``selection`` in the configuration ``config`` (see :data:`CONFIGS`); results go to ``scratch``."""
    extra, wrapper = CONFIGS[config]
    results = ["--results", str(scratch / "run.json")] if wrapper else []
    return run_pytest(python, [*selection, *extra, *results], wrapper)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation (statistics' 'inclusive' method)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def wrapper_costs(run: results.RunFile) -> dict[str, dict[str, float]]:
    """Per wrapper, from a results file (read by ``harness.results.load``): programs timed; whole call / first
    export, median and p90; and the median milliseconds the wrapper spends after its first export (its own
    stages, and under a plain wrapper only the harness's bookkeeping around the call)."""
    timings: dict[str, list[tuple[float, float]]] = {w: [] for w in run.wrappers}
    for record in run.records:
        timings.setdefault(record.wrapper, []).extend((first, whole) for first, whole in record.timings if first > 0)
    costs = {}
    for w, pairs in timings.items():
        if not pairs:
            continue
        ratios = [whole / first for first, whole in pairs]
        costs[w] = {
            "programs": len(pairs), "median": statistics.median(ratios), "p90": quantile(ratios, 0.9),
            "after_ms": statistics.median((whole - first) * 1000 for first, whole in pairs),
        }
    return costs


def startup(python: str, selection_dir: Path) -> tuple[float, int]:
    """Seconds from launching ``nox -s cpp_serdes -- -k dynamic`` to its first test result."""
    probe = selection_dir / f"first-test-{time.monotonic_ns()}"
    results = selection_dir / "startup-results.json"
    command = [
        python, "-m", "nox", "-s", STARTUP_SESSION[0], "--",
        *STARTUP_SESSION[1:], "-p", "tools.bench_probe", "-p", "no:cacheprovider", "--results", str(results),
    ]
    start = time.time()
    done = subprocess.run(
        command, cwd=ROOT, env=_env(None, **{bench_probe.ENV_VAR: str(probe)}), capture_output=True, check=False
    )
    if not probe.exists():
        return float("nan"), done.returncode
    return float(probe.read_text()) - start, done.returncode


def run_order(repeat: int) -> list[str]:
    """The configurations of one repeat, rotated by one each repeat so that none always runs first.

    On this machine a run's place in the sequence moved its time by more than the harness does (the first
    run after a pause was up to 30 % slower), so each configuration takes every place equally often over
    ``len(CONFIGS)`` repeats.
    """
    configs = list(CONFIGS)
    shift = repeat % len(configs)
    return configs[shift:] + configs[:shift]


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians per configuration and the ratios the table quotes, from the runs of every repeat.

    A ratio of medians is the headline; the lowest and highest ratio of the pairs run in the same repeat
    show how much of it the machine's noise could move.
    """

    def median(config: str, attr: str = "seconds") -> float:
        return statistics.median(float(getattr(r, attr)) for r in runs if r.config == config)

    def paired(numerator: str, denominator: str) -> list[float]:
        by_repeat = {(r.config, r.repeat): r.seconds for r in runs}
        repeats = sorted({r.repeat for r in runs})
        return [by_repeat[numerator, i] / by_repeat[denominator, i] for i in repeats]

    configs = list(dict.fromkeys(r.config for r in runs))
    pairs = paired(WRAPPED, BASELINE)
    return {
        "medians": {c: median(c) for c in configs},
        "cpu_medians": {c: median(c, "cpu_seconds") for c in configs},
        "overhead": median(WRAPPED) / median(BASELINE),
        "overhead_range": [min(pairs), max(pairs)],
        "overhead_cpu": median(WRAPPED, "cpu_seconds") / median(BASELINE, "cpu_seconds"),
        "golden_checks_seconds": median(GOLDEN) - median(WRAPPED),
        "xdist_speedup": median(WRAPPED) / median(PARALLEL),
        "failed_runs": [asdict(r) for r in runs if r.exit_code != 0],
    }


# --- the peer comparison: PyTorch's own variant files against the harness on test_export.py -------------------

PEER_SUITE = "test_export.py"
PEER_GOAL = 1.00
PEER_VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "serdes_non_strict": ("test_serdes.py", "SerDesExportNonStrict", ("TestExport", "TestDynamismExpression")),
    "cpp_serdes": ("test_cpp_serdes.py", "CppSerdes", ("TestExport",)),
    "retrace_non_strict": (
        "test_retraceability.py", "RetraceExportNonStrict", ("TestExport", "TestDynamismExpression")
    ),
}
"""Per wrapper: PyTorch's file that runs test_export.py's classes under the equivalent variant, the prefix that
file gives their classes (to select them; the comparison checks it against the registry's
``pytorch_class_prefix``), and the classes compared (test_cpp_serdes.py makes no TestDynamismExpression variant)."""
PEER_SIDES = ("pytorch", "harness")


@dataclass(frozen=True)
class DeliberateDifference:
    """A documented reason a test ends differently in PyTorch's variant file and under the harness
    (docs/pytorch-style-suites.md, "Deliberate differences"), recognised by outcomes and failure messages."""

    name: str
    wrappers: tuple[str, ...]
    pytorch: str
    harness: str
    failing_side: str
    message: str
    """A substring of the failing side's junit failure message."""

    def explains(self, wrapper: str, outcomes: Mapping[str, str], messages: Mapping[str, str]) -> bool:
        return (
            wrapper in self.wrappers
            and (outcomes["pytorch"], outcomes["harness"]) == (self.pytorch, self.harness)
            and self.message in messages.get(self.failing_side, "")
        )


DELIBERATE_DIFFERENCES = (
    DeliberateDifference(
        "torch's malformed log record (PyTorch's file fails at load under pytest's log capture; the harness "
        "completes the record)",
        ("serdes_non_strict", "cpp_serdes"), "failed", "passed", "pytorch", "not enough arguments for format string",
    ),
    DeliberateDifference(
        "no silent fallback (PyTorch's C++ round-trip mock returns the program it could not serialize)",
        ("cpp_serdes",), "passed", "failed", "harness", "[cpp_serdes: serialize]",
    ),
)
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def _builtin(wrapper: str) -> wrappers.Wrapper:
    return next(w for w in wrappers.BUILTIN_WRAPPERS if w.name == wrapper)


def peer_prefix(wrapper: str) -> str:
    """The class prefix PyTorch's variant file puts before test_export.py's class names for ``wrapper``."""
    return _builtin(wrapper).pytorch_class_prefix or ""


def peer_suffix(wrapper: str) -> str:
    """The suffix PyTorch's variant file puts after each test method's name for ``wrapper``."""
    return _builtin(wrapper).pytorch_suffix or ""


def peer_commands(wrapper: str, junit: Path, results_file: Path, select: str = "") -> dict[str, list[str]]:
    """The pytest arguments of each side, run from the PyTorch folder: the same tests, both under ``-n 2``.

    The classes are selected by node id (exactly those classes: ``-k TestExport`` would also take
    TestExportCustomClass). PyTorch's side runs without the harness plugin, as PyTorch runs it. Both sides run
    without pytest's log capture (``-p no:logging``): torch 2.13.0 logs a record with a malformed format string
    inside ``torch.export.load``, which log capture turns into a ``TypeError`` in the test; the harness completes
    that record, PyTorch's file cannot, so with capture on the comparison would count pytest's machinery, not
    the programs (docs/pytorch-style-suites.md, "Deliberate differences").
    """
    variant_file, prefix, classes = PEER_VARIANTS[wrapper]
    common = ["-p", "no:cacheprovider", "-q", "-n", "2", *shlex.split(select), "-p", "no:logging"]
    return {
        "pytorch": [
            *(f"{variant_file}::{prefix}{cls}" for cls in classes),
            *common, "-p", "no:export_harness", "--junitxml", str(junit.with_suffix(".pytorch.xml")),
        ],
        "harness": [
            *(f"{PEER_SUITE}::{cls}" for cls in classes),
            *common, "--export-wrapper", wrapper, "--pytorch-compat",
            "--results", str(results_file), "--junitxml", str(junit.with_suffix(".harness.xml")),
        ],
    }


def _junit_cases(xml_text: str) -> Iterator[tuple[tuple[str, str], Any, dict[str, Any]]]:
    """Each test case of a pytest junit XML report: (class name, test name), the element, its children by tag."""
    for case in ET.fromstring(xml_text).iter("testcase"):
        yield (case.get("classname", "").rsplit(".", 1)[-1], case.get("name", "")), case, {c.tag: c for c in case}


def junit_outcomes(xml_text: str) -> dict[tuple[str, str], tuple[str, float]]:
    """(class name, test name) -> (outcome, seconds) from a pytest junit XML report.

    A unittest expected failure is a skip of type ``pytest.xfail``; an unexpected success a failure whose
    message says so (pytest reports unittest's as "Unexpected success", a strict xfail as "[XPASS(strict)]").
    A test with both a failure and an error (a teardown error after a failure) counts as failed.
    """
    outcomes = {}
    for key, case, kinds in _junit_cases(xml_text):
        if "failure" in kinds:
            message = kinds["failure"].get("message", "")
            outcome = "xpassed" if "Unexpected success" in message or "XPASS" in message else "failed"
        elif "error" in kinds:
            outcome = "error"
        elif "skipped" in kinds:
            outcome = "xfailed" if kinds["skipped"].get("type") == "pytest.xfail" else "skipped"
        else:
            outcome = "passed"
        outcomes[key] = (outcome, float(case.get("time") or 0.0))
    return outcomes


def junit_messages(xml_text: str) -> dict[tuple[str, str], str]:
    """(class name, test name) -> the message of the test's failure (else its error), for tests that have one."""
    return {
        key: failed.get("message", "")
        for key, _, kinds in _junit_cases(xml_text)
        if (failed := kinds.get("failure", kinds.get("error"))) is not None
    }


def explain_differences(
    wrapper: str, differences: Sequence[Mapping[str, str]], messages: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """Which differences a documented deliberate one explains (by name), and which none does."""
    explained: dict[str, list[str]] = {}
    unexplained = []
    for difference in differences:
        test = difference["test"]
        reason = next((d.name for d in DELIBERATE_DIFFERENCES if d.explains(
            wrapper, difference, {side: messages[side].get(test, "") for side in PEER_SIDES})), None)
        if reason is None:
            unexplained.append(test)
        else:
            explained.setdefault(reason, []).append(test)
    return {"deliberate": explained, "unexplained": unexplained}


def map_peer_id(classname: str, name: str, prefix: str, suffix: str, classes: Collection[str]) -> str | None:
    """``Class::test`` as test_export.py names it, for a test of PyTorch's variant file, or ``None`` if the
    class is none of ``classes`` behind ``prefix`` (or behind any prefix, when the registry's does not match:
    the comparison reports the prefix it saw)."""
    base = classname[len(prefix):] if prefix and classname.startswith(prefix) else None
    if base is None or base not in classes:
        base = next((c for c in sorted(classes, key=len, reverse=True) if classname.endswith(c)), None)
    if base is None:
        return None
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    return f"{base}::{name}"


def peer_prefixes_seen(pytorch: Mapping[tuple[str, str], Any], classes: Iterable[str]) -> list[str]:
    """The class prefixes the variant file's report actually used before the compared classes."""
    seen = set()
    for classname, _ in pytorch:
        for cls in sorted(classes, key=len, reverse=True):
            if classname.endswith(cls) and classname != cls:
                seen.add(classname[: -len(cls)])
                break
    return sorted(seen)


def agreement(
    pytorch: Mapping[str, tuple[str, float]], harness: Mapping[str, tuple[str, float]]
) -> dict[str, Any]:
    """How many of the tests both sides ran end the same way; every one that does not, and the tests only
    one side ran."""
    both = sorted(set(pytorch) & set(harness))
    differences = [
        {"test": t, "pytorch": pytorch[t][0], "harness": harness[t][0]}
        for t in both if pytorch[t][0] != harness[t][0]
    ]
    return {
        "tests": len(both),
        "matches": len(both) - len(differences),
        "agreement": (len(both) - len(differences)) / len(both) if both else float("nan"),
        "differences": differences,
        "only_pytorch": sorted(set(pytorch) - set(harness)),
        "only_harness": sorted(set(harness) - set(pytorch)),
        "outcomes": {
            side: {o: n for o in OUTCOMES if (n := sum(1 for t in both if tests[t][0] == o))}
            for side, tests in (("pytorch", pytorch), ("harness", harness))
        },
    }


def slowest_differences(
    pytorch: Mapping[str, tuple[str, float]], harness: Mapping[str, tuple[str, float]], top: int = 10
) -> list[dict[str, Any]]:
    """The tests whose time (junit, setup to teardown) the harness adds most to, largest first."""
    both = set(pytorch) & set(harness)
    extra = sorted(both, key=lambda t: harness[t][1] - pytorch[t][1], reverse=True)[:top]
    return [
        {"test": t, "pytorch": pytorch[t][1], "harness": harness[t][1], "extra": harness[t][1] - pytorch[t][1]}
        for t in extra
    ]


def peer_order(repeat: int) -> tuple[str, ...]:
    """Which side runs first in a repeat: PyTorch's in even repeats, the harness's in odd ones."""
    return PEER_SIDES if repeat % 2 == 0 else PEER_SIDES[::-1]


def peer_ratio(walls: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Harness / PyTorch: the ratio of median wall times, and the lowest and highest of one repeat's pair."""
    pairs = [h / p for p, h in zip(walls["pytorch"], walls["harness"], strict=True)]
    return {
        "median_seconds": {side: statistics.median(walls[side]) for side in PEER_SIDES},
        "ratio": statistics.median(walls["harness"]) / statistics.median(walls["pytorch"]),
        "ratio_range": [min(pairs), max(pairs)],
    }


def _start(python: str, args: Sequence[str], cwd: Path, out: Path) -> tuple[subprocess.Popen[bytes], float]:
    with out.open("wb") as sink:
        process = subprocess.Popen([python, "-m", "pytest", *args], cwd=cwd, env=_env(None), stdout=sink,
                                   stderr=subprocess.STDOUT)
    return process, time.perf_counter()


def _finished(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it (so that :func:`_finish` gets its resource usage)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _finish(process: subprocess.Popen[bytes], start: float) -> tuple[float, float, int]:
    """Wall and CPU seconds (the process and the xdist workers it waited for) and exit code."""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, process.returncode


def peer_run(
    python: str, pytorch_dir: Path, wrapper: str, repeat: int, scratch: Path, select: str = "",
    together: bool = False,
) -> dict[str, dict[str, Any]]:
    """One repeat of both sides, in this repeat's order (or, ``together``, both at once, so that a busy machine's
    slow spells hit both): wall and CPU seconds, exit code and junit report."""
    junit = scratch / f"{wrapper}-{repeat}.xml"
    commands = peer_commands(wrapper, junit, scratch / f"{wrapper}-{repeat}.results.json", select)
    logs = {side: junit.with_suffix(f".{side}.log") for side in PEER_SIDES}
    timed: dict[str, tuple[float, float, int]] = {}
    if together:
        started = {side: _start(python, commands[side], pytorch_dir, logs[side]) for side in peer_order(repeat)}
        while len(timed) < len(started):  # poll, so that each side's wall ends when it does
            for side, (process, start) in started.items():
                if side not in timed and _finished(process):
                    timed[side] = _finish(process, start)
            time.sleep(0.2)
    else:
        for side in peer_order(repeat):
            timed[side] = _finish(*_start(python, commands[side], pytorch_dir, logs[side]))
    sides = {}
    for side in peer_order(repeat):
        wall, cpu, code = timed[side]
        tail = logs[side].read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        print(f"[{repeat + 1}] {wrapper}, {side}: {wall:.1f} s, cpu {cpu:.1f} s (exit {code}) {tail[0]}", flush=True)
        report = junit.with_suffix(f".{side}.xml")
        sides[side] = {
            "wall": wall, "cpu": cpu, "exit_code": code,
            "report": report.read_text() if report.exists() else "<testsuites/>",
        }
    return sides


def peer_summary(wrapper: str, repeats: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The time ratio over every repeat, and the outcomes of the last repeat compared test by test."""
    _, _, classes = PEER_VARIANTS[wrapper]
    every = {side: [junit_outcomes(r[side]["report"]) for r in repeats] for side in PEER_SIDES}
    raw = {side: every[side][-1] for side in PEER_SIDES}
    prefix, suffix = peer_prefix(wrapper), peer_suffix(wrapper)

    def by_test(side: str, table: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
        """``table`` keyed by test_export.py's ``Class::test`` (PyTorch's variant ids mapped back)."""
        if side == "harness":
            return {f"{cls}::{name}": value for (cls, name), value in table.items() if cls in classes}
        return {
            key: value for (cls, name), value in table.items()
            if (key := map_peer_id(cls, name, prefix, suffix, classes)) is not None
        }

    pytorch, harness = (by_test(side, raw[side]) for side in PEER_SIDES)
    messages = {side: by_test(side, junit_messages(repeats[-1][side]["report"])) for side in PEER_SIDES}
    walls = {side: [r[side]["wall"] for r in repeats] for side in PEER_SIDES}
    compared = agreement(pytorch, harness)
    explained = explain_differences(wrapper, compared["differences"], messages)
    deliberate = sum(len(tests) for tests in explained["deliberate"].values())
    return {
        "wrapper": wrapper,
        "variant_file": PEER_VARIANTS[wrapper][0],
        "classes": list(classes),
        "registry_prefix": prefix,
        "prefixes_seen": peer_prefixes_seen(raw["pytorch"], classes),
        "walls": walls,
        "cpu": {side: [r[side]["cpu"] for r in repeats] for side in PEER_SIDES},
        "exit_codes": {side: [r[side]["exit_code"] for r in repeats] for side in PEER_SIDES},
        **peer_ratio(walls),
        "cpu_ratio": peer_ratio({side: [r[side]["cpu"] for r in repeats] for side in PEER_SIDES})["ratio"],
        **compared,
        **explained,
        "agreement_outside_deliberate": (
            compared["matches"] / (compared["tests"] - deliberate) if compared["tests"] > deliberate else float("nan")
        ),
        "test_seconds": {side: sum(tests[t][1] for t in set(pytorch) & set(harness)) for side, tests in (
            ("pytorch", pytorch), ("harness", harness))},
        "slowest_differences": slowest_differences(pytorch, harness),
        "unstable": {side: unstable(every[side]) for side in PEER_SIDES},
    }


def peer_comparison(
    python: str, pytorch_dir: Path, wrappers_: Sequence[str], repeat: int, scratch: Path, select: str = "",
    together: bool = False,
) -> list[dict[str, Any]]:
    """Every wrapper's pair once per repeat (so a slow spell of a busy machine spreads over all of them), the
    sides' order alternating each repeat; then each wrapper's summary."""
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {w: [] for w in wrappers_}
    for i in range(repeat):
        for wrapper in wrappers_:
            runs[wrapper].append(peer_run(python, pytorch_dir, wrapper, i, scratch, select, together))
    return [peer_summary(w, runs[w]) for w in wrappers_]


def unstable(repeats: Sequence[Mapping[tuple[str, str], tuple[str, float]]]) -> list[str]:
    """The tests one side ended differently in different repeats (the comparison uses the last repeat)."""
    tests = set().union(*repeats) if repeats else set()
    return sorted(
        f"{cls}::{name}" for cls, name in tests if len({r[cls, name][0] for r in repeats if (cls, name) in r}) > 1
    )


def peer_skip_reason(pytorch_dir: Path | None) -> str | None:
    """Why the peer comparison does not run, or ``None`` when it does."""
    if pytorch_dir is None:
        return "peer comparison skipped: no --pytorch-dir given (a PyTorch checkout's test/export)"
    if not (pytorch_dir / PEER_SUITE).is_file():
        return f"peer comparison skipped: {pytorch_dir / PEER_SUITE} does not exist"
    return None


def peer_table(peers: Sequence[Mapping[str, Any]], goal: float = PEER_GOAL) -> list[str]:
    """The Markdown table of the peer comparison, and every test that ends differently."""
    rows = [
        "| wrapper (PyTorch's file) | tests | same outcome | median wall, PyTorch / harness "
        "| harness / PyTorch | one repeat's pair | cpu, harness / PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        low, high = peer["ratio_range"]
        ok = "within" if peer["ratio"] <= goal else "over"
        medians = peer["median_seconds"]
        rows.append(
            f"| `{peer['wrapper']}` ({peer['variant_file']}) | {peer['tests']} | {peer['matches']} "
            f"({100 * peer['agreement']:.1f} %) | {medians['pytorch']:.1f} s / {medians['harness']:.1f} s "
            f"| **{peer['ratio']:.3f}** ({ok} the goal {goal:.2f}) | {low:.3f} to {high:.3f} "
            f"| {peer.get('cpu_ratio', float('nan')):.3f} |"
        )
    for peer in peers:
        seconds = peer.get("test_seconds")
        if seconds and seconds["pytorch"]:
            rows.append(f"\n{peer['wrapper']}: per-test seconds (junit, setup to teardown) summed over the "
                        f"{peer['tests']} tests: PyTorch {seconds['pytorch']:.1f} s, "
                        f"harness {seconds['harness']:.1f} s ({seconds['harness'] / seconds['pytorch']:.2f})")
        if peer["prefixes_seen"] and peer["registry_prefix"] not in peer["prefixes_seen"]:
            rows.append(f"\n{peer['wrapper']}: PyTorch's file names its classes {peer['prefixes_seen']}, "
                        f"the registry's pytorch_class_prefix is {peer['registry_prefix']!r}")
        for key in ("only_pytorch", "only_harness"):
            if peer[key]:
                rows.append(f"\n{peer['wrapper']}: {len(peer[key])} test(s) {key.replace('_', ' ')}")
        if peer["differences"]:
            rows += ["", f"{peer['wrapper']}: tests that end differently (PyTorch / harness)"]
            reasons = {t: why for why, tests in peer.get("deliberate", {}).items() for t in tests}
            rows += [
                f"- `{d['test']}`: {d['pytorch']} / {d['harness']}"
                + (f" (deliberate: {reasons[d['test']]})" if d["test"] in reasons else " (NOT a documented difference)")
                for d in peer["differences"]
            ]
        if "unexplained" in peer:
            deliberate = sum(len(tests) for tests in peer["deliberate"].values())
            rows.append(
                f"\n{peer['wrapper']}: {deliberate} difference(s) documented as deliberate, "
                f"{len(peer['unexplained'])} not; the other {peer['tests'] - deliberate} tests agree "
                f"{100 * peer['agreement_outside_deliberate']:.1f} %"
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--select", default="-m quick", help="pytest selection over tests/export (default: -m quick)")
    parser.add_argument(
        "--repeat", type=int, default=len(CONFIGS),
        help=f"runs per configuration (median reported; default {len(CONFIGS)}, one full rotation of the order)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON output (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--python", default=sys.executable, help="the shared environment's python")
    parser.add_argument(
        "--pytorch-dir", type=Path, default=None,
        help="a PyTorch checkout's test/export (testing.py beside test_export.py): also compare the harness with "
             "PyTorch's own variant files there (skipped, with one line, without it or when it does not exist)",
    )
    parser.add_argument("--peer-only", action="store_true", help="only the peer comparison (needs --pytorch-dir)")
    parser.add_argument(
        "--first-result-only", action="store_true",
        help=f"only the first-result figure ({STARTUP_COMMAND}), --repeat times",
    )
    parser.add_argument(
        "--peer-wrappers", nargs="+", default=list(PEER_VARIANTS), choices=list(PEER_VARIANTS),
        help="the wrappers of the peer comparison (default: all three)",
    )
    parser.add_argument(
        "--peer-select", default="", help="extra pytest selection for both sides, e.g. \"-k test_basic\" (quick check)"
    )
    parser.add_argument(
        "--peer-together", action="store_true",
        help="run PyTorch's side and the harness's at the same time (a busy shared machine: both see the same load; "
             "the CPU ratio is then the steadier figure)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs' junit and results files here")
    args = parser.parse_args(argv)
    if args.first_result_only:
        return first_result_only(args)
    skip = peer_skip_reason(args.pytorch_dir)
    if args.peer_only:
        if skip:
            print(skip)
            return 1
        document: dict[str, Any] = {"machine": machine(), "repeat": args.repeat}
        code = 0
    else:
        document = figures(args)
        code = 0 if not document["failed_runs"] and document["matrix_exit_code"] == 0 else 1
    if skip:
        print(skip)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
            scratch = args.keep or Path(tmp)
            scratch.mkdir(parents=True, exist_ok=True)
            document["peer"] = peer_comparison(
                args.python, args.pytorch_dir.resolve(), args.peer_wrappers, args.repeat, scratch, args.peer_select,
                args.peer_together,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    if "medians" in document:
        print("\n".join(table(document)))
    if "peer" in document:
        print("\n".join(["", *peer_table(document["peer"])]))
    if code:
        print(f"bench: {len(document['failed_runs'])} timed run(s) and the matrix run (exit "
              f"{document['matrix_exit_code']}) must all pass; their figures time failing tests", file=sys.stderr)
    return code


def first_result_only(args: argparse.Namespace) -> int:
    """The first-result figure alone: ``--repeat`` launches, each printed, then the median against the goal."""
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        for repeat in range(args.repeat):
            took, code = startup(args.python, Path(tmp))
            print(f"[{repeat + 1}/{args.repeat}] first result: {took:.1f} s (exit {code})", flush=True)
            seconds.append(took)
    median = statistics.median(seconds)
    print(f"first result, `{STARTUP_COMMAND}`: median {median:.1f} s "
          f"(goal {STARTUP_GOAL:.0f} s; {', '.join(f'{s:.1f}' for s in seconds)})")
    return 0 if median <= STARTUP_GOAL else 1


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def figures(args: argparse.Namespace) -> dict[str, Any]:
    """Overhead, xdist, start-up and per-wrapper cost: the four figures over the built-in suite."""
    selection = [SUITE, *shlex.split(args.select)]
    runs: list[Run] = []
    startups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        seconds, _, code = run_config(args.python, selection, WRAPPED, scratch)
        print(f"warm-up ({WRAPPED}), not counted: {seconds:.1f} s (exit {code})", flush=True)
        for repeat in range(args.repeat):
            for config in run_order(repeat):
                seconds, cpu, code = run_config(args.python, selection, config, scratch)
                print(f"[{repeat + 1}/{args.repeat}] {config}: {seconds:.1f} s, cpu {cpu:.1f} s (exit {code})",
                      flush=True)
                runs.append(Run(config, repeat, seconds, cpu, code))
            seconds, code = startup(args.python, scratch)
            print(f"[{repeat + 1}/{args.repeat}] first result: {seconds:.1f} s (exit {code})", flush=True)
            startups.append(seconds)
        matrix_file = scratch / "matrix.json"
        seconds, _, code = run_pytest(
            args.python, [*selection, "--export-wrapper", "all", "-n", "2", "--results", str(matrix_file)], None
        )
        print(f"matrix: {seconds:.1f} s (exit {code})", flush=True)
        costs = wrapper_costs(results.load(matrix_file)) if matrix_file.exists() else {}
    return {
        "machine": machine(),
        "selection": selection,
        "repeat": args.repeat,
        "runs": [asdict(r) for r in runs],
        **summarise(runs),
        "overhead_goal": GOAL,
        "startup": startups,
        "matrix_exit_code": code,
        "wrapper_costs": costs,
    }


def table(document: dict[str, Any]) -> list[str]:
    """The Markdown tables ``nox -s bench`` prints and the README quotes."""
    medians, cpu = document["medians"], document["cpu_medians"]
    ok = "within" if document["overhead"] <= document["overhead_goal"] else "over"
    low, high = document["overhead_range"]
    rows = [
        "| figure | value |",
        "|---|---|",
        *(f"| median wall (cpu), {c} | {medians[c]:.1f} s ({cpu[c]:.1f} s) |" for c in medians),
        f"| harness overhead (non_strict / no wrapper), wall | **{document['overhead']:.3f}** ({ok} the goal "
        f"{document['overhead_goal']}); one repeat's pair: {low:.3f} to {high:.3f} |",
        f"| harness overhead, cpu | {document['overhead_cpu']:.3f} |",
        f"| golden checks on top of non_strict | {document['golden_checks_seconds']:+.1f} s |",
        f"| xdist speed-up (-n 0 / -n 2) | {document['xdist_speedup']:.2f}x |",
        f"| first result, `{STARTUP_COMMAND}` | median "
        f"{statistics.median(document['startup']):.1f} s (goal {STARTUP_GOAL:.0f} s) |",
        "",
        "| wrapper | programs | whole call / first export, median | p90 | after the first export, median |",
        "|---|---|---|---|---|",
    ]
    for wrapper, cost in document["wrapper_costs"].items():
        rows.append(
            f"| `{wrapper}` | {cost['programs']} | {cost['median']:.2f} | {cost['p90']:.2f} "
            f"| {cost['after_ms']:.2f} ms |"
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
