"""--pytorch-compat: a PyTorch-style suite gives, under every wrapper, the outcomes its own wrapper files give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.wrappers import BUILTIN_WRAPPERS

SUITE = "test_style_suite.py"
VARIANT_FILES = "test_variant_files.py"


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("EXPORT_WRAPPER", "EXPORT_PYTORCH_COMPAT"):
        monkeypatch.delenv(name, raising=False)
    pytester.copy_example("pytorch_style")
    return pytester


def outcomes(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, dict[str, str]]:
    target = Path(tester.path, f"outcomes-{len(list(tester.path.glob('outcomes-*')))}.json")
    monkeypatch.setenv("OUTCOMES_FILE", str(target))
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stderr.str()
    data: dict[str, dict[str, str]] = json.loads(target.read_text())
    return data


@pytest.mark.timeout(1800)  # 12 pytest runs of a torch suite; a busy 2-core machine needs more than the default
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_compat_outcomes_equal_wrapper_file_outcomes_for_every_wrapper(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    baseline = outcomes(tester, monkeypatch, VARIANT_FILES, *workers)
    assert set(baseline) == {w.pytorch_suffix for w in BUILTIN_WRAPPERS}
    for wrapper in BUILTIN_WRAPPERS:
        assert wrapper.pytorch_suffix is not None
        compat = outcomes(tester, monkeypatch, SUITE, "--export-wrapper", wrapper.name, "--pytorch-compat", *workers)
        assert compat == {"": baseline[wrapper.pytorch_suffix]}, wrapper.name


def test_the_comparison_is_not_trivial(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline really differs by variant, so equality above says something."""
    baseline = outcomes(tester, monkeypatch, VARIANT_FILES)
    serdes, retrace = baseline["_serdes_strict"], baseline["_retraceability_strict"]
    assert serdes["TestStyle::test_unnamed_pytree_node"] == "xfailed"
    assert retrace["TestStyle::test_unnamed_pytree_node"] == "passed"
    assert retrace["TestStyle::test_stale_retrace_mark"] == "failed"
    assert serdes["TestStyle::test_stale_retrace_mark"] == "passed"
    assert serdes["TestStyle::test_escape_hatch_under_fake_mode"] == "passed"
    assert serdes["TestStyle::test_skipped"] == "skipped"
    assert serdes["TestStyle::test_unittest_expected_failure"] == "xfailed"
    assert retrace["TestStyle::test_varargs_dynamic_shapes_keep_torchs_error_type"] == "passed"
    assert serdes["TestStyle::test_runs_in_a_generated_variant_class"] == "passed"


def test_without_the_flag_the_escape_hatch_is_wrapped(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    default = outcomes(tester, monkeypatch, SUITE, "--export-wrapper", "serdes_strict")[""]
    assert default["TestStyle::test_escape_hatch_under_fake_mode"] == "failed"
    # ... and the test name carries no suffix, so the variant helper is wrong too.
    assert default["TestStyle::test_branches_on_variant_name"] == "failed"
    # ... and the test runs in its defining class, where PyTorch never runs it.
    assert default["TestStyle::test_runs_in_a_generated_variant_class"] == "failed"


def test_compat_class_identity_and_typed_errors_under_retrace(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    compat = outcomes(tester, monkeypatch, SUITE, "--export-wrapper", "retrace_non_strict", "--pytorch-compat")[""]
    assert compat["TestStyle::test_runs_in_a_generated_variant_class"] == "passed"
    # the re-export's UserError reaches the test as a UserError (and is still counted as the retrace stage)
    assert compat["TestStyle::test_varargs_dynamic_shapes_keep_torchs_error_type"] == "passed"


def test_compat_mode_from_environment(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PYTORCH_COMPAT", "1")
    compat = outcomes(tester, monkeypatch, SUITE, "--export-wrapper", "serdes_strict")[""]
    assert compat["TestStyle::test_escape_hatch_under_fake_mode"] == "passed"
    assert compat["TestStyle::test_branches_on_variant_name"] == "passed"


def test_bad_compat_environment_value_is_a_usage_error(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPORT_PYTORCH_COMPAT", "maybe")
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", SUITE, "--export-wrapper", "strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable EXPORT_PYTORCH_COMPAT='maybe' is not a boolean*"])


def test_fixtures_tell_the_wrapper_and_reach_the_original(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        test_fixtures="""
        import torch.export

        def test_fixtures(export_wrapper, original_export):
            assert export_wrapper == "cpp_serdes"
            assert original_export is torch.export.export.__wrapped__
            assert not hasattr(original_export, "__export_wrapper__")
        """
    )
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "test_fixtures.py", "--export-wrapper", "cpp_serdes")
    result.assert_outcomes(passed=1)
