"""The pytest plugin, run for real in subprocesses (the patch is process-wide and must not leak here)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from harness.wrappers import BUILTIN_WRAPPERS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALL_NAMES = [w.name for w in BUILTIN_WRAPPERS]

REPORTS_WRAPPER = """
    import harness
    import torch.export

    def test_reports_wrapper():
        print("ACTIVE=" + str(harness.active_wrapper()))
        wrapper = getattr(torch.export.export, "__export_wrapper__", None)
        print("PATCHED=" + str(wrapper.name if wrapper else None))
"""

SMALL_PROGRAM = """
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    def run():
        x = torch.randn(3)
        ep = export(Double(), (x,))
        torch.testing.assert_close(ep.module()(x), x * 2)
        return ep
"""


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper selected by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    return pytester


def run(tester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tester.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected"),
    [
        ("strict", "cpp_serdes", "serdes_strict", "strict"),
        (None, "cpp_serdes", "serdes_strict", "cpp_serdes"),
        (None, None, "serdes_strict", "serdes_strict"),
        (None, None, None, "None"),
    ],
)
def test_selection_precedence(
    tester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    cli: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    tester.makepyfile(REPORTS_WRAPPER)
    if ini:
        tester.makeini(f"[pytest]\nexport_wrapper = {ini}\n")
    if env:
        monkeypatch.setenv("EXPORT_WRAPPER", env)
    result = run(tester, *(["--export-wrapper", cli] if cli else []))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*ACTIVE={expected}*", f"*PATCHED={expected}*"])


@pytest.mark.parametrize(
    ("how", "source"),
    [
        ("cli", "command-line option --export-wrapper"),
        ("env", "environment variable EXPORT_WRAPPER"),
        ("ini", "ini option export_wrapper"),
    ],
)
def test_unknown_name_is_a_usage_error_listing_valid_names(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, source: str
) -> None:
    tester.makepyfile(test_never_runs="def test_never_runs():\n    raise SystemExit('a test ran')\n")
    args: list[str] = []
    if how == "cli":
        args = ["--export-wrapper", "nope"]
    elif how == "env":
        monkeypatch.setenv("EXPORT_WRAPPER", "nope")
    else:
        tester.makeini("[pytest]\nexport_wrapper = nope\n")
    result = run(tester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*unknown export wrapper 'nope' (from {source}); valid names: *"])
    for name in ALL_NAMES:
        assert name in result.stderr.str()
    assert "a test ran" not in result.stdout.str() + result.stderr.str()
    assert "collected" not in result.stdout.str()


def test_empty_environment_variable_is_a_usage_error(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    tester.makepyfile("def test_x():\n    pass\n")
    monkeypatch.setenv("EXPORT_WRAPPER", "")
    result = run(tester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable EXPORT_WRAPPER is set but empty*"])


def test_module_level_from_import_binds_the_wrapper(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        SMALL_PROGRAM
        + """
    def test_bound_name_is_the_wrapper():
        assert export.__export_wrapper__.name == "serdes_strict"
        run()
    """
    )
    result = run(tester, "--export-wrapper", "serdes_strict")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["export wrapper serdes_strict: 1 programs round-tripped, 0 failed"])


def test_names_imported_before_configure_are_rebound_and_restored(tester: pytest.Pytester) -> None:
    tester.makepyfile(early_helper="from torch.export import export as early_export\n")
    tester.makeconftest("import early_helper\n")
    tester.makepyfile(
        test_early="""
        import early_helper

        def test_rebound():
            assert early_helper.early_export.__export_wrapper__.name == "cpp_serdes"
        """
    )
    result = run(tester, "--export-wrapper", "cpp_serdes")
    result.assert_outcomes(passed=1)


def test_patch_is_undone_after_the_session(tester: pytest.Pytester) -> None:
    tester.makepyfile(early_helper="from torch.export import export as early_export\n")
    tester.makepyfile(
        test_uses_export="""
        from torch.export import export

        def test_uses_wrapper():
            assert hasattr(export, "__export_wrapper__")
        """
    )
    driver = tester.makepyfile(
        driver="""
        import sys
        import early_helper
        import pytest
        import torch.export
        original = torch.export.export
        args = ["-p", "no:cacheprovider", "-q", "test_uses_export.py"]
        code = pytest.main([*args, "--export-wrapper", "retrace_strict"])
        assert code == 0, code
        import test_uses_export
        assert torch.export.export is original, "attribute still patched"
        assert early_helper.early_export is original, "early import still patched"
        assert test_uses_export.export is original, "test module still patched"
        # A configure that fails must leave nothing behind either: refused before the patch...
        code = pytest.main([*args, "--export-wrapper", "nope"])
        assert code == pytest.ExitCode.USAGE_ERROR, code
        assert torch.export.export is original
        # ...or failing in a later plugin, after the patch is in.
        code = pytest.main([*args, "--export-wrapper", "retrace_strict", "-p", "late_failure"])
        assert code == pytest.ExitCode.USAGE_ERROR, code
        assert torch.export.export is original, "attribute still patched after a failed configure"
        assert early_helper.early_export is original, "early import still patched after a failed configure"
        print("RESTORED")
        """
    )
    tester.makepyfile(
        late_failure="""
        import pytest
        import torch.export

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            assert hasattr(torch.export.export, "__export_wrapper__"), "the patch should be in by now"
            raise pytest.UsageError("a later plugin's configure failed")
        """
    )
    result = tester.run(sys.executable, str(driver))
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["RESTORED"])


STRICT_XFAIL_SUITE = """
    import pytest
    import torch
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    @pytest.mark.xfail_under("serdes_strict", reason="the round trip really breaks here")
    def test_breaks_under_serdes():
        import harness
        assert harness.active_wrapper() != "serdes_strict"

    @pytest.mark.xfail_under("serdes_strict", reason="stale mark: this passes")
    def test_stale_mark():
        export(Double(), (torch.randn(2),))

    @pytest.mark.xfail_under("cpp_serdes", reason="only under the C++ round trip")
    def test_marked_for_another_wrapper():
        export(Double(), (torch.randn(2),))
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_marker_is_a_strict_xfail_only_under_named_wrappers(tester: pytest.Pytester, workers: list[str]) -> None:
    tester.makepyfile(STRICT_XFAIL_SUITE)
    result = run(tester, "--export-wrapper", "serdes_strict", "-rfxX", *workers)
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["[[]XPASS(strict)[]] [[]serdes_strict[]] stale mark: this passes"])
    result.stdout.fnmatch_lines(["*XFAIL*test_breaks_under_serdes*[[]serdes_strict[]] the round trip really breaks*"])
    result.stdout.fnmatch_lines(["FAILED *test_stale_mark*"])
    result.stdout.fnmatch_lines(["export wrapper serdes_strict: 2 programs round-tripped, 0 failed"])


