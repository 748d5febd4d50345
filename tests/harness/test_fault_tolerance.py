"""What a run survives: a wrapper stage that kills the process, a hang, a broken wrapper plugin, no durations.

The rest of the list is tested where the code lives: unknown or empty wrapper names (test_plugin.py,
test_selection.py), bad shard specs and corrupt durations files (test_sharding.py), corrupt results and
baseline files (test_report.py), a test that kills its worker (test_results.py), and the patch being undone
after the session and after a failed configure (test_plugin.py).

Wrapper plugins are installed the way pip would leave them: a ``*.dist-info`` directory with an
``entry_points.txt`` next to the module, in the pytester directory, which pytester puts on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness import registry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]

CRASHING_BACKEND = """
    import os
    import signal

    from harness.wrappers import Wrapper, as_called

    def _cpp_roundtrip(call, program):
        # Stands in for a C++ deserializer that takes the process down on one program.
        with call.stage("cpp_roundtrip"):
            if type(call.mod).__name__ == "Poison":
                if os.environ.get("CRASH_HOW") == "segv":
                    os.kill(os.getpid(), signal.SIGSEGV)
                os._exit(3)
        return program

    crashing_cpp = Wrapper("crashing_cpp", "a C++ round trip that dies on Poison", as_called(_cpp_roundtrip))
"""

CRASHING_SUITE = """
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class Poison(Double):
        pass

    def test_before():
        export(Double(), (torch.randn(2),))

    def test_poison():
        export(Poison(), (torch.randn(2),))

    def test_after():
        export(Double(), (torch.randn(3),))

    def test_no_export():
        pass
"""


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper and no shard chosen by the environment."""
    for name in ("EXPORT_WRAPPER", "EXPORT_SHARD", "CRASH_HOW"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def install_wrapper_plugin(tester: pytest.Pytester, dist: str, entry_point: str, module: str, source: str) -> None:
    """A wrapper plugin as pip installs it: module plus dist-info with one entry point."""
    tester.makepyfile(**{module: source})
    info = tester.path / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{entry_point}\n")


def install_crashing_backend(tester: pytest.Pytester) -> None:
    entry_point = "crashing_cpp = backend:crashing_cpp"
    install_wrapper_plugin(tester, "crashing_backend", entry_point, "backend", CRASHING_BACKEND)


def run(tester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args)


def test_crashing_wrapper_stage_under_xdist_loses_only_its_test(tester: pytest.Pytester) -> None:
    install_crashing_backend(tester)
    tester.makepyfile(test_suite=CRASHING_SUITE)
    result = run(tester, "--export-wrapper", "crashing_cpp", "-n", "2", "--results", "out.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_suite.py::test_poison*"])
    for test in ("test_before", "test_after", "test_no_export"):
        result.stdout.fnmatch_lines([f"PASSED test_suite.py::{test}"])
    # The crashed program never reached the recorder; the two that finished did.
    result.stdout.fnmatch_lines(["export wrapper crashing_cpp: 2 programs exported, 0 failed"])
    document = json.loads((tester.path / "out.json").read_text())
    assert document["exitstatus"] == 1
    records = {r["test"]: r for r in document["tests"]}
    names = ("test_before", "test_poison", "test_after", "test_no_export")
    assert set(records) == {f"test_suite.py::{name}" for name in names}
    poison = records["test_suite.py::test_poison"]
    assert (poison["outcome"], poison["stage"]) == ("crashed", "crash")
    assert [r["outcome"] for t, r in records.items() if t != "test_suite.py::test_poison"] == ["passed"] * 3


@pytest.mark.parametrize(
    ("how", "exit_code", "stderr"),
    [
        ("exit", 3, []),
        # pytest's faulthandler prints the crashing stack: the wrapper stage and the test.
        ("segv", -11, ["Fatal Python error: Segmentation fault", "*backend.py*_cpp_roundtrip*", "*test_poison*"]),
    ],
)
def test_crashing_wrapper_stage_without_xdist_stops_the_run_visibly(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, exit_code: int, stderr: list[str]
) -> None:
    """One process: nothing is left to report the crash, but the exit status and the last test line show it."""
    install_crashing_backend(tester)
    tester.makepyfile(test_suite=CRASHING_SUITE)
    monkeypatch.setenv("CRASH_HOW", how)
    result = run(tester, "--export-wrapper", "crashing_cpp", "-v", "--results", "out.json")
    assert result.ret == exit_code
    assert result.outlines[-1].startswith("test_suite.py::test_poison"), result.outlines[-3:]
    assert "PASSED" not in result.outlines[-1]
    result.stderr.fnmatch_lines(stderr)
    assert not (tester.path / "out.json").exists()


