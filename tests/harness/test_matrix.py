"""Matrix mode: pure logic directly, the plugin through pytester subprocesses (with and without xdist)."""

from __future__ import annotations

import json

import pytest

from harness.errors import UnknownWrapperError
from harness.registry import is_matrix, parse_wrappers, split_matrix_id
from harness.wrappers import BUILTIN_WRAPPERS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALL_NAMES = [w.name for w in BUILTIN_WRAPPERS]


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses start with no wrapper selected by the environment."""
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    return pytester


@pytest.mark.parametrize(
    ("value", "expected"), [("all", True), (" all ", True), ("a,b", True), ("strict,", True), ("strict", False)]
)
def test_is_matrix(value: str, expected: bool) -> None:
    assert is_matrix(value) is expected


def test_resolve_all_is_every_wrapper_in_registry_order() -> None:
    assert [w.name for w in parse_wrappers("all", "test")] == ALL_NAMES


def test_resolve_list_keeps_order_and_drops_duplicates_and_blanks() -> None:
    wrappers = parse_wrappers("cpp_serdes, strict,,cpp_serdes", "test")
    assert [w.name for w in wrappers] == ["cpp_serdes", "strict"]
    assert [w.name for w in parse_wrappers("strict", "test")] == ["strict"]


def test_resolve_unknown_name_in_list_names_it_and_lists_valid_names() -> None:
    with pytest.raises(UnknownWrapperError, match=r"unknown export wrapper 'nope' \(from the cli\); valid names: "):
        parse_wrappers("strict,nope", "the cli")


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("a.py::test_x[serdes_strict]", ("a.py::test_x", "serdes_strict")),
        ("a.py::test_op[add-sample0-cpp_serdes]", ("a.py::test_op[add-sample0]", "cpp_serdes")),
        ("a.py::test_x[non_strict]", ("a.py::test_x", "non_strict")),
        ("a.py::test_x[p-non_strict]", ("a.py::test_x[p]", "non_strict")),
        ("a.py::test_x[p-strict]", ("a.py::test_x[p]", "strict")),
        ("a.py::test_x[other]", ("a.py::test_x[other]", None)),
        ("a.py::test_x", ("a.py::test_x", None)),
    ],
)
def test_split_matrix_id(nodeid: str, expected: tuple[str, str | None]) -> None:
    assert split_matrix_id(nodeid, ALL_NAMES) == expected


MATRIX_SUITE = """
    import pytest
    import torch
    import harness
    from torch.export import export

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    def test_sees_its_wrapper(export_wrapper):
        ep = export(Double(), (torch.randn(2),))
        assert export.__export_wrapper__.name == export_wrapper == harness.active_wrapper()
        print("RAN", export_wrapper)

    @pytest.mark.parametrize("size", [1, 3])
    def test_parametrized(size):
        export(Double(), (torch.randn(size),))

    @pytest.mark.xfail_under("cpp_serdes", reason="breaks only under the C++ round trip")
    def test_marked_for_cpp():
        assert harness.active_wrapper() != "cpp_serdes"

    def test_pytorch_attribute():
        assert harness.active_wrapper() != "serdes_strict"
    test_pytorch_attribute._expected_failure_serdes = True
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_matrix_runs_each_test_once_per_wrapper(tester: pytest.Pytester, workers: list[str]) -> None:
    tester.makepyfile(test_suite=MATRIX_SUITE)
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rA", "--export-wrapper", "serdes_strict,cpp_serdes", "--results-dir", "results",
        *workers,
    )
    # 5 tests x 2 wrappers; one expected failure per wrapper, each from its own mark.
    result.assert_outcomes(passed=8, xfailed=2)
    for line in [
        "PASSED test_suite.py::test_sees_its_wrapper[[]serdes_strict[]]*",
        "PASSED test_suite.py::test_parametrized[[]3-cpp_serdes[]]*",
        "XFAIL test_suite.py::test_marked_for_cpp[[]cpp_serdes[]] - [[]cpp_serdes[]] breaks only*",
        "PASSED test_suite.py::test_marked_for_cpp[[]serdes_strict[]]*",
        "XFAIL test_suite.py::test_pytorch_attribute[[]serdes_strict[]] - *_expected_failure_serdes*",
        "PASSED test_suite.py::test_pytorch_attribute[[]cpp_serdes[]]*",
    ]:
        result.stdout.fnmatch_lines([line])
    result.stdout.fnmatch_lines(
        [
            "export wrapper serdes_strict: 3 programs round-tripped, 0 failed",
            "export wrapper cpp_serdes: 3 programs round-tripped, 0 failed",
        ]
    )
    (path,) = (tester.path / "results").glob("matrix*.json")
    document = json.loads(path.read_text())
    assert document["run"] == "matrix"
    assert document["wrappers"] == ["serdes_strict", "cpp_serdes"]
    outcomes = {(r["test"], r["wrapper"]): r["outcome"] for r in document["tests"]}
    assert len(outcomes) == 10
    assert outcomes[("test_suite.py::test_parametrized[3]", "cpp_serdes")] == "passed"
    assert outcomes[("test_suite.py::test_marked_for_cpp", "cpp_serdes")] == "xfailed"
    assert outcomes[("test_suite.py::test_pytorch_attribute", "serdes_strict")] == "xfailed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--export-wrapper", "strict,nope"], "*unknown export wrapper 'nope' (from command-line option*valid names:*"),
        (
            ["--export-wrapper", "all", "--pytorch-compat"],
            "*--pytorch-compat cannot be combined with matrix mode*unittest.TestCase*",
        ),
    ],
    ids=["unknown-name", "pytorch-compat"],
)
def test_matrix_usage_errors(tester: pytest.Pytester, args: list[str], message: str) -> None:
    tester.makepyfile("def test_never_runs():\n    raise SystemExit('a test ran')\n")
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "a test ran" not in result.stdout.str()


def test_matrix_refuses_unittest_items_naming_them(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import unittest

        class TestStyle(unittest.TestCase):
            def test_method(self):
                raise SystemExit("a test ran")

        def test_function():
            pass
        """
    )
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "strict,non_strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*matrix mode*1 collected item(s) cannot be parametrized*TestStyle::test_method*"])