def test_marker_with_unknown_wrapper_or_no_reason_is_a_usage_error(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail_under("serdes_strcit", reason="typo")
        def test_typo():
            pass
        """
    )
    result = run(tester, "--export-wrapper", "serdes_strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names unknown wrapper(s) [[]'serdes_strcit'[]]*"])


SKIP_UNDER_SUITE = """
    import pytest
    import torch
    from torch.export import export

    @pytest.mark.skip_under("retrace_strict", reason="tells nothing under a retrace")
    def test_skipped_under_retrace():
        export(torch.nn.ReLU(), (torch.randn(2),))

    def test_runs():
        export(torch.nn.ReLU(), (torch.randn(2),))
"""


def test_skip_under_skips_only_under_named_wrappers_with_the_reason_shown(tester: pytest.Pytester) -> None:
    tester.makepyfile(SKIP_UNDER_SUITE)
    result = run(tester, "--export-wrapper", "retrace_strict,strict", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * [[]retrace_strict[]] tells nothing under a retrace"])


def test_skip_under_without_reason_is_a_usage_error(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import pytest

        @pytest.mark.skip_under("strict")
        def test_no_reason():
            pass
        """
    )
    result = run(tester, "--export-wrapper", "strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.skip_under needs reason=...*"])


PYTORCH_STYLE_SUITE = """
    import unittest
    import torch
    from torch.export import export

    def expected_failure_serdes(fn):
        fn._expected_failure_serdes = True
        return fn

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class TestPyTorchStyle(unittest.TestCase):
        @expected_failure_serdes
        def test_known_serdes_break(self):
            ep = export(Double(), (torch.randn(2),))
            self.assertFalse(hasattr(torch.export.export, "__export_wrapper__"), "wrapped")

        @expected_failure_serdes
        def test_stale_attribute(self):
            export(Double(), (torch.randn(2),))

        def test_plain(self):
            ep = export(Double(), (torch.ones(2),))
            self.assertEqual(ep.module()(torch.ones(2)).tolist(), [2.0, 2.0])
"""


@pytest.mark.parametrize(
    ("wrapper", "outcomes"),
    [
        ("serdes_strict", {"passed": 1, "xfailed": 1, "failed": 1}),
        ("cpp_serdes", {"passed": 2, "failed": 1}),
    ],
)
def test_pytorch_expected_failure_attributes_on_unittest(
    tester: pytest.Pytester, wrapper: str, outcomes: dict[str, int]
) -> None:
    tester.makepyfile(PYTORCH_STYLE_SUITE)
    result = run(tester, "--export-wrapper", wrapper)
    result.assert_outcomes(**outcomes)
    if wrapper == "serdes_strict":
        result.stdout.fnmatch_lines(["[[]XPASS(strict)[]] [[]serdes_strict[]] PyTorch-style _expected_failure_serdes*"])
        result.stdout.fnmatch_lines(["FAILED *TestPyTorchStyle::test_stale_attribute*"])