def test_project_config_fails_a_hang_by_signal_and_the_run_goes_on(tester: pytest.Pytester) -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["timeout_method"] == "signal" and options["timeout"] > 0
    # The project's method, with a timeout short enough for a test.
    tester.makeini(f"[pytest]\ntimeout = 4\ntimeout_method = {options['timeout_method']}\n")
    tester.makepyfile(
        test_hang="""
        import time
        import torch
        from torch.export import export

        export(torch.nn.ReLU(), (torch.randn(2),))  # warm up outside the timed tests: a busy machine is slow

        def wait_for_the_cpp_runtime():
            while True:
                time.sleep(0.05)

        def test_hangs():
            export(torch.nn.ReLU(), (torch.randn(2),))
            wait_for_the_cpp_runtime()

        def test_next():
            export(torch.nn.ReLU(), (torch.randn(2),))
        """
    )
    result = run(tester, "--export-wrapper", "non_strict", "--results", "out.json")
    result.assert_outcomes(passed=1, failed=1)
    # The stack, down to the frame that hung.
    result.stdout.fnmatch_lines(
        ["*wait_for_the_cpp_runtime()", "*def wait_for_the_cpp_runtime():", "E*Failed: Timeout (>4.0s)*"]
    )
    result.stdout.fnmatch_lines(["FAILED test_hang.py::test_hangs - Failed: Timeout*"])
    result.stdout.fnmatch_lines(["PASSED test_hang.py::test_next"])
    result.stdout.fnmatch_lines(["export wrapper non_strict: 3 programs exported, 0 failed"])
    records = {r["test"]: r["outcome"] for r in json.loads((tester.path / "out.json").read_text())["tests"]}
    assert records == {"test_hang.py::test_hangs": "failed", "test_hang.py::test_next": "passed"}


@pytest.mark.parametrize("args", [["--export-wrapper", "non_strict"], ["--export-wrapper-list"]])
def test_wrapper_plugin_that_fails_to_import_is_a_usage_error_naming_it(
    tester: pytest.Pytester, args: list[str]
) -> None:
    install_wrapper_plugin(
        tester, "broken_backend", "broken = broken_backend:BROKEN", "broken_backend", "import no_such_runtime_lib\n"
    )
    tester.makepyfile("def test_never_runs():\n    raise SystemExit('a test ran')\n")
    result = run(tester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: entry point 'broken' (broken_backend:BROKEN) in group 'torch_export_harness.wrappers' "
            "failed to import: ModuleNotFoundError: No module named 'no_such_runtime_lib'"
        ]
    )
    assert "a test ran" not in result.stdout.str() + result.stderr.str()


def test_missing_durations_file_is_not_an_error(tester: pytest.Pytester) -> None:
    """Documented in the README: every test counts the same, and the header says so (corrupt: test_sharding.py)."""
    tester.makepyfile(test_pair="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result = run(tester, "--export-wrapper", "strict", "--shard", "2/2")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["export shard: 2/2 (command-line option --shard), least_duration over durations/strict.json: no stored*"]
    )
    result.assert_outcomes(passed=1)


def test_a_named_durations_file_that_is_missing_is_a_usage_error(tester: pytest.Pytester) -> None:
    """Unlike the default file, a --durations-path the user typed must exist: a typo would unbalance the shards."""
    tester.makepyfile("def test_never_runs():\n    raise SystemExit('a test ran')\n")
    result = run(tester, "--export-wrapper", "strict", "--shard", "1/2", "--durations-path", "typo.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --durations-path *typo.json does not exist; command-line option --shard needs*"]
    )
    result.stdout.no_fnmatch_line("*a test ran*")
