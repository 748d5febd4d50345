"""Golden artifacts through the plugin, in subprocesses: accept, check, and what a bad artifact does to a run.

A missing or corrupt artifact must fail its own test with a message naming the file, never the run.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

import pytest

from harness import golden
from harness.golden.artifacts import artifact_stem

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

INI = """
[pytest]
markers =
    golden: stored and checked under non_strict
"""

SUITE = """
    import pytest
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x):
            self.count.add_(1)
            return {"scaled": x * self.count, "sum": x.sum()}

    @pytest.mark.golden
    def test_double():
        ep = export(Double(), (torch.arange(3.0),))
        torch.testing.assert_close(ep.module()(torch.ones(3)), torch.full((3,), 2.0))

    @pytest.mark.golden
    def test_counter():
        ep = export(Counter(), (torch.arange(4.0),))
        ep.module()(torch.ones(4))

    def test_not_golden():
        export(Double(), (torch.ones(2),))
"""

TWO_EXPORTS = """
    import pytest
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    @pytest.mark.golden
    def test_twice():
        export(Double(), (torch.ones(2),))
        export(Double(), (torch.ones(3),))
"""

DOUBLE_ID = "test_golden_suite.py::test_double"
COUNTER_ID = "test_golden_suite.py::test_counter"


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester with the golden suite, and no wrapper chosen by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(test_golden_suite=SUITE)
    return pytester


def run(tester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tester.runpytest_subprocess("-p", "no:cacheprovider", "--results", "results.json", *args)


def accept(tester: pytest.Pytester) -> Path:
    result = run(tester, "--export-wrapper", "non_strict", "--golden-accept")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["golden artifacts: 2 of 2 golden tests stored in *artifacts (6 files*MB in total)"])
    return tester.path / "artifacts"


def test_accept_then_check_holds(tester: pytest.Pytester) -> None:
    directory = accept(tester)
    stems = {artifact_stem(DOUBLE_ID), artifact_stem(COUNTER_ID)}
    expected = {f"{stem}{suffix}" for stem in stems for suffix in (".pt2", ".outputs.pt", ".json")}
    assert {p.name for p in directory.iterdir()} == expected
    sidecar = json.loads((directory / f"{artifact_stem(COUNTER_ID)}.json").read_text())
    assert sidecar["node_id"] == COUNTER_ID
    assert "b_count: BUFFER target='count' persistent=True" in sidecar["signature"]
    assert any("aten.add_" in line for line in sidecar["graph"])
    assert not any("# File" in line for line in sidecar["graph"])

    result = run(tester, "--export-wrapper", "non_strict", "--golden-report", "golden.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["golden artifacts in *: 2 of 2 golden tests hold (2 load, 2 outputs, 2 graph, 2 signature)"]
    )
    report = json.loads((tester.path / "golden.json").read_text())
    assert set(report["tests"]) == {DOUBLE_ID, COUNTER_ID}
    assert all(v["load"] is None and v["outputs"] is None for v in report["tests"].values())


def test_check_under_xdist_gives_the_same_outcomes_and_report(tester: pytest.Pytester) -> None:
    accept(tester)
    result = run(tester, "--export-wrapper", "non_strict", "-n", "2", "--golden-report", "golden.json")
    result.assert_outcomes(passed=3)
    report = json.loads((tester.path / "golden.json").read_text())
    assert set(report["tests"]) == {DOUBLE_ID, COUNTER_ID}


def test_missing_artifact_fails_the_test_and_says_how_to_create_it(tester: pytest.Pytester) -> None:
    result = run(tester, "--export-wrapper", "non_strict")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*no golden artifact for*test_double*does not exist*nox -s artifacts -- --accept*"])


def test_blocking_the_golden_plugin_runs_golden_tests_unchecked(tester: pytest.Pytester) -> None:
    # No artifacts exist, so a check would fail both golden tests (the test above); blocked, none is made.
    result = run(tester, "--export-wrapper", "non_strict", "-p", f"no:{golden.PLUGIN_NAME}")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*golden artifact*")
    result.stdout.fnmatch_lines(["export wrapper non_strict: 3 programs exported, 0 failed"])


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_program_fails_only_its_test_naming_the_file(tester: pytest.Pytester) -> None:
    directory = accept(tester)
    program = directory / f"{artifact_stem(DOUBLE_ID)}.pt2"
    flip_byte(program, program.stat().st_size // 2)
    result = run(tester, "--export-wrapper", "non_strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*{program.name}: SHA-256 * does not match the sidecar's*"])
    result.stdout.fnmatch_lines([f"FAILED {DOUBLE_ID}*"])


def test_corrupt_program_with_matching_checksum_is_a_load_failure_naming_the_file(tester: pytest.Pytester) -> None:
    """Past the checksum (say, a sidecar re-hashed by hand), torch's own loader meets the damage."""
    directory = accept(tester)
    program = directory / f"{artifact_stem(DOUBLE_ID)}.pt2"
    with zipfile.ZipFile(program) as archive:
        entry = next(info for info in archive.infolist() if info.filename.endswith("models/model.json"))
    header = program.read_bytes()[entry.header_offset : entry.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])  # the local header's own lengths (torch pads)
    flip_byte(program, entry.header_offset + 30 + name_length + extra_length)  # the JSON's first byte
    sidecar_path = directory / f"{artifact_stem(DOUBLE_ID)}.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["program"]["sha256"] = hashlib.sha256(program.read_bytes()).hexdigest()
    sidecar_path.write_text(json.dumps(sidecar))
    result = run(tester, "--export-wrapper", "non_strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*[[]load[]] *{program.name}: *"])


def test_corrupt_sidecar_fails_only_its_test_naming_the_file(tester: pytest.Pytester) -> None:
    directory = accept(tester)
    sidecar = directory / f"{artifact_stem(COUNTER_ID)}.json"
    flip_byte(sidecar, 0)
    result = run(tester, "--export-wrapper", "non_strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*{sidecar.name}: not a valid sidecar*nox -s artifacts -- --accept*"])


def test_changed_graph_is_a_graph_failure_with_a_diff(tester: pytest.Pytester) -> None:
    directory = accept(tester)
    tester.makepyfile(test_golden_suite=SUITE.replace("return x * 2", "return x + x"))
    result = run(tester, "--export-wrapper", "non_strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*golden artifact*test_double.json (graph, signature failed; saved by torch *", "*+*aten.add.Tensor*"]
    )
    assert (directory / f"{artifact_stem(DOUBLE_ID)}.json").exists()


def test_other_wrappers_run_golden_tests_without_artifacts(tester: pytest.Pytester) -> None:
    result = run(tester, "--export-wrapper", "serdes_strict")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*golden artifacts*")


def test_accept_needs_the_non_strict_wrapper(tester: pytest.Pytester) -> None:
    result = run(tester, "--export-wrapper", "strict", "--golden-accept")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--golden-accept stores programs exported under the 'non_strict' wrapper*'strict'*"])


def test_a_golden_test_must_export_exactly_one_program(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_golden_suite=TWO_EXPORTS)
    result = run(tester, "--export-wrapper", "non_strict", "--golden-accept")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*must export exactly one program; this one exported 2*"])
