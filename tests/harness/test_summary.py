"""Wording of the end-of-run line, tested as pure code."""

from __future__ import annotations

from harness.summary import ProgramTally


def test_all_transformed() -> None:
    tally = ProgramTally()
    tally.add([None, None])
    assert tally.line("cpp_serdes", "round-tripped") == "export wrapper cpp_serdes: 2 programs round-tripped, 0 failed"


def test_failures_grouped_by_stage_and_export_errors_apart() -> None:
    tally = ProgramTally()
    tally.add([None, "deserialize", "export", "serialize", "deserialize"])
    assert tally.line("serdes_strict", "round-tripped") == (
        "export wrapper serdes_strict: 1 programs round-tripped, 3 failed, all expected "
        "(deserialize: 2, serialize: 1); 1 raised in torch.export.export itself"
    )


def test_failures_in_failing_tests_are_unexpected() -> None:
    tally = ProgramTally()
    tally.add(["deserialize", None])
    tally.add(["serialize", "export"], test_failed=True)
    assert tally.line("cpp_serdes", "round-tripped") == (
        "export wrapper cpp_serdes: 1 programs round-tripped, 2 failed, 1 unexpected "
        "(deserialize: 1, serialize: 1); 1 raised in torch.export.export itself"
    )
