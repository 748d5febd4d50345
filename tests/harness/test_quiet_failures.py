"""How a wrapper failure and a wrapper run end read (pytester subprocesses)."""

from __future__ import annotations

import logging

import pytest

from harness import torch_quirks
from tests.harness.programs import UNSERIALIZABLE_PAIR

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SERIALIZE_FAILURE = UNSERIALIZABLE_PAIR + """
    import logging
    import warnings

    def test_serialize_fails():
        export(TakesPair(), (Pair(torch.ones(2), torch.ones(2)),))

    def test_warns():
        warnings.warn("one", FutureWarning)
        warnings.warn("two", FutureWarning)
        warnings.warn("three", UserWarning)

    def test_malformed_torch_log_record_is_completed():
        logging.getLogger("torch._export.serde.serialize").warning("Loaded %s after failure: %s", "x")
"""


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    monkeypatch.delenv("TORCH_TRACE", raising=False)
    pytester.makepyfile(test_quiet=SERIALIZE_FAILURE)
    return pytester


def test_failure_starts_with_wrapper_stage_and_cause_and_hides_harness_frames(tester: pytest.Pytester) -> None:
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "cpp_serdes", "-rfE")
    result.assert_outcomes(failed=1, passed=2)
    text = result.stdout.str()
    block = text.split(" test_serialize_fails ", 1)[1].split("\n", 1)[1]
    first = [line for line in block.splitlines() if line.strip()][:2]
    assert first == [
        "E   export wrapper 'cpp_serdes' failed at stage 'serialize'",
        "E   cause: NotImplementedError: No registered serialization name for <class 'test_quiet.Pair'> found. "
        "Please update your _register_pytree_node call with a `serialized_type_name` kwarg.",
    ]
    assert "harness/patching.py" not in block and "harness/wrappers.py" not in block
    assert "torch.__trace" not in text  # no flood of empty structured-trace records
    result.stdout.fnmatch_lines(["FAILED test_quiet.py::test_serialize_fails - [[]cpp_serdes: serialize[]] Not*"])
    result.stdout.fnmatch_lines(
        ["export wrapper cpp_serdes: 0 programs round-tripped, 1 failed, 1 unexpected (serialize: 1)"]
    )


def test_warnings_are_counted_by_category_when_their_summary_is_off(tester: pytest.Pytester) -> None:
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", "non_strict", "--disable-warnings"
    )
    result.stdout.fnmatch_lines(["warnings: 3 (FutureWarning: 2, UserWarning: 1)*"])
    assert "warnings summary" not in result.stdout.str()


def test_quirk_filter_completes_only_malformed_records() -> None:
    before = list(logging.getLogger(torch_quirks.DESERIALIZER_LOGGER).filters)  # this run's own plugin has one
    undo = torch_quirks.install()
    try:
        logger = logging.getLogger(torch_quirks.DESERIALIZER_LOGGER)
        bad = logger.makeRecord(logger.name, logging.WARNING, "f", 1, "a %s b %s", ("x",), None)
        good = logger.makeRecord(logger.name, logging.WARNING, "f", 1, "a %s", ("x",), None)
        assert logger.filter(bad) and logger.filter(good)
        assert bad.getMessage() == "a %s b %s [torch logged a malformed format string; its arguments: 'x']"
        assert good.getMessage() == "a x"
    finally:
        undo()
    assert logging.getLogger(torch_quirks.DESERIALIZER_LOGGER).filters == before