def test_no_silent_fallback_under_cpp_serdes(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import pytest
        import torch
        from torch.export import export
        from torch.utils import _pytree as pytree
        from harness import ExportWrapperError

        class Pair:
            def __init__(self, a, b):
                self.a, self.b = a, b

        pytree.register_pytree_node(
            Pair,
            lambda p: ([p.a, p.b], None),
            lambda c, _: Pair(*c),
            flatten_with_keys_fn=lambda p: ([(pytree.GetAttrKey("a"), p.a), (pytree.GetAttrKey("b"), p.b)], None),
        )

        class TakesPair(torch.nn.Module):
            def forward(self, pair):
                return pair.a + pair.b

        def test_unnamed_pytree_node_fails_to_serialize():
            with pytest.raises(ExportWrapperError, match="'cpp_serdes' failed at stage 'serialize'") as info:
                export(TakesPair(), (Pair(torch.ones(2), torch.ones(2)),))
            assert "serialized_type_name" in str(info.value.__cause__)
        """
    )
    result = run(tester, "--export-wrapper", "cpp_serdes")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["export wrapper cpp_serdes: 0 programs round-tripped, 1 failed, * (serialize: 1)"])


def test_xdist_run_matches_a_plain_run(tester: pytest.Pytester) -> None:
    tests = "\n".join(
        f"""
    def test_program_{i}():
        run()
    """
        for i in range(6)
    )
    tester.makepyfile(SMALL_PROGRAM + tests + STRICT_XFAIL_SUITE.split("import pytest", 1)[0] + "\n")
    plain = run(tester, "--export-wrapper", "cpp_serdes")
    spread = run(tester, "--export-wrapper", "cpp_serdes", "-n", "2")
    for result in (plain, spread):
        result.assert_outcomes(passed=6)
        result.stdout.fnmatch_lines(["export wrapper cpp_serdes: 6 programs round-tripped, 0 failed"])
    spread.stdout.fnmatch_lines(["*2 workers*"])


def test_xdist_controller_leaves_torch_to_the_workers(tester: pytest.Pytester) -> None:
    """The controller runs no test, so it installs no patch and imports no torch: its start-up delays every worker's."""
    tester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            if not hasattr(session.config, "workerinput"):
                print("CONTROLLER_IMPORTED_TORCH=" + str("torch" in sys.modules))
        """
    )
    tester.makepyfile(
        SMALL_PROGRAM
        + """
    import torch.export

    def test_worker_is_patched():
        assert torch.export.export.__export_wrapper__.name == "cpp_serdes"
        run()
    """
    )
    spread = run(tester, "--export-wrapper", "cpp_serdes", "-n", "2")
    spread.assert_outcomes(passed=1)
    spread.stdout.fnmatch_lines(
        ["*CONTROLLER_IMPORTED_TORCH=False", "export wrapper cpp_serdes: 1 programs round-tripped, 0 failed"]
    )
    plain = run(tester, "--export-wrapper", "cpp_serdes")
    plain.assert_outcomes(passed=1)
    plain.stdout.fnmatch_lines(["*CONTROLLER_IMPORTED_TORCH=True"])


def test_runs_with_xdist_blocked(tester: pytest.Pytester) -> None:
    """The plugin's xdist hooks are optional: ``-p no:xdist`` is a plain run, not an INTERNALERROR."""
    tester.makepyfile(SMALL_PROGRAM + "\n    def test_program():\n        run()\n")
    result = run(tester, "--export-wrapper", "serdes_strict", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["export wrapper serdes_strict: 1 programs round-tripped, 0 failed"])


def test_worker_patches_even_when_environment_differs(tester: pytest.Pytester) -> None:
    """Workers take the controller's selection, so an env change after start cannot split a run."""
    tester.makepyfile(REPORTS_WRAPPER)
    result = run(tester, "--export-wrapper", "run_decomp_strict", "-n", "2")
    result.assert_outcomes(passed=1)


def test_wrapper_list_option(tester: pytest.Pytester) -> None:
    result = run(tester, "--export-wrapper-list")
    assert result.ret == 0
    for wrapper in BUILTIN_WRAPPERS:
        result.stdout.fnmatch_lines([f"{wrapper.name} *{wrapper.description}"])


def test_no_wrapper_means_no_torch_import(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import sys

        def test_torch_not_imported():
            assert "torch" not in sys.modules
        """
    )
    run(tester).assert_outcomes(passed=1)


def test_summary_line_reports_stage_failures_and_export_errors(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        textwrap.dedent(SMALL_PROGRAM)
        + textwrap.dedent(
            """
            import pytest

            class Branchy(torch.nn.Module):
                def forward(self, x):
                    if x.sum() > 0:
                        return x
                    return -x

            def test_ok():
                run()

            def test_export_error_keeps_torch_type():
                with pytest.raises(Exception) as info:
                    export(Branchy(), (torch.randn(3),))
                assert type(info.value).__module__.startswith("torch")
            """
        )
    )
    result = run(tester, "--export-wrapper", "retrace_non_strict")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["export wrapper retrace_non_strict: 1 programs retraced, 0 failed; 1 raised in torch.export.export itself"]
    )
