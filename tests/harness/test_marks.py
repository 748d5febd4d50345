"""``xfail_under(..., match=)``: the expected failure absorbs only its cause (pytester, with and without xdist)."""

from __future__ import annotations

import pytest

from harness.errors import ExpectedFailure, ExportWrapperError, chain, stage_error
from harness.marks import Expectation
from tests.harness.programs import UNSERIALIZABLE_PAIR

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MATCH_SUITE = UNSERIALIZABLE_PAIR + """
    import pytest
    from harness import ExportWrapperError

    def export_pair():
        return export(TakesPair(), (Pair(torch.ones(2), torch.ones(2)),))

    CAUSE = "pair has no serialized_type_name"

    @pytest.mark.xfail_under("cpp_serdes", reason=CAUSE, match="No registered serialization name")
    def test_matching_cause_is_expected():
        export_pair()

    @pytest.mark.xfail_under("cpp_serdes", reason=CAUSE, raises=ExportWrapperError, match="serialization name")
    def test_type_and_cause_both_match():
        export_pair()

    @pytest.mark.xfail_under("cpp_serdes", reason=CAUSE, match="No registered serialization name")
    def test_other_failure_is_a_real_failure():
        assert False, "numbers are off"

    @pytest.mark.xfail_under("cpp_serdes", reason="numbers are off under the C++ round trip", match="numbers are off")
    def test_assertion_cause_is_matched():
        assert False, "numbers are off by 0.5"

    @pytest.mark.xfail_under("cpp_serdes", reason=CAUSE, raises=KeyError, match="serialization name")
    def test_wrong_type_is_a_real_failure():
        export_pair()

    @pytest.mark.xfail_under("cpp_serdes", reason=CAUSE, match="No registered serialization name")
    def test_passing_is_a_stale_mark():
        pass
"""


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_match_absorbs_only_its_cause(tester: pytest.Pytester, workers: list[str]) -> None:
    tester.makepyfile(test_match=MATCH_SUITE)
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--export-wrapper", "cpp_serdes", *workers)
    result.assert_outcomes(xfailed=3, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "XFAIL test_match.py::test_matching_cause_is_expected - *pair has no serialized_type_name",
            "XFAIL test_match.py::test_type_and_cause_both_match*",
            "XFAIL test_match.py::test_assertion_cause_is_matched*",
            "FAILED test_match.py::test_other_failure_is_a_real_failure*",
            "FAILED test_match.py::test_wrong_type_is_a_real_failure*",
            "FAILED test_match.py::test_passing_is_a_stale_mark*",
        ]
    )
    # the failure that is not the expected one says so
    result.stdout.fnmatch_lines(["*this failure is not the one @pytest.mark.xfail_under expects (match=*"])


def test_under_another_wrapper_the_mark_does_nothing(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_match=MATCH_SUITE)
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "non_strict")
    # unmarked there: the two assertion tests fail, everything else passes
    result.assert_outcomes(passed=4, failed=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ('reason="r", matches="x"', "got unknown keyword(s) matches; it takes match, raises, reason"),
        ('reason="r", match="("', "match='(' is not a regex"),
        ('reason="r", raises="KeyError"', "raises= must be an exception type"),
    ],
)
def test_malformed_mark_is_a_usage_error(tester: pytest.Pytester, kwargs: str, message: str) -> None:
    tester.makepyfile(
        f"""
        import pytest

        @pytest.mark.xfail_under("strict", {kwargs})
        def test_x():
            pass
        """
    )
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_skip_under_takes_only_a_reason(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import pytest

        @pytest.mark.skip_under("strict", reason="r", match="x")
        def test_x():
            pass
        """
    )
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*skip_under got unknown keyword(s) match; it takes reason*"])


def test_expectation_searches_the_whole_chain() -> None:
    import re

    try:
        try:
            raise ValueError("torch: bad node")
        except ValueError as cause:
            raise stage_error("cpp_serdes", "deserialize", cause) from cause
    except ValueError as exc:
        error = exc
    assert isinstance(error, ExportWrapperError)
    expect = Expectation("cpp_serdes", "r", ExportWrapperError, re.compile("bad node"))
    assert expect.accepts(error)
    assert not Expectation("cpp_serdes", "r", KeyError, None).accepts(error)
    assert not Expectation("cpp_serdes", "r", None, re.compile("other")).accepts(error)
    wrapped = ExpectedFailure("x")
    wrapped.__cause__ = error
    assert chain(wrapped)[:2] == [wrapped, error]
